package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/license/licensetest"
)

const testKey = "SECRET-key-4711"

// licensed starts svinit with a license provider over a sleeping child and returns it,
// its record file and whether the child started.
func licensed(t *testing.T, srv *licensetest.Server, provider, state string, extra ...string) (*svinit, string) {
	t.Helper()
	rec := filepath.Join(t.TempDir(), "rec")
	args := append([]string{"--license-provider", provider, "--license-url", srv.URL, "--license-state", state,
		"--instance-id", "pod-a-uid-1", "--license-timeout", "2s", "--license-request-timeout", "500ms"}, extra...)
	s := startSvinit(t, modes[1], "env", []string{"REC=" + rec, "SVINIT_LICENSE_KEY=" + testKey, "LICENSE_KEY=" + testKey},
		append(args, "--", selfBin)...)
	return s, rec
}

func TestSeatHeldExactlyWhileChildRuns(t *testing.T) {
	for _, provider := range []string{"opswat", "keygen-relay"} {
		t.Run(provider, func(t *testing.T) {
			srv := licensetest.Start(t, licensetest.Options{Seats: 1, Keys: []string{testKey}})
			state := filepath.Join(t.TempDir(), "journal")
			s, rec := licensed(t, srv, provider, state)
			waitLine(t, rec, "ready")
			if srv.Live() != 1 || !srv.Holds("pod-a-uid-1") {
				t.Fatalf("seats live while the child runs: %d", srv.Live())
			}
			s.signal(unix.SIGTERM)
			if code := s.wait(); code != 143 {
				t.Fatalf("exit %d", code)
			}
			if srv.Live() != 0 {
				t.Errorf("%d seats leaked after SIGTERM", srv.Live())
			}
			checkNoKey(t, s, rec)
			if _, err := os.Stat(state); !os.IsNotExist(err) {
				t.Errorf("journal record left after a clean stop: %v", err)
			}
		})
	}
}

func checkNoKey(t *testing.T, s *svinit, rec string) {
	t.Helper()
	if strings.Contains(s.stderr.String(), testKey) {
		t.Errorf("the key reached svinit's log:\n%s", s.stderr.String())
	}
	if b, _ := os.ReadFile(rec); strings.Contains(string(b), testKey) {
		t.Errorf("the key reached the child's environment")
	}
}

func TestSeatGivenBackWhenChildIsKilled(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1, Keys: []string{testKey}})
	s, rec := licensed(t, srv, "keygen-relay", filepath.Join(t.TempDir(), "journal"))
	waitLine(t, rec, "ready")
	unix.Kill(s.childPid(), unix.SIGKILL)
	if code := s.wait(); code != 137 {
		t.Fatalf("exit %d", code)
	}
	if srv.Live() != 0 {
		t.Errorf("%d seats leaked after the child crashed", srv.Live())
	}
}

func TestNoSeatsStartsNothing(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 0, Keys: []string{testKey}})
	lockPath := filepath.Join(t.TempDir(), "lock")
	s, rec := licensed(t, srv, "keygen-relay", filepath.Join(t.TempDir(), "journal"), "--lock", lockPath)
	if code := s.wait(); code != 69 {
		t.Fatalf("exit %d, want 69 (no seats):\n%s", code, s.stderr.String())
	}
	if hasLine(rec, "ready") {
		t.Error("the child started without a seat")
	}
	if _, err := os.Lstat(lockPath); !os.IsNotExist(err) {
		t.Error("the lock was left behind")
	}
}

func TestServerDownAtStart(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1, Keys: []string{testKey}})
	srv.Down()
	s, rec := licensed(t, srv, "opswat", filepath.Join(t.TempDir(), "journal"))
	if code := s.wait(); code != 75 {
		t.Fatalf("exit %d, want 75 (server unreachable):\n%s", code, s.stderr.String())
	}
	if hasLine(rec, "ready") {
		t.Error("the child started without a seat")
	}
	checkNoKey(t, s, rec)
}

func TestCrashedSvinitSeatIsReclaimed(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1, Keys: []string{testKey}})
	state := filepath.Join(t.TempDir(), "journal")
	s, rec := licensed(t, srv, "opswat", state)
	waitLine(t, rec, "ready")
	killTree(s.pid) // the node died: no deactivation
	s.wait()
	if srv.Live() != 1 {
		t.Fatalf("live seats after the crash: %d, want the leaked 1", srv.Live())
	}
	// The only seat is taken by the dead run: the next start must reclaim it first.
	runAndStopCleanly(t, srv, state)
}

// runAndStopCleanly starts svinit again with the journal at state, stops it, and checks
// that no seat is left: whatever an earlier run leaked was reclaimed.
func runAndStopCleanly(t *testing.T, srv *licensetest.Server, state string) {
	t.Helper()
	s, rec := licensed(t, srv, "opswat", state)
	waitLine(t, rec, "ready")
	s.signal(unix.SIGTERM)
	s.wait()
	if srv.Live() != 0 {
		t.Errorf("%d seats leaked", srv.Live())
	}
}

func TestServerDownAtStopKeepsJournal(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1, Keys: []string{testKey}})
	state := filepath.Join(t.TempDir(), "journal")
	s, rec := licensed(t, srv, "opswat", state)
	waitLine(t, rec, "ready")
	srv.Down()
	s.signal(unix.SIGTERM)
	if code := s.wait(); code != 143 {
		t.Errorf("exit %d, want the child's 143 although deactivation failed", code)
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("the journal record is gone: %v", err)
	}
	srv.Up()
	runAndStopCleanly(t, srv, state)
}

// The exec provider's commands run through svinit's reaper, also as PID 1.
func TestExecProviderAsPID1(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "vendor.log")
	script := filepath.Join(dir, "vendor-cli")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$SVINIT_LICENSE_ACTION $SVINIT_INSTANCE_ID key=${#SVINIT_LICENSE_KEY}\" >> "+log+"\n"), 0o755)
	rec := filepath.Join(dir, "rec")
	s := startSvinit(t, modes[0], "env", []string{"REC=" + rec, "SVINIT_LICENSE_KEY=" + testKey},
		"--license-provider", "exec", "--license-activate-cmd", script, "--license-deactivate-cmd", script,
		"--instance-id", "pod-b", "--", selfBin)
	waitLine(t, rec, "ready")
	waitLine(t, log, "activate pod-b key=15")
	s.signal(unix.SIGTERM)
	if code := s.wait(); code != 143 {
		t.Fatalf("exit %d:\n%s", code, s.stderr.String())
	}
	waitLine(t, log, "deactivate pod-b key=15")
	if n := strings.Count(s.stderr.String(), `"license deactivated"`); n != 1 {
		t.Errorf("\"license deactivated\" logged %d times for one deactivation:\n%s", n, s.stderr.String())
	}
	checkNoKey(t, s, rec)
}

func TestSignalDuringActivationGivesSeatBack(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1, Keys: []string{testKey}})
	srv.SetActivationDelay(waitLimit) // the seat is taken, the answer never comes in time
	s, rec := licensed(t, srv, "keygen-relay", filepath.Join(t.TempDir(), "journal"), "--license-request-timeout", "20s", "--license-timeout", "25s")
	poll(t, "the activation to take the seat", func() bool { return srv.Live() == 1 })
	s.signal(unix.SIGTERM)
	if code := s.wait(); code != 143 {
		t.Fatalf("exit %d, want 143", code)
	}
	if hasLine(rec, "ready") {
		t.Error("the child started")
	}
	if srv.Live() != 0 {
		t.Errorf("%d seats leaked by the cancelled activation", srv.Live())
	}
}
