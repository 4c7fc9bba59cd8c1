package e2e

import (
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proctest"
	"github.com/svinit/svinit/internal/render/rendertest"
)

// helperReloader appends "ready CONTENT" to $REC, CONTENT being $CONF's, then "HUP CONTENT"
// at every SIGHUP, as a program that reads its configuration again would; it exits 0 at
// SIGTERM.
func helperReloader([]string) int {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, unix.SIGHUP, unix.SIGTERM)
	conf := func() string {
		b, err := os.ReadFile(os.Getenv("CONF"))
		if err != nil {
			return "unreadable"
		}
		return strings.TrimSpace(string(b))
	}
	proctest.AppendLine(os.Getenv("REC"), "ready "+conf())
	for s := range ch {
		if s == unix.SIGTERM {
			return 0
		}
		proctest.AppendLine(os.Getenv("REC"), "HUP "+conf())
	}
	return 0
}

// watched starts svinit on a ConfigMap volume holding app.conf.tmpl = first, rendered to
// DIR/out/app.conf with index 3, with --template-watch and args; the child is the reloader.
func watched(t *testing.T, m mode, first string, args ...string) (s *svinit, cm, rec, conf string) {
	t.Helper()
	dir := t.TempDir()
	cm, rec, conf = filepath.Join(dir, "cm"), filepath.Join(dir, "rec"), filepath.Join(dir, "out", "app.conf")
	rendertest.KubeletUpdate(t, cm, map[string]string{"app.conf.tmpl": first})
	argv := append([]string{"--replica-index", "3", "--template", cm + ":" + filepath.Join(dir, "out"), "--template-watch"}, args...)
	s = startSvinit(t, m, "reloader", []string{"REC=" + rec, "CONF=" + conf}, append(argv, "--", selfBin)...)
	return s, cm, rec, conf
}

// stopped stops svinit and wants exit 0: the watch ends with the stop, holding nothing up.
func stopped(t *testing.T, s *svinit) {
	t.Helper()
	s.Signal(unix.SIGTERM)
	if code := s.Wait(); code != 0 {
		t.Errorf("exit %d after SIGTERM; want 0:\n%s", code, s.Stderr.String())
	}
}

// Every change of the ConfigMap volume (the kubelet's ..data swap) is rendered, and the child
// gets one SIGHUP for it, after the new file is in place; an update that renders the same
// files signals nothing.
func TestTemplateWatchSignalsTheChildOncePerChange(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s, cm, rec, _ := watched(t, m, "level={{ .Index }} v1", "--reload-signal", "HUP")
			waitLine(t, rec, "ready level=3 v1")
			rendertest.KubeletUpdate(t, cm, map[string]string{"app.conf.tmpl": "level={{ .Index }} v2"})
			waitLine(t, rec, "HUP level=3 v2")
			rendertest.KubeletUpdate(t, cm, map[string]string{"app.conf.tmpl": "level={{ .Index }} v2"}) // renders the same
			rendertest.KubeletUpdate(t, cm, map[string]string{"app.conf.tmpl": "level={{ .Index }} v3"})
			waitLine(t, rec, "HUP level=3 v3")
			stopped(t, s)
			if got, want := readFile(t, rec), "ready level=3 v1\nHUP level=3 v2\nHUP level=3 v3\n"; got != want {
				t.Errorf("the child saw:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// A change that does not render keeps the old file; the child runs on, unsignalled, and the
// next good change reaches it.
func TestTemplateWatchBadTemplateKeepsTheOldFile(t *testing.T) {
	s, cm, rec, conf := watched(t, modes[0], "level={{ .Index }} v1", "--reload-signal", "HUP")
	waitLine(t, rec, "ready level=3 v1")
	rendertest.KubeletUpdate(t, cm, map[string]string{"app.conf.tmpl": "level={{ .Indx }} v2"})
	poll(t, "the render error logged", func() bool { return strings.Contains(s.Stderr.String(), "do not render") })
	if !strings.Contains(s.Stderr.String(), `app.conf.tmpl:1:`) {
		t.Errorf("the error does not name the template and line:\n%s", s.Stderr.String())
	}
	if got := readFile(t, conf); got != "level=3 v1" {
		t.Errorf("the rendered file holds %q after a bad change; want the old one", got)
	}
	rendertest.KubeletUpdate(t, cm, map[string]string{"app.conf.tmpl": "level={{ .Index }} v3"})
	waitLine(t, rec, "HUP level=3 v3")
	stopped(t, s)
	if got, want := readFile(t, rec), "ready level=3 v1\nHUP level=3 v3\n"; got != want {
		t.Errorf("the child saw:\n%s\nwant:\n%s", got, want)
	}
}

// Without --reload-signal the files are rendered again and a line says so; nothing reaches
// the child.
func TestTemplateWatchWithoutReloadSignal(t *testing.T) {
	s, cm, rec, conf := watched(t, modes[0], "level={{ .Index }} v1")
	waitLine(t, rec, "ready level=3 v1")
	rendertest.KubeletUpdate(t, cm, map[string]string{"app.conf.tmpl": "level={{ .Index }} v2"})
	poll(t, "the file rendered again", func() bool { return readFile(t, conf) == "level=3 v2" })
	poll(t, "a line that says so", func() bool { return strings.Contains(s.Stderr.String(), "not signalled") })
	stopped(t, s)
	if got := readFile(t, rec); got != "ready level=3 v1\n" {
		t.Errorf("the child saw:\n%s\nwant only its start", got)
	}
}

// The options are checked before anything starts: exit 2, naming the fix.
func TestTemplateWatchOptionsRefused(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a.conf")
	writeFile(t, src, "a")
	tpl := src + ":" + filepath.Join(dir, "out.conf")
	rec := filepath.Join(dir, "rec")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--template-watch"}, "set --template too"},
		{[]string{"--template", tpl, "--reload-signal", "HUP"}, "set --template-watch too"},
		{[]string{"--template", tpl, "--template-watch", "--reload-signal", "BOGUS"}, "--reload-signal"},
	} {
		s := startSvinit(t, modes[1], "sleep", []string{"REC=" + rec}, append(tc.args, "--", selfBin)...)
		if code := s.Wait(); code != 2 || !strings.Contains(s.Stderr.String(), tc.want) {
			t.Errorf("%q: exit %d; want 2 naming %q:\n%s", tc.args, code, tc.want, s.Stderr.String())
		}
	}
	if _, err := os.Stat(rec); err == nil {
		t.Error("the child started")
	}
	if _, err := os.Stat(filepath.Join(dir, "out.conf")); err == nil {
		t.Error("a template was rendered")
	}
}

// A change made while svinit waits to start (here for --wait-for; a lock, a Lease or the
// license take as long) is what the child starts with, and costs it no signal: a SIGHUP a few milliseconds
// after its start would reach it before it could install its handler, and end it.
func TestTemplateWatchChangeBeforeTheStartIsWhatTheChildStartsWith(t *testing.T) {
	goFile := filepath.Join(t.TempDir(), "go")
	s, cm, rec, _ := watched(t, modes[0], "level={{ .Index }} v1", "--reload-signal", "HUP", "--wait-for", "file:"+goFile)
	poll(t, "svinit waiting", func() bool { return strings.Contains(s.Stderr.String(), "waiting for dependencies") })
	rendertest.KubeletUpdate(t, cm, map[string]string{"app.conf.tmpl": "level={{ .Index }} v2"})
	writeFile(t, goFile, "")
	waitLine(t, rec, "ready level=3 v2")
	// One more change: its SIGHUP comes after any the start could have caused.
	rendertest.KubeletUpdate(t, cm, map[string]string{"app.conf.tmpl": "level={{ .Index }} v3"})
	waitLine(t, rec, "HUP level=3 v3")
	stopped(t, s)
	if got, want := readFile(t, rec), "ready level=3 v2\nHUP level=3 v3\n"; got != want {
		t.Errorf("the child saw:\n%s\nwant:\n%s", got, want)
	}
}
