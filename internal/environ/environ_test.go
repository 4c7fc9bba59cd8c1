package environ

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestExpandFilesOnlyTheNamesAskedFor(t *testing.T) {
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
	bundle := write("ca.pem", "-----BEGIN CERTIFICATE-----\n")
	env := []string{"PATH=/bin", "DB_PASSWORD_FILE=" + pw, "TOKEN_FILE=" + tok, "SSL_CERT_FILE=" + bundle, "TF_CLI_CONFIG_FILE=/missing"}
	got, read, err := ExpandFiles(env, []string{"DB_PASSWORD", "TOKEN", "TOKEN", "UNSET"}, "_FILE")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PATH=/bin", "DB_PASSWORD=s3cret", "TOKEN=line1\nline2", "SSL_CERT_FILE=" + bundle, "TF_CLI_CONFIG_FILE=/missing"}
	if !slices.Equal(got, want) || !slices.Equal(read, []string{"DB_PASSWORD", "TOKEN"}) {
		t.Fatalf("got %q, read %q; want %q", got, read, want)
	}
	if off, read, _ := ExpandFiles(env, nil, "_FILE"); !slices.Equal(off, env) || read != nil {
		t.Fatalf("no names changed the environment: %q", off)
	}
}

func TestExpandFilesErrors(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, maxSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"MISSING_FILE=" + filepath.Join(dir, "nope"),
		"BOTH=x", "BOTH_FILE=" + big,
		"BIG_FILE=" + big,
		"DIR_FILE=" + dir,
		"FIFO_FILE=" + fifo,
	}
	got, read, err := ExpandFiles(env, []string{"MISSING", "BOTH", "BIG", "DIR", "FIFO"}, "_FILE")
	if got != nil || read != nil || err == nil {
		t.Fatalf("got %q, %q, %v; want nothing and an error", got, read, err)
	}
	for _, want := range []string{
		"--file-env MISSING: MISSING_FILE=" + filepath.Join(dir, "nope") + ": open",
		"--file-env BOTH: BOTH and BOTH_FILE are both set",
		"BIG_FILE=" + big + ": larger than",
		"DIR_FILE=" + dir + ": not a regular file (a directory)",
		"FIFO_FILE=" + fifo + ": not a regular file (a named pipe)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not report %q", err, want)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 5 {
		t.Errorf("%d problems reported, want 5:\n%s", n, err)
	}
}

func TestReadFileFollowsSecretVolumeSymlinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "..data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "..data", "key"), []byte("value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/key", filepath.Join(dir, "key")); err != nil {
		t.Fatal(err)
	}
	if v, err := ReadFile(filepath.Join(dir, "key")); err != nil || v != "value" {
		t.Fatalf("ReadFile through the symlink = %q, %v", v, err)
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
