package supervisor

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/license"
	"github.com/svinit/svinit/internal/reaper"
)

// --template-watch needs a --template, and --reload-signal a --template-watch and a signal:
// refused before anything is taken, each naming the fix.
func TestTemplateWatchOptionsRefused(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a.conf")
	if err := os.WriteFile(src, []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tpl := src + ":" + filepath.Join(dir, "out.conf")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--template-watch"}, "--template-watch: it watches the --template sources; set --template too"},
		{[]string{"--template", tpl, "--reload-signal", "HUP"}, "--reload-signal HUP: it tells the child that --template-watch rendered the templates again; set --template-watch too"},
		{[]string{"--template", tpl, "--template-watch", "--reload-signal", "BOGUS"}, "--reload-signal: "},
	} {
		cfg := parse(t, append(tc.args, "--", "/bin/true")...)
		_, err := New(Params{Config: cfg, Log: zerolog.Nop(), Env: os.Environ(), Redactor: license.NewRedactor(), Reaper: reaper.New(zerolog.Nop())})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want an error with %q", tc.args, err, tc.want)
		}
	}
}

// --reload-signal asks the program to read its files again: a signal it cannot catch (KILL
// would end it at every change, STOP freeze it until the stop) is refused before anything is
// taken; a name in any case, with or without SIG, and a number are taken.
func TestReloadSignalIsOneTheProgramCanCatch(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a.conf")
	if err := os.WriteFile(src, []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sig  string
		want unix.Signal // 0: refused
	}{
		{"KILL", 0}, {"SIGKILL", 0}, {"9", 0}, {"stop", 0}, {"19", 0},
		{"HUP", unix.SIGHUP}, {"sighup", unix.SIGHUP}, {"1", unix.SIGHUP}, {"usr1", unix.SIGUSR1}, {"TERM", unix.SIGTERM},
	} {
		cfg := parse(t, "--template", src+":"+filepath.Join(dir, "out.conf"), "--template-watch", "--reload-signal", tc.sig, "--", "/bin/true")
		s, err := New(Params{Config: cfg, Log: zerolog.Nop(), Env: os.Environ(), Redactor: license.NewRedactor(), Reaper: reaper.New(zerolog.Nop())})
		switch {
		case tc.want == 0 && (err == nil || !strings.Contains(err.Error(), "--reload-signal "+tc.sig+": the program cannot catch")):
			t.Errorf("--reload-signal %s: %v; want it refused, saying the program cannot catch it", tc.sig, err)
		case tc.want != 0 && err != nil:
			t.Errorf("--reload-signal %s: %v", tc.sig, err)
		case tc.want != 0 && s.templateSignal != tc.want:
			t.Errorf("--reload-signal %s is signal %d, want %d", tc.sig, s.templateSignal, tc.want)
		}
	}

	// The license's reload signal too.
	for _, sig := range []string{"KILL", "stop"} {
		cfg := parse(t, "--license-file", filepath.Join(dir, "license"), "--license-reload-signal", sig, "--", "/bin/true")
		_, err := New(Params{Config: cfg, Log: zerolog.Nop(), Env: os.Environ(), Redactor: license.NewRedactor(), Reaper: reaper.New(zerolog.Nop())})
		if err == nil || !strings.Contains(err.Error(), "--license-reload-signal "+sig+": the program cannot catch") {
			t.Errorf("--license-reload-signal %s: %v; want it refused, saying the program cannot catch it", sig, err)
		}
	}
}

// A change that does not render (a bad template, here in one file of two) keeps every
// rendered file as it was, and the error is logged without the values the templates use;
// the next good change is rendered. With no child, nothing is signalled.
func TestRenderErrorKeepsTheOldFiles(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	write := func(name, content string) {
		t.Helper()
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.conf.tmpl", `token={{ env "APP_TOKEN" }} v1`)
	write("b.conf", "b v1")
	var logs bytes.Buffer
	cfg := parse(t, "--template", src+":"+dst, "--template-watch", "--", "/bin/true")
	s, err := New(Params{Config: cfg, Log: zerolog.New(&logs), Env: append(os.Environ(), "APP_TOKEN=s3cr3t-value"),
		Redactor: license.NewRedactor(), Reaper: reaper.New(zerolog.Nop())})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.plan.Write(); err != nil {
		t.Fatal(err)
	}
	w := &watchStep{s: s, written: s.plan}
	wantFiles := func(a, b string) {
		t.Helper()
		for file, want := range map[string]string{"a.conf": a, "b.conf": b} {
			if got, err := os.ReadFile(filepath.Join(dst, file)); err != nil || string(got) != want {
				t.Errorf("%s holds %q, %v; want %q", file, got, err, want)
			}
		}
	}

	write("b.conf", "b v2")
	write("a.conf.tmpl", `token={{ env "APP_TOKEN" }} {{ .Missing }}`)
	w.rerender()
	wantFiles("token=s3cr3t-value v1", "b v1")
	if !strings.Contains(logs.String(), "a.conf.tmpl:1:") || !strings.Contains(logs.String(), "Missing") {
		t.Errorf("the log does not name the bad template:\n%s", logs.String())
	}

	write("a.conf.tmpl", "gone")
	os.Remove(filepath.Join(src, "b.conf"))
	os.Remove(filepath.Join(src, "a.conf.tmpl"))
	w.rerender() // the directory is empty: an error too
	wantFiles("token=s3cr3t-value v1", "b v1")

	write("a.conf.tmpl", `token={{ env "APP_TOKEN" }} v3`)
	write("b.conf", "b v3")
	w.rerender()
	wantFiles("token=s3cr3t-value v3", "b v3")
	if !strings.Contains(logs.String(), "not signalled") {
		t.Errorf("no line says the files were rendered again without a signal:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "s3cr3t-value") {
		t.Errorf("a value a template uses reached the log:\n%s", logs.String())
	}
}

// A render that ends after the watch was stopped (its sources on a slow file system held it
// past watchStopWait) writes nothing: the clean-up goes on without it and releases the lock,
// and a DST on the locked volume is the next holder's by then.
func TestRenderEndingAfterTheWatchStoppedWritesNothing(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "a.conf"), filepath.Join(dir, "out.conf")
	if err := os.WriteFile(src, []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := parse(t, "--template", src+":"+dst, "--template-watch", "--", "/bin/true")
	s, err := New(Params{Config: cfg, Log: zerolog.Nop(), Env: os.Environ(), Redactor: license.NewRedactor(), Reaper: reaper.New(zerolog.Nop())})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.plan.Write(); err != nil {
		t.Fatal(err)
	}
	w := s.watchStep().(*watchStep)
	w.Start(make(chan struct{}))
	w.Stop()
	<-w.w.Done() // no render of its own runs beside this test's
	if err := os.WriteFile(src, []byte("v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.rerender() // as a render under way at the stop ends
	if got, err := os.ReadFile(dst); err != nil || string(got) != "v1\n" {
		t.Errorf("%s holds %q, %v after the watch stopped; want it as it was", dst, got, err)
	}
}

// fakeWatch records when the life cycle starts and stops the watch, and keeps its stop.
type fakeWatch struct {
	h    *harness
	stop <-chan struct{}
}

func (w *fakeWatch) Refresh()                   { w.h.record("watch refresh") }
func (w *fakeWatch) Start(stop <-chan struct{}) { w.stop = stop; w.h.record("watch start") }
func (w *fakeWatch) Stop()                      { w.h.record("watch stop") }

// The templates are rendered again after the seat is taken and just before the child starts:
// a change made while svinit waited (a lock, a license server that is slow to answer) is what
// the child starts with, and needs no reload signal a moment after its start, before it
// could catch one.
func TestTemplatesRenderedAgainJustBeforeTheStart(t *testing.T) {
	h := newHarness(t, "running")
	h.child.exitOn = map[unix.Signal]unix.WaitStatus{unix.SIGTERM: killedBy(unix.SIGTERM)}
	h.life.Watch = &fakeWatch{h: h}
	h.run(func() {
		h.waitPhase()
		h.signal(unix.SIGTERM)
	})
	ev := h.events()
	at := func(e string) int { return slices.Index(ev, e) }
	if refresh := at("watch refresh"); refresh < 0 || refresh < at("activate") || refresh > at(fmt.Sprintf("start fd=%d", fakeLockFD)) {
		t.Errorf("steps did %q; want the templates rendered again between the activation and the start", ev)
	}
}

// The watch runs from the child's start to its exit, before the clean-up; its stop channel
// is closed by the first stop signal, and not by an exit of the child's own.
func TestWatchRunsWhileTheChildRuns(t *testing.T) {
	for _, tc := range []struct {
		name       string
		drive      func(h *harness)
		stopClosed bool
		want       int
	}{
		{"stopped", func(h *harness) { h.signal(unix.SIGTERM) }, true, 143},
		{"exits by itself", func(h *harness) { h.child.exit(exitStatus(3)) }, false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "running")
			h.child.exitOn = map[unix.Signal]unix.WaitStatus{unix.SIGTERM: killedBy(unix.SIGTERM)}
			w := &fakeWatch{h: h}
			h.life.Watch = w
			code := h.run(func() {
				h.waitPhase()
				tc.drive(h)
			})
			ev := h.events()
			at := func(e string) int { return slices.Index(ev, e) }
			if code != tc.want || at("watch start") < at("state running 100") || at("watch stop") < at("watch start") ||
				at("clean-up set") >= 0 && at("clean-up set") < at("watch stop") || at("clean-up none") >= 0 && at("clean-up none") < at("watch stop") {
				t.Errorf("exit %d, steps did %q; want %d, the watch from the child's start to before the clean-up", code, ev, tc.want)
			}
			select {
			case <-w.stop:
				if !tc.stopClosed {
					t.Error("the watch's stop is closed, and nobody asked the child to stop")
				}
			default:
				if tc.stopClosed {
					t.Error("the watch's stop is open after a stop signal")
				}
			}
		})
	}
}

// Without --template-watch there is no watch step: no inotify descriptor, no goroutine.
func TestNoWatchWithoutTheOption(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a.conf")
	if err := os.WriteFile(src, []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := parse(t, "--template", src+":"+filepath.Join(dir, "out.conf"), "--", "/bin/true")
	s, err := New(Params{Config: cfg, Log: zerolog.Nop(), Env: os.Environ(), Redactor: license.NewRedactor(), Reaper: reaper.New(zerolog.Nop())})
	if err != nil {
		t.Fatal(err)
	}
	if w := s.watchStep(); w != nil {
		t.Errorf("a watch step %T without --template-watch", w)
	}
}
