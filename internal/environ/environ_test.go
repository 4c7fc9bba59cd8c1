package environ

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestExpandFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pw := write("pw", "s3cret\n\n")
	tok := write("tok", "line1\nline2\r\n")
	env := []string{"PATH=/bin", "DB_PASSWORD_FILE=" + pw, "TOKEN_FILE=" + tok, "SVINIT_LICENSE_KEY_FILE=/run/key"}
	got, err := ExpandFiles(env, "_FILE")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PATH=/bin", "DB_PASSWORD=s3cret", "TOKEN=line1\nline2", "SVINIT_LICENSE_KEY_FILE=/run/key"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if off, _ := ExpandFiles(env, ""); !slices.Equal(off, env) {
		t.Fatalf("suffix off changed the environment: %q", off)
	}
}

func TestExpandFilesErrors(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, maxSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"MISSING_FILE=" + filepath.Join(dir, "nope"),
		"BOTH=x", "BOTH_FILE=" + big,
		"_FILE=/x",
		"BIG_FILE=" + big,
		"DIR_FILE=" + dir,
	}
	got, err := ExpandFiles(env, "_FILE")
	if got != nil || err == nil {
		t.Fatalf("got %q, %v; want nothing and an error", got, err)
	}
	for _, want := range []string{
		"MISSING_FILE=" + filepath.Join(dir, "nope") + ": open",
		"BOTH and BOTH_FILE are both set",
		"_FILE: no variable name",
		"BIG_FILE=" + big + ": larger than",
		"DIR_FILE=" + dir + ": read",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not report %q", err, want)
		}
	}
}

func TestLookupAndSet(t *testing.T) {
	env := []string{"HOME=/root", "A=1", "HOME=/other"}
	if v, ok := Lookup(env, "HOME"); !ok || v != "/other" {
		t.Fatalf("Lookup = %q, %v", v, ok)
	}
	if _, ok := Lookup(env, "HOM"); ok {
		t.Fatal("Lookup matched a prefix")
	}
	if got := Set(env, "HOME", "/home/sv"); !slices.Equal(got, []string{"A=1", "HOME=/home/sv"}) {
		t.Fatalf("Set = %q", got)
	}
}
