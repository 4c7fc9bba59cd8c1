package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proctest"
	"github.com/svinit/svinit/internal/state"
)

// otherUser is the unprivileged user who plants files.
const otherUser = 1000

// stoppedVictim starts a process that is not svinit and stops it, so that a SIGTERM sent to
// it stays pending where the test can see it.
func stoppedVictim(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(selfBin)
	cmd.Env = append(proctest.WithoutEnv(os.Environ(), helperEnv), helperEnv+"=sleep")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	if err := cmd.Process.Signal(unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// termPending tells whether a SIGTERM waits for the stopped pid.
func termPending(t *testing.T, pid int) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		for _, key := range []string{"SigPnd:", "ShdPnd:"} {
			if v, ok := strings.CutPrefix(line, key); ok {
				mask, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				if mask&(1<<(unix.SIGTERM-1)) != 0 {
					return true
				}
			}
		}
	}
	return false
}

// stateNaming is a state file in which pid is a running svinit with a running child, as
// someone who read /proc/PID/stat would write it.
func stateNaming(t *testing.T, pid int, withTicks bool) []byte {
	t.Helper()
	p := state.Process{PID: pid, Started: time.Now().UTC(), Argv: []string{"svinit"}}
	if withTicks {
		p.StartTicks = state.StartTicks(pid)
	}
	child := p
	b, err := json.Marshal(state.State{Version: state.Version, Phase: state.Running, Updated: time.Now().UTC(), Svinit: p, Child: &child})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Neither `svinit status` nor `svinit stop` obeys a state file that another user could have
// written, or one naming a process that is not provably its svinit: stop signals nothing,
// status does not say running, and both exit 4 saying why.
func TestPlantedStateFileNotObeyed(t *testing.T) {
	requireRoot(t)
	victim := stoppedVictim(t)
	rootFile := func(t *testing.T, content []byte, mode os.FileMode) string {
		path := filepath.Join(t.TempDir(), "state.json")
		if err := os.WriteFile(path, content, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name, why string
		plant     func(t *testing.T) string
	}{
		{"owned by another user", "owned by uid 1000", func(t *testing.T) string {
			path := filepath.Join(userDir(t, otherUser), "state.json")
			writeFile(t, path, string(stateNaming(t, victim, true)))
			if err := os.Chown(path, otherUser, otherUser); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"writable by others", "others can write it", func(t *testing.T) string {
			return rootFile(t, stateNaming(t, victim, true), 0o666)
		}},
		{"symlink to root's file", "symlink", func(t *testing.T) string {
			target := rootFile(t, stateNaming(t, victim, true), 0o644)
			path := filepath.Join(userDir(t, otherUser), "state.json")
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(path, otherUser, otherUser); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"no start time", "no start time", func(t *testing.T) string {
			return rootFile(t, stateNaming(t, victim, false), 0o644)
		}},
		{"not an svinit", "is not svinit", func(t *testing.T) string {
			return rootFile(t, stateNaming(t, victim, true), 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.plant(t)
			for _, cmd := range []string{"status", "stop"} {
				out, err := exec.Command(svinitBin, cmd, "--state-file", path).CombinedOutput()
				code := 0
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				if code != 4 || !strings.Contains(string(out), tc.why) {
					t.Errorf("svinit %s: exit %d:\n%s\nwant 4 and %q", cmd, code, out, tc.why)
				}
			}
			if termPending(t, victim) {
				t.Fatalf("svinit stop sent SIGTERM to pid %d, which is not svinit", victim)
			}
		})
	}
}
