package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rs/zerolog"
)

func testLog(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
}

func TestWrite(t *testing.T) {
	// The mode must be exactly the one asked for, whatever the umask (the process-wide umask
	// is why this test is not parallel).
	defer syscall.Umask(syscall.Umask(0o077))
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/target", []byte("the target\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, symlinkTo string }{
		{"new/deeper/file", ""},
		{"to-file", dir + "/target"},
		{"dangling", dir + "/nowhere"},
	} {
		dst := filepath.Join(dir, tc.name)
		if tc.symlinkTo != "" {
			if err := os.Symlink(tc.symlinkTo, dst); err != nil {
				t.Fatal(err)
			}
		}
		if err := Write(dst, []byte("new\n"), 0o644, testLog(t)); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		fi, err := os.Lstat(dst)
		if err != nil || fi.Mode() != 0o644 {
			t.Errorf("%s: mode %v, %v; want a regular file 0644", tc.name, fi.Mode(), err)
		}
		if b, err := os.ReadFile(dst); string(b) != "new\n" {
			t.Errorf("%s: content %q, %v", tc.name, b, err)
		}
	}
	if b, _ := os.ReadFile(dir + "/target"); string(b) != "the target\n" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	if _, err := os.Lstat(dir + "/nowhere"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the dangling symlink's target was created: %v", err)
	}
}

func TestKeepOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file away")
	}
	dst := t.TempDir() + "/dst.yaml"
	if err := os.WriteFile(dst, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dst, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := Write(dst, []byte("id: 1\n"), 0o640, testLog(t)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 1000 || st.Gid != 1000 || fi.Mode() != 0o640 {
		t.Errorf("owner %d:%d mode %v, want 1000:1000 0640", st.Uid, st.Gid, fi.Mode())
	}
}

func TestStaleTempsRemoved(t *testing.T) {
	dir := t.TempDir()
	for _, stale := range []string{".dst.yaml.svinit-tmp-123", ".other.yaml.svinit-tmp-456"} {
		if err := os.WriteFile(filepath.Join(dir, stale), []byte("left by a killed svinit"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := Write(dir+"/dst.yaml", []byte("id: 1\n"), 0o644, testLog(t)); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got, want := strings.Join(names, " "), ".other.yaml.svinit-tmp-456 dst.yaml"; got != want {
		t.Errorf("directory holds %q; want %q (another file's temporary file kept)", got, want)
	}
}
