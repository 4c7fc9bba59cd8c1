package state

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestAlive(t *testing.T) {
	if !Self(nil).Alive() {
		t.Fatal("this process is not alive")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if (Process{PID: cmd.Process.Pid}).Alive() {
		t.Fatal("a reaped process is alive")
	}
	reused := Self(nil)
	reused.StartTicks++ // another process that got this pid later
	if reused.Alive() {
		t.Fatal("a process with another start time is alive")
	}
}

func TestTrackerWritesAtomically(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "state.json")
	tr := NewTracker(path, Self([]string{"svinit"}), zerolog.Nop())
	tr.Phase(Running)
	st, err := Read(path)
	if err != nil || st.Phase != Running || st.Svinit.PID != os.Getpid() || st.Version != Version {
		t.Fatalf("Read = %+v, %v", st, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, %v; want 0644", fi.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %q", left)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Fatal("Read of a missing file succeeded")
	}
}

// The defaults are read in the order svinit writes them, whichever is newer: a file another
// user wrote later in /tmp must not win over root's in /run.
func TestReadPathPrefersTheFirstDefault(t *testing.T) {
	dir := t.TempDir()
	first, second := filepath.Join(dir, "run", "state.json"), filepath.Join(dir, "tmp", "state.json")
	saved := defaultPaths
	defaultPaths = []string{first, second}
	t.Cleanup(func() { defaultPaths = saved })

	if got := ReadPath(); got != first {
		t.Errorf("none exists: ReadPath() = %s, want %s", got, first)
	}
	for _, p := range []string{second, first} { // the second written first, then the first
		if err := Write(p, State{Version: Version}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(second, time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := ReadPath(); got != first {
		t.Errorf("both exist, the second newer: ReadPath() = %s, want %s", got, first)
	}
	os.Remove(first)
	if got := ReadPath(); got != second {
		t.Errorf("only the second exists: ReadPath() = %s, want %s", got, second)
	}
}

// notWritable returns a directory path that cannot be created, even by root: its parent is
// a file.
func notWritable(t *testing.T) string {
	t.Helper()
	parent := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(parent, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(parent, "svinit")
}

// The state file a svinit without --state-file writes (or names in its warning when it
// cannot) is the one `svinit status` and `svinit stop` read.
func TestWriterAndReadersAgreeOnThePath(t *testing.T) {
	saved := defaultPaths
	t.Cleanup(func() { defaultPaths = saved })

	defaultPaths = []string{notWritable(t) + "/state.json", notWritable(t) + "/state.json"}
	if w, r := WritePath(), ReadPath(); w != r {
		t.Errorf("neither default writable: the writer names %s, the readers read %s", w, r)
	}

	defaultPaths = []string{notWritable(t) + "/state.json", filepath.Join(t.TempDir(), "svinit", "state.json")}
	w := WritePath()
	if w != defaultPaths[1] {
		t.Fatalf("WritePath() = %s, want the writable %s", w, defaultPaths[1])
	}
	if err := Write(w, State{Version: Version}); err != nil {
		t.Fatal(err)
	}
	if r := ReadPath(); r != w {
		t.Errorf("the writer wrote %s, the readers read %s", w, r)
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if testing.Short() {
			t.Skip("needs root to act as another user; skipped in -short mode")
		}
		t.Fatal("needs root to act as another user: run as root, or with -short")
	}
}

// otherUsersDir is a directory that the unprivileged uid 1000 owns, where it plants files.
func otherUsersDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rootsFile is a file only root may read, the target of planted symlinks.
func rootsFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "root-only")
	if err := os.WriteFile(path, []byte("root's secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func plantSymlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, 1000, 1000); err != nil {
		t.Fatal(err)
	}
}

// A default directory another user prepared (owned by them, or a symlink to a directory of
// root's) never holds root's state file.
func TestPlantedStateDirNotUsed(t *testing.T) {
	needRoot(t)
	saved := defaultPaths
	t.Cleanup(func() { defaultPaths = saved })
	owned := otherUsersDir(t)
	linked := filepath.Join(otherUsersDir(t), "svinit")
	rootsDir := t.TempDir()
	plantSymlink(t, rootsDir, linked)
	for _, dir := range []string{owned, linked} {
		defaultPaths = []string{notWritable(t) + "/state.json", dir + "/state.json"}
		if got := WritePath(); got == defaultPaths[1] {
			t.Errorf("WritePath() = %s, a directory another user controls", got)
		}
	}
	if entries, _ := os.ReadDir(rootsDir); len(entries) != 0 {
		t.Errorf("written through the planted symlink: %v", entries)
	}
}

// A symlink planted at the state file's path is replaced when svinit writes the file, and
// refused when status or stop reads it; its target is neither written nor read.
func TestPlantedStateSymlinkNotFollowed(t *testing.T) {
	needRoot(t)
	target := rootsFile(t)
	path := filepath.Join(otherUsersDir(t), "state.json")
	plantSymlink(t, target, path)
	if _, err := Read(path); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("Read through a symlink = %v, want ErrUntrusted naming the symlink", err)
	}
	NewTracker(path, Self(nil), zerolog.Nop()).Phase(Running)
	if b, _ := os.ReadFile(target); string(b) != "root's secret\n" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the state file is %v, %v; want a regular file in place of the symlink", fi.Mode(), err)
	}
	if st, err := Read(path); err != nil || st.Phase != Running {
		t.Errorf("Read = %+v, %v", st, err)
	}
}

// Files another user could have written are refused, a FIFO without hanging.
func TestReadRefusesPlantedFiles(t *testing.T) {
	needRoot(t)
	dir := otherUsersDir(t)
	valid := `{"version": 1, "phase": "running"}`
	for _, tc := range []struct {
		name, why string
		plant     func(path string) error
	}{
		{"other owner", "owned by uid 1000", func(path string) error {
			return errors.Join(os.WriteFile(path, []byte(valid), 0o644), os.Chown(path, 1000, 1000))
		}},
		{"group-writable", "others can write it", func(path string) error {
			return errors.Join(os.WriteFile(path, []byte(valid), 0o644), os.Chmod(path, 0o664))
		}},
		{"fifo", "not a regular file", func(path string) error { return syscall.Mkfifo(path, 0o644) }},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
		if err := tc.plant(path); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(path); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: Read = %v, want ErrUntrusted saying %q", tc.name, err, tc.why)
		}
	}
}

func TestProveSvinit(t *testing.T) {
	if err := Self(nil).ProveSvinit(); err != nil {
		t.Errorf("this process (the svinit binary's stand-in): %v", err)
	}
	noTicks := Self(nil)
	noTicks.StartTicks = 0
	if err := noTicks.ProveSvinit(); !errors.Is(err, ErrUntrusted) {
		t.Errorf("no start time: %v, want ErrUntrusted", err)
	}
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer other.Wait()
	defer other.Process.Kill()
	p := Process{PID: other.Process.Pid, StartTicks: StartTicks(other.Process.Pid)}
	if err := p.ProveSvinit(); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "not svinit") {
		t.Errorf("sleep: %v, want ErrUntrusted: not svinit", err)
	}
	other.Process.Kill()
	other.Wait()
	if err := p.ProveSvinit(); !errors.Is(err, ErrGone) {
		t.Errorf("exited: %v, want ErrGone", err)
	}
}
