package render

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// tree lists the regular files under dir as "relpath mode content".
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out = append(out, rel+" "+modeOf(t, path).String()+" "+readFile(t, path))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func sameList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestDirectoryMode(t *testing.T) {
	// Modes must be exactly SRC's, whatever the umask (the process-wide umask is why this
	// test is not parallel).
	defer syscall.Umask(syscall.Umask(0o077))
	dir := t.TempDir()
	src := dir + "/src"
	writeFile(t, src+"/a.yaml", "a: {id}\n", 0o640)
	writeFile(t, src+"/run.sh", "#!/bin/sh\nexec app --id={id}\n", 0o755)
	writeFile(t, src+"/.hidden", "dot files count", 0o600)
	writeFile(t, src+"/nested/b.txt", "b {{ .Index }} stays\n", 0o444)
	writeFile(t, src+"/nested/deeper/c.conf.tmpl", "c={{ .Index }} of {{ .Replicas }}\n", 0o600)
	writeFile(t, src+"/..skipped", "a ConfigMap volume's own entries start with ..", 0o644)
	if err := unix.Mkfifo(src+"/fifo", 0o644); err != nil { // skipped, never opened
		t.Fatal(err)
	}
	data := Data{Index: 5, HasIndex: true, Replicas: 6, HasReplicas: true}
	plan := render(t, []Spec{{Src: src, Dst: dir + "/dst/conf"}}, Options{Data: data})
	sameList(t, "DST tree", tree(t, dir+"/dst/conf"), []string{
		".hidden -rw------- dot files count",
		"a.yaml -rw-r----- a: 5\n",
		"nested/b.txt -r--r--r-- b {{ .Index }} stays\n",
		"nested/deeper/c.conf -rw------- c=5 of 6\n",
		"run.sh -rwxr-xr-x #!/bin/sh\nexec app --id=5\n",
	})
	if n := len(plan.Files()); n != 5 {
		t.Errorf("Files() has %d entries: %v", n, plan.Files())
	}

	// --template-mode sets every file's mode.
	render(t, []Spec{{Src: src, Dst: dir + "/dst2"}}, Options{Data: data, Mode: 0o640})
	for _, line := range tree(t, dir+"/dst2") {
		if !strings.Contains(line, " -rw-r----- ") {
			t.Errorf("--template-mode 0640 not applied: %q", line)
		}
	}

	// Two sources of one DST file are refused.
	writeFile(t, src+"/a.yaml.tmpl", "a: {{ .Index }}\n", 0o640)
	err := prepareErr(t, []Spec{{Src: src, Dst: dir + "/dst3"}}, data)
	if want := src + "/a.yaml.tmpl: renders to " + dir + "/dst3/a.yaml, as " + src + "/a.yaml does: give each template its own DST"; err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestSymlinkLoop(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/src/a", "a", 0o644)
	if err := os.Symlink(".", dir+"/src/sub"); err != nil {
		t.Fatal(err)
	}
	err := prepareErr(t, []Spec{{Src: dir + "/src", Dst: dir + "/dst"}}, Data{})
	if want := "template " + dir + "/src/sub: symlink loop: it leads back to a directory above it"; err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// configMapVolume lays dir out as the kubelet does for a ConfigMap volume: the files in a
// timestamped directory, ..data pointing at it, and each key a symlink through ..data.
// A key with a slash gets a symlink for its first directory.
func configMapVolume(t *testing.T, dir, stamp string, files map[string]string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		writeFile(t, filepath.Join(dir, stamp, name), content, mode)
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(stamp, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil { // the kubelet's atomic swap
		t.Fatal(err)
	}
	for name := range files {
		first, _, _ := strings.Cut(name, "/")
		link := filepath.Join(dir, first)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", first), link); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConfigMapVolume(t *testing.T) {
	dir := t.TempDir()
	cm := dir + "/agdb/config"
	agdb := map[string]string{
		"agdb_server.yaml":   readFile(t, "testdata/agdb/agdb_server.yaml"),
		"start.sh":           readFile(t, "testdata/agdb/start.sh"),
		"extra/cluster.tmpl": "{{ seq .Replicas | join \",\" }}\n",
	}
	// defaultMode: 511 in the agdb manifest is 0777; a ConfigMap mount is read-only.
	configMapVolume(t, cm, "..2024_01_01_12_00_00.123456789", agdb, 0o777)
	lockDown(t, cm)
	data := Data{Index: 1, HasIndex: true, Replicas: 3, HasReplicas: true}

	render(t, []Spec{{Src: cm, Dst: dir + "/out"}}, Options{Data: data})
	wantYAML := string(sed(t, cm+"/agdb_server.yaml", "1"))
	sameList(t, "rendered ConfigMap", tree(t, dir+"/out"), []string{
		"agdb_server.yaml -r-xr-xr-x " + wantYAML,
		"extra/cluster -r-xr-xr-x 0,1,2\n",
		"start.sh -r-xr-xr-x " + string(sed(t, cm+"/start.sh", "1")),
	})
	// One key of the volume, as the agdb start.sh used it.
	render(t, []Spec{{Src: cm + "/agdb_server.yaml", Dst: dir + "/agdb/agdb_server.yaml"}}, Options{Data: data})
	if got := readFile(t, dir+"/agdb/agdb_server.yaml"); got != wantYAML {
		t.Errorf("single key:\n got %q\nwant %q", got, wantYAML)
	}

	// The kubelet updates the volume by swapping ..data; the next render sees the new files.
	unlock(t, cm)
	agdb["agdb_server.yaml"] = "address: http://agdb-{id}.agdb:3001\n"
	if err := os.Remove(cm + "/..data"); err != nil {
		t.Fatal(err)
	}
	configMapVolume(t, cm, "..2024_01_02_00_00_00.987654321", agdb, 0o644)
	render(t, []Spec{{Src: cm, Dst: dir + "/out"}}, Options{Data: data})
	if got := readFile(t, dir+"/out/agdb_server.yaml"); got != "address: http://agdb-1.agdb:3001\n" {
		t.Errorf("after the ConfigMap update: %q", got)
	}
	if m := modeOf(t, dir+"/out/agdb_server.yaml"); m != 0o644 {
		t.Errorf("after the ConfigMap update: mode %v, want 0644", m)
	}
}

// lockDown takes the write bits off everything under dir, as a read-only ConfigMap mount
// looks; unlock gives the directories theirs back so that the test can clean up.
func lockDown(t *testing.T, dir string) {
	t.Helper()
	chmodTree(t, dir, func(m fs.FileMode) fs.FileMode { return m &^ 0o222 })
	t.Cleanup(func() { unlock(t, dir) })
}

func unlock(t *testing.T, dir string) {
	chmodTree(t, dir, func(m fs.FileMode) fs.FileMode { return m | 0o200 })
}

func chmodTree(t *testing.T, dir string, change func(fs.FileMode) fs.FileMode) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return os.Chmod(path, change(fi.Mode().Perm()))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestReadOnlySource(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/ro/agdb_server.yaml", readFile(t, "testdata/agdb/agdb_server.yaml"), 0o444)
	if err := os.Chmod(dir+"/ro", 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir+"/ro", 0o755) })
	render(t, []Spec{{Src: dir + "/ro/agdb_server.yaml", Dst: dir + "/agdb_server.yaml"}}, Options{Data: Data{Index: 2, HasIndex: true}})
	if got, want := readFile(t, dir+"/agdb_server.yaml"), string(sed(t, dir+"/ro/agdb_server.yaml", "2")); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if m := modeOf(t, dir+"/agdb_server.yaml"); m != 0o444 {
		t.Errorf("mode %v, want SRC's 0444", m)
	}
	// Rendered again over its own read-only output: the rename replaces it.
	render(t, []Spec{{Src: dir + "/ro/agdb_server.yaml", Dst: dir + "/agdb_server.yaml"}}, Options{Data: Data{Index: 0, HasIndex: true}})
	if got := readFile(t, dir+"/agdb_server.yaml"); !strings.Contains(got, "agdb-0.agdb") {
		t.Errorf("second render: %q", got)
	}
}

// TestReadOnlyMounts uses real read-only mounts: the ConfigMap SRC (the normal case) and a
// DST directory that cannot be written, which must fail in Prepare, before any file is written.
func TestReadOnlyMounts(t *testing.T) {
	srcMnt := mountTmpfs(t)
	configMapVolume(t, srcMnt, "..2024_01_01_12_00_00.1", map[string]string{"agdb_server.yaml": "address: agdb-{id}\n"}, 0o444)
	remountReadOnly(t, srcMnt)
	dir := t.TempDir()
	render(t, []Spec{{Src: srcMnt, Dst: dir + "/out"}}, Options{Data: Data{Index: 3, HasIndex: true}})
	if got := readFile(t, dir+"/out/agdb_server.yaml"); got != "address: agdb-3\n" {
		t.Errorf("got %q", got)
	}

	dstMnt := mountTmpfs(t)
	writeFile(t, dstMnt+"/agdb_server.yaml", "old\n", 0o644)
	remountReadOnly(t, dstMnt)
	err := prepareErr(t, []Spec{
		{Src: srcMnt + "/agdb_server.yaml", Dst: dir + "/first.yaml"},
		{Src: srcMnt + "/agdb_server.yaml", Dst: dstMnt + "/agdb_server.yaml"},
		{Src: srcMnt + "/agdb_server.yaml", Dst: dstMnt + "/new/agdb_server.yaml"},
	}, Data{Index: 3, HasIndex: true})
	want := srcMnt + "/agdb_server.yaml: cannot write " + dstMnt + "/agdb_server.yaml: " + dstMnt + ": read-only file system\n" +
		srcMnt + "/agdb_server.yaml: cannot write " + dstMnt + "/new/agdb_server.yaml: " + dstMnt + ": read-only file system"
	if err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	if _, err := os.Stat(dir + "/first.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the first template was written although the second cannot be: %v", err)
	}
}

func TestSymlinkDst(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/src.yaml", "id: {id}\n", 0o640)
	writeFile(t, dir+"/target.yaml", "the target\n", 0o600)
	for _, link := range []struct{ name, to string }{
		{"to-file.yaml", dir + "/target.yaml"},
		{"relative.yaml", "target.yaml"},
		{"dangling.yaml", dir + "/nowhere.yaml"},
		{"to-dir.yaml", dir},
	} {
		dst := dir + "/" + link.name
		if err := os.Symlink(link.to, dst); err != nil {
			t.Fatal(err)
		}
		render(t, []Spec{{Src: dir + "/src.yaml", Dst: dst}}, Options{Data: Data{Index: 1, HasIndex: true}})
		if m := modeOf(t, dst); m != 0o640 {
			t.Errorf("%s: mode %v, want a regular file 0640 in place of the symlink", link.name, m)
		}
		if got := readFile(t, dst); got != "id: 1\n" {
			t.Errorf("%s: %q", link.name, got)
		}
	}
	if got := readFile(t, dir+"/target.yaml"); got != "the target\n" {
		t.Errorf("the symlink's target was written: %q", got)
	}
	if _, err := os.Lstat(dir + "/nowhere.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the dangling symlink's target was created: %v", err)
	}
}
