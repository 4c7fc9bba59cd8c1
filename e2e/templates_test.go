package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proctest"
)

// fullTmpfs mounts a small tmpfs and fills it, so that no file with content fits in it.
func fullTmpfs(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	writeFile(t, filepath.Join(dir, "config.yaml"), "old 2\n")
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for block := make([]byte, 64<<10); ; {
		if _, err := f.Write(block); errors.Is(err, unix.ENOSPC) {
			return dir
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

// When the second template's DST is on a full disk, the first DST is not replaced either,
// and the log's "nothing started" is true.
func TestFullDiskChangesNoTemplate(t *testing.T) {
	full := fullTmpfs(t)
	dir := t.TempDir()
	src, first, second := filepath.Join(dir, "src.yaml"), filepath.Join(dir, "first.yaml"), filepath.Join(full, "config.yaml")
	writeFile(t, src, "id: {id}\n")
	writeFile(t, first, "old 1\n")
	rec := filepath.Join(dir, "rec")
	s := startSvinit(t, modes[1], "sleep", []string{"REC=" + rec, "SVINIT_REPLICA_INDEX=1"},
		"--template", src+":"+first, "--template", src+":"+second, "--", selfBin)
	if code := s.Wait(); code == 0 || !strings.Contains(s.Stderr.String(), "no space left on device") {
		t.Fatalf("exit %d, want a failure naming the full disk:\n%s", code, s.Stderr.String())
	}
	if got := readFile(t, first); got != "old 1\n" {
		t.Errorf("the first DST was replaced: %q", got)
	}
	if got := readFile(t, second); got != "old 2\n" {
		t.Errorf("the second DST holds %q", got)
	}
	for _, d := range []string{dir, full} {
		if left, _ := filepath.Glob(filepath.Join(d, ".*.svinit-tmp-*")); len(left) != 0 {
			t.Errorf("temporary files left: %q", left)
		}
	}
	if proctest.HasLine(rec, "ready") {
		t.Error("the child started")
	}
}
