package emulated

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/e2e/e2etest"
	"github.com/svinit/svinit/internal/proctest"
)

func TestEmulatedExitCodes(t *testing.T) {
	notExecutable := filepath.Join(t.TempDir(), "not-executable")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, a := range arches {
		t.Run(a.name, func(t *testing.T) {
			for _, code := range []int{0, 3, 42} {
				t.Run(strconv.Itoa(code), func(t *testing.T) {
					s := startSvinit(t, a, "exit", nil, "--", selfBin, strconv.Itoa(code))
					if got := s.Wait(); got != code {
						t.Errorf("exit code %d, want the child's %d", got, code)
					}
				})
			}
			t.Run("killed", func(t *testing.T) {
				rec := filepath.Join(t.TempDir(), "rec")
				s := startSvinit(t, a, "sleep", []string{"REC=" + rec}, "--", selfBin)
				proctest.WaitLine(t, waitLimit, rec, "ready")
				unix.Kill(s.ChildPid(), unix.SIGKILL)
				if got := s.Wait(); got != 128+9 {
					t.Errorf("exit code %d, want 137 (128+SIGKILL)", got)
				}
			})
			for _, tc := range []struct {
				name, program string
				code          int
			}{
				{"missing", "no-such-program-svinit", 127},
				{"not executable", notExecutable, 126},
			} {
				t.Run(tc.name, func(t *testing.T) {
					s := startSvinit(t, a, "", nil, "--", tc.program)
					if got := s.Wait(); got != tc.code {
						t.Errorf("exit code %d, want %d", got, tc.code)
					}
					if !strings.Contains(s.Stderr.String(), tc.program) {
						t.Errorf("the message does not name %s:\n%s", tc.program, s.Stderr.String())
					}
				})
			}
		})
	}
}

// Signals sent from outside the namespace reach the child through the emulated PID 1, which
// the kernel lets through only because svinit handles them; SIGTERM ends the child, whose
// death by it is svinit's 143.
func TestEmulatedSignalsReachTheChild(t *testing.T) {
	for _, a := range arches {
		t.Run(a.name, func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "rec")
			s := startSvinit(t, a, "record", []string{"REC=" + rec}, "--", selfBin)
			proctest.WaitLine(t, waitLimit, rec, "ready")
			for _, sig := range []unix.Signal{unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGTERM} {
				s.Signal(sig)
				proctest.WaitLine(t, waitLimit, rec, unix.SignalName(sig))
			}
			if code := s.Wait(); code != 143 {
				t.Errorf("exit code %d, want 143 (the child killed by SIGTERM)", code)
			}
		})
	}
}

func TestEmulatedOrphansAreReaped(t *testing.T) {
	const n = 100
	for _, a := range arches {
		t.Run(a.name, func(t *testing.T) {
			dir := t.TempDir()
			rec := filepath.Join(dir, "rec")
			env := []string{"REC=" + rec, "PIDS=" + filepath.Join(dir, "pids"), "ORPHANS=" + strconv.Itoa(n), "LIMIT=" + (waitLimit * 3 / 4).String()}
			s := startSvinit(t, a, "orphans", env, "--log-level", "debug", "--", selfBin)
			// The child looks from inside the namespace; its verdict comes before waitLimit.
			var verdict string
			proctest.Poll(t, waitLimit, "the child's count of the orphans", func() bool {
				b, _ := os.ReadFile(rec)
				verdict = strings.TrimSpace(string(b))
				return verdict != ""
			})
			if want := "reaped " + strconv.Itoa(n) + ", zombies 0"; verdict != want {
				t.Fatalf("the child saw %q, want %q", verdict, want)
			}
			// svinit says it was the one reaping them, and leaves no zombie seen from outside.
			s.WaitOrphansReaped(n)
			s.Signal(unix.SIGTERM)
			if code := s.Wait(); code != 143 {
				t.Errorf("exit code %d, want 143", code)
			}
		})
	}
}

// Two emulated svinits, each PID 1 of its own namespace as in two pods, share a lock file:
// the second waits while the first holds it, and starts its child only once the first's
// child is gone. The children hold a flock on a data file for as long as they live, so an
// overlap, however short, is recorded.
func TestEmulatedLockHandoff(t *testing.T) {
	for _, a := range arches {
		for _, mode := range []string{"--lock-poll=false", "--lock-poll=true"} {
			t.Run(a.name+"/"+mode, func(t *testing.T) {
				dir := t.TempDir()
				lockPath, rec := filepath.Join(dir, "lock"), filepath.Join(dir, "rec")
				start := func(name string) *e2etest.Svinit {
					env := []string{"REC=" + rec, "DATA=" + filepath.Join(dir, "data"), "NAME=" + name}
					// Only a handoff can start the second child: a timeout would fail.
					return startSvinit(t, a, "guarded", env, "--lock", lockPath, mode, "--lock-timeout", "5m", "--lock-on-timeout", "fail", "--", selfBin)
				}
				first := start("first")
				proctest.WaitLine(t, waitLimit, rec, "ran first")
				second := start("second")
				proctest.Poll(t, waitLimit, "the second svinit to wait", func() bool {
					return strings.Contains(second.Stderr.String(), "lock is held; waiting") || second.Exited()
				})
				if b, _ := os.ReadFile(rec); string(b) != "ran first\n" {
					t.Fatalf("the second child started while the first held the lock:\n%s", b)
				}
				first.Signal(unix.SIGTERM)
				if code := first.Wait(); code != 143 {
					t.Errorf("first svinit exit %d, want 143", code)
				}
				proctest.WaitLine(t, waitLimit, rec, "ran second")
				second.Signal(unix.SIGTERM)
				if code := second.Wait(); code != 143 {
					t.Errorf("second svinit exit %d, want 143", code)
				}
				if b, _ := os.ReadFile(rec); string(b) != "ran first\nran second\n" {
					t.Errorf("record:\n%s\nwant each child once, one after the other", b)
				}
				if _, err := os.Lstat(lockPath); !os.IsNotExist(err) {
					t.Errorf("lock file left behind: %v", err)
				}
			})
		}
	}
}
