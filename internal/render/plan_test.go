package render

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fillUp writes into a file in dir until the file system is full.
func fillUp(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 64<<10)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return
		}
	}
}

// bindOver mounts a file over dst, as a Kubernetes subPath volume does: a rename onto dst
// then fails with EBUSY, after every temporary file was written.
func bindOver(t *testing.T, dst string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "mounted")
	writeFile(t, src, "mounted\n", 0o644)
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s: %v", dst, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dst, 0); err != nil {
			t.Errorf("unmount %s: %v", dst, err)
		}
	})
}

// svinitTemps lists the temporary files left in dir.
func svinitTemps(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		if strings.Contains(e.Name(), ".svinit-tmp-") {
			left = append(left, e.Name())
		}
	}
	return left
}

// When any file of a plan cannot be written, no DST is replaced or created and no temporary
// file is left: a full disk, a read-only directory or a DST mounted over (rename fails) under
// the last template must not leave the first ones rendered.
func TestTemplatesAllOrNothing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(t *testing.T, mnt, dst string)
		want    string // the failing file's content afterwards
	}{
		{"full disk", func(t *testing.T, mnt, _ string) { fillUp(t, mnt) }, "old 3\n"},
		{"read-only directory", func(t *testing.T, mnt, _ string) { remountReadOnly(t, mnt) }, "old 3\n"},
		{"rename fails", func(t *testing.T, _, dst string) { bindOver(t, dst) }, "mounted\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mnt := mountTmpfs(t)
			dir := t.TempDir()
			writeFile(t, dir+"/src.yaml", "id: {id}\n"+strings.Repeat("x", 256<<10)+"\n", 0o644)
			writeFile(t, dir+"/first.yaml", "old 1\n", 0o644)
			writeFile(t, mnt+"/third.yaml", "old 3\n", 0o644)
			plan, err := Prepare([]Spec{
				{Src: dir + "/src.yaml", Dst: dir + "/first.yaml"},
				{Src: dir + "/src.yaml", Dst: dir + "/second.yaml"},
				{Src: dir + "/src.yaml", Dst: dir + "/new/dir/fourth.yaml"},
				{Src: dir + "/src.yaml", Dst: mnt + "/third.yaml"},
			}, Options{Data: Data{Index: 1, HasIndex: true}, Log: testLog(t)})
			if err != nil {
				t.Fatal(err)
			}
			tc.breakIt(t, mnt, mnt+"/third.yaml")
			err = plan.Write()
			if err == nil || !strings.Contains(err.Error(), mnt+"/third.yaml") {
				t.Fatalf("Write = %v; want an error naming %s", err, mnt+"/third.yaml")
			}
			t.Logf("Write: %v", err)
			if got := readFile(t, dir+"/first.yaml"); got != "old 1\n" {
				t.Errorf("the first DST was replaced: %.20q", got)
			}
			if _, err := os.Lstat(dir + "/second.yaml"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the second DST was created: %v", err)
			}
			if _, err := os.Lstat(dir + "/new"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the fourth DST's directory was left: %v", err)
			}
			if got := readFile(t, mnt+"/third.yaml"); got != tc.want {
				t.Errorf("the third DST holds %.20q, want %q", got, tc.want)
			}
			for _, d := range []string{dir, mnt} {
				if left := svinitTemps(t, d); len(left) != 0 {
					t.Errorf("temporary files left in %s: %q", d, left)
				}
			}
		})
	}
}

// A re-render reports the DSTs whose content is new: changed ones and new ones, not those
// that render the same, nor a mode alone.
func TestPlanChangedNamesNewContent(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/src/a", "a {id}", 0o644)
	writeFile(t, dir+"/src/b", "b", 0o644)
	spec := []Spec{{Src: dir + "/src", Dst: dir + "/dst"}}
	prepare := func(index int) *Plan {
		t.Helper()
		p, err := Prepare(spec, Options{Data: Data{Index: index, HasIndex: true}, Log: testLog(t)})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := prepare(1)
	if got := prepare(1).Changed(first); len(got) != 0 {
		t.Errorf("the same render changed %q", got)
	}
	os.Chmod(dir+"/src/b", 0o600)
	if got := prepare(1).Changed(first); len(got) != 0 {
		t.Errorf("a mode alone changed %q", got)
	}
	writeFile(t, dir+"/src/c", "c", 0o644)
	sameList(t, "changed", prepare(2).Changed(first), []string{dir + "/dst/a", dir + "/dst/c"})
	if got := first.Changed(nil); len(got) != 2 {
		t.Errorf("against no plan, changed %q; want both", got)
	}
}
