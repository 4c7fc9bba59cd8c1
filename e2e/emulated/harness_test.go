package emulated

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/logbuf"
	"github.com/svinit/svinit/internal/proc"
	"github.com/svinit/svinit/internal/proctest"
)

// waitLimit bounds every wait in these tests; reaching it is a failure, not a measurement.
// Emulation makes every start of svinit slower, so it is looser than e2e's.
const waitLimit = 60 * time.Second

// svinit is one emulated svinit, PID 1 of a PID namespace of its own.
type svinit struct {
	t      *testing.T
	cmd    *exec.Cmd
	pid    int // svinit's (the emulator's) pid, as seen from here
	stderr logbuf.Buffer
	done   chan struct{}
	code   int
}

// startSvinit runs `unshare --pid --fork --mount-proc QEMU SVINIT args...`; env is added to
// this process's environment and reaches the child, whose helper mode is childMode.
func startSvinit(t *testing.T, a *arch, childMode string, env []string, args ...string) *svinit {
	t.Helper()
	requireEmulation(t)
	argv := append([]string{"unshare", "--pid", "--fork", "--mount-proc", a.qemu, a.svinit}, args...)
	s := &svinit{t: t, cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	s.cmd.Env = append(proctest.WithoutEnv(os.Environ(), helperEnv), "SVINIT_STATE_FILE="+filepath.Join(t.TempDir(), "state.json"))
	s.cmd.Env = append(s.cmd.Env, env...)
	if childMode != "" {
		s.cmd.Env = append(s.cmd.Env, helperEnv+"="+childMode)
	}
	s.cmd.Stderr = &s.stderr
	// A process that escaped svinit (a bug under test) may hold stderr open: do not wait
	// for it forever.
	s.cmd.WaitDelay = 2 * time.Second
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start svinit: %v", err)
	}
	go func() {
		s.cmd.Wait()
		s.code = s.cmd.ProcessState.ExitCode()
		if ws, ok := s.cmd.ProcessState.Sys().(unix.WaitStatus); ok && ws.Signaled() {
			s.code = 128 + int(ws.Signal())
		}
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			unix.Kill(s.cmd.Process.Pid, unix.SIGSTOP) // holds unshare's child in place
			killTree(s.cmd.Process.Pid)
			<-s.done
		}
		if t.Failed() {
			t.Logf("%s svinit stderr:\n%s", a.name, s.stderr.String())
		}
	})
	s.pid = waitChildOf(t, s.cmd.Process.Pid)
	return s
}

// waitChildOf returns the pid of the first child of ppid.
func waitChildOf(t *testing.T, ppid int) int {
	t.Helper()
	var pid int
	poll(t, fmt.Sprintf("a child of %d", ppid), func() bool {
		if kids := proctest.Children(ppid); len(kids) > 0 {
			pid = kids[0]
		}
		return pid != 0
	})
	return pid
}

// killTree SIGKILLs pid and everything below it, each frozen first, so that a failed test
// leaves nothing behind.
func killTree(pid int) {
	unix.Kill(pid, unix.SIGSTOP)
	for _, k := range proctest.Children(pid) {
		killTree(k)
	}
	unix.Kill(pid, unix.SIGKILL)
}

// signal sends sig to svinit from outside its namespace, as a container engine does.
func (s *svinit) signal(sig unix.Signal) {
	s.t.Helper()
	if err := unix.Kill(s.pid, sig); err != nil {
		s.t.Fatalf("kill svinit %s: %v", unix.SignalName(sig), err)
	}
}

// wait returns svinit's exit code, failing the test if it does not exit in time.
func (s *svinit) wait() int {
	s.t.Helper()
	select {
	case <-s.done:
		return s.code
	case <-time.After(waitLimit):
		s.t.Fatalf("svinit did not exit within %s", waitLimit)
		return -1
	}
}

func (s *svinit) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// childPid returns the pid of svinit's main child (its first child).
func (s *svinit) childPid() int { return waitChildOf(s.t, s.pid) }

// poll calls cond until it holds or waitLimit passes.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	proctest.Poll(t, waitLimit, what, cond)
}

// waitLine polls until the file at path has a line equal to want.
func waitLine(t *testing.T, path, want string) {
	t.Helper()
	poll(t, "line "+strconv.Quote(want)+" in "+filepath.Base(path), func() bool { return hasLine(path, want) })
}

func hasLine(path, want string) bool {
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(b), "\n") {
		if l == want {
			return true
		}
	}
	return false
}

// zombiesOf counts the zombie children of ppid.
func zombiesOf(ppid int) int {
	n := 0
	for _, pid := range proc.PIDs() {
		if st, err := proc.ReadStat(pid); err == nil && st.State == "Z" && st.PPID == ppid {
			n++
		}
	}
	return n
}
