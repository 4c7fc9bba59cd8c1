// Package e2etest runs svinit for the end-to-end tests (e2e, e2e/emulated): started by a
// test, waited for within a bound, and killed with everything below it when the test ends.
package e2etest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/logbuf"
	"github.com/svinit/svinit/internal/proctest"
)

// HelperEnv selects the helper program the test binary plays.
const HelperEnv = "SVINIT_E2E_HELPER"

// Svinit is one svinit under test: Command (or a literal, for a command of its own)
// prepares it, Start runs it.
type Svinit struct {
	T      testing.TB
	Cmd    *exec.Cmd
	Limit  time.Duration // bounds every wait; reaching it is a failure, not a measurement
	State  string        // its state file (SVINIT_STATE_FILE), private to the test
	Stderr logbuf.Buffer
	Pid    int // svinit's own pid, as seen from here; set by Start

	done chan struct{}
	code int
}

// Command prepares svinit, run by argv, with this process's environment less HelperEnv, a
// state file of its own, then env; its child, the test binary, plays the helper childMode.
func Command(t testing.TB, limit time.Duration, argv []string, childMode string, env []string) *Svinit {
	s := &Svinit{T: t, Cmd: exec.Command(argv[0], argv[1:]...), Limit: limit, State: filepath.Join(t.TempDir(), "state.json")}
	s.Cmd.Env = append(append(proctest.WithoutEnv(os.Environ(), HelperEnv), "SVINIT_STATE_FILE="+s.State), env...)
	if childMode != "" {
		s.Cmd.Env = append(s.Cmd.Env, HelperEnv+"="+childMode)
	}
	s.Cmd.Stderr = &s.Stderr
	return s
}

// Start runs s.Cmd; viaUnshare says it is `unshare --fork`, whose child is svinit.
func (s *Svinit) Start(viaUnshare bool) *Svinit {
	t := s.T
	t.Helper()
	s.done = make(chan struct{})
	// A process that escaped svinit (a bug under test) may hold stderr open: do not wait
	// for it forever.
	s.Cmd.WaitDelay = 2 * time.Second
	if err := s.Cmd.Start(); err != nil {
		t.Fatalf("start svinit: %v", err)
	}
	go func() {
		s.Cmd.Wait()
		s.code = s.Cmd.ProcessState.ExitCode()
		if ws, ok := s.Cmd.ProcessState.Sys().(unix.WaitStatus); ok && ws.Signaled() {
			s.code = 128 + int(ws.Signal())
		}
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			unix.Kill(s.Cmd.Process.Pid, unix.SIGSTOP) // holds unshare's child in place
			proctest.KillTree(s.Cmd.Process.Pid)
			<-s.done
		}
		if t.Failed() {
			t.Logf("svinit stderr:\n%s", s.Stderr.String())
		}
	})
	s.Pid = s.Cmd.Process.Pid
	if viaUnshare {
		s.Pid = proctest.FirstChild(t, s.Limit, s.Cmd.Process.Pid)
	}
	return s
}

// Signal sends sig to svinit (from outside its PID namespace, if it has one, as a container
// engine does).
func (s *Svinit) Signal(sig unix.Signal) {
	s.T.Helper()
	if err := unix.Kill(s.Pid, sig); err != nil {
		s.T.Fatalf("kill svinit %s: %v", unix.SignalName(sig), err)
	}
}

// Wait returns svinit's exit code, failing the test if it does not exit in time.
func (s *Svinit) Wait() int {
	s.T.Helper()
	select {
	case <-s.done:
		return s.code
	case <-time.After(s.Limit):
		s.T.Fatalf("svinit did not exit within %s", s.Limit)
		return -1
	}
}

// Exited reports whether svinit has exited, without waiting.
func (s *Svinit) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// ChildPid returns the pid of svinit's main child (its first child).
func (s *Svinit) ChildPid() int { return proctest.FirstChild(s.T, s.Limit, s.Pid) }

// WaitOrphansReaped waits until svinit has logged n orphans reaped, then fails the test if a
// zombie is left below it: svinit says it reaped them, and did.
func (s *Svinit) WaitOrphansReaped(n int) {
	s.T.Helper()
	proctest.Poll(s.T, s.Limit, "svinit to log every orphan reaped", func() bool {
		return strings.Count(s.Stderr.String(), `"orphan reaped"`) == n
	})
	if z := proctest.ZombiesOf(s.Pid); z != 0 {
		s.T.Errorf("%d zombies left under svinit", z)
	}
}

// Require fails the test when missing says what this machine lacks to run it: CI must not
// pass by skipping. Only with -short, a developer without it skips the test.
func Require(t testing.TB, missing string) {
	t.Helper()
	if missing == "" {
		return
	}
	if testing.Short() {
		t.Skip("skipped in -short mode: " + missing)
	}
	t.Fatal(missing + " (go test -short skips these tests)")
}
