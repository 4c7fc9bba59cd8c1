package state

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses must not shift the fields.
	line := "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10"
	state, ticks, ok := parseStat(line)
	if !ok || state != "S" || ticks != 987654 {
		t.Fatalf("parseStat = %q, %d, %v", state, ticks, ok)
	}
}

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
