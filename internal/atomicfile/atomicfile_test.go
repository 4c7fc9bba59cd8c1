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

// Symlinks another user planted in a directory svinit writes in (at the license file's or a
// rendered file's path, or under the name of a temporary file) are replaced or removed,
// never followed: the file of root's they point to is neither written nor read.
func TestPlantedSymlinksNotFollowed(t *testing.T) {
	if os.Geteuid() != 0 {
		if testing.Short() {
			t.Skip("needs root to act as another user; skipped in -short mode")
		}
		t.Fatal("needs root to act as another user: run as root, or with -short")
	}
	target := filepath.Join(t.TempDir(), "root-only")
	if err := os.WriteFile(target, []byte("root's secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "shared")
	if err := errors.Join(os.Mkdir(dir, 0o755), os.Chown(dir, 1000, 1000)); err != nil {
		t.Fatal(err)
	}
	dst, stale := dir+"/license.lic", dir+"/.license.lic.svinit-tmp-1"
	for _, link := range []string{dst, stale} {
		if err := errors.Join(os.Symlink(target, link), os.Lchown(link, 1000, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteFor(dst, []byte("license\n"), 0o600, &Owner{UID: 1000, GID: 1000}, testLog(t)); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(target)
	st0, st1 := before.Sys().(*syscall.Stat_t), after.Sys().(*syscall.Stat_t)
	if string(b) != "root's secret\n" || after.Mode() != 0o600 || st1.Uid != 0 || st1.Atim != st0.Atim {
		t.Errorf("the target was touched: %q, mode %v, uid %d, read %v", b, after.Mode(), st1.Uid, st1.Atim != st0.Atim)
	}
	if fi, err := os.Lstat(dst); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("%s: %v, %v; want a regular file in place of the symlink", dst, fi.Mode(), err)
	}
	if _, err := os.Lstat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the symlink under a temporary file's name is left: %v", err)
	}
}

// Where renameat2 cannot exchange (a file system without it, a kernel or seccomp profile
// without the call), files are still written, by a plain rename; a real failure is not
// mistaken for that.
func TestPlainRenameWhereExchangeIsMissing(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&os.LinkError{Op: "exchange", Err: syscall.EINVAL}, true},
		{&os.LinkError{Op: "exchange", Err: syscall.ENOSYS}, true},
		{&os.LinkError{Op: "exchange", Err: syscall.EPERM}, true},
		{&os.LinkError{Op: "exchange", Err: syscall.ENOSPC}, false},
		{&os.LinkError{Op: "exchange", Err: syscall.EROFS}, false},
	} {
		if got := cannotExchange(c.err); got != c.want {
			t.Errorf("cannotExchange(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
