package supervisor

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

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
