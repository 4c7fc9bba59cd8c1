package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/logbuf"
	"github.com/svinit/svinit/internal/proc"
	"github.com/svinit/svinit/internal/proctest"
)

// waitLimit bounds every wait in these tests; reaching it is a failure, not a measurement.
const waitLimit = 30 * time.Second

// mode is how svinit runs: as PID 1 of a new PID namespace, or as a plain process that must
// make itself a subreaper.
type mode struct {
	name string
	pid1 bool
	wrap []string // a command that execs svinit in the same process, e.g. unshare --mount
}

var modes = []mode{{name: "pid1", pid1: true}, {name: "subreaper"}}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if testing.Short() {
		t.Skip("needs root (unshare, other users); skipped in -short mode")
	}
	t.Fatal("this test needs root: run the suite as root (CI does), or with -short to skip it")
}

// svinit is one running svinit process.
type svinit struct {
	t      *testing.T
	cmd    *exec.Cmd
	pid    int // svinit's own pid, as seen from here
	stderr logbuf.Buffer
	done   chan struct{}
	code   int
	state  string // its state file (SVINIT_STATE_FILE), private to the test
}

// startSvinit runs svinit with args; env is added to this process's environment and reaches
// the child, whose helper mode is childMode.
func startSvinit(t *testing.T, m mode, childMode string, env []string, args ...string) *svinit {
	t.Helper()
	argv := append(append(slices.Clone(m.wrap), svinitBin), args...)
	if m.pid1 {
		requireRoot(t)
		argv = append([]string{"unshare", "--pid", "--fork", "--mount-proc"}, argv...)
	}
	s := &svinit{t: t, cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{}), state: filepath.Join(t.TempDir(), "state.json")}
	s.cmd.Env = append(append(proctest.WithoutEnv(os.Environ(), helperEnv), "SVINIT_STATE_FILE="+s.state), env...)
	if childMode != "" {
		s.cmd.Env = append(s.cmd.Env, helperEnv+"="+childMode)
	}
	s.cmd.Stderr = &s.stderr
	return s.start(m.pid1)
}

// startSvinitAs runs svinit as uid:uid (the same gid), as a pod's runAsUser would.
func startSvinitAs(t *testing.T, uid uint32, args ...string) *svinit {
	t.Helper()
	s := &svinit{t: t, cmd: exec.Command(svinitBin, args...), done: make(chan struct{})}
	s.state = filepath.Join(userDir(t, uid), "state.json")
	s.cmd.Env = append(proctest.WithoutEnv(os.Environ(), helperEnv), "SVINIT_STATE_FILE="+s.state)
	s.cmd.Stderr = &s.stderr
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	return s.start(false)
}

// userDir returns a new directory that uid owns, reachable by uid.
func userDir(t *testing.T, uid uint32) string {
	t.Helper()
	dir := t.TempDir()
	if err := errors.Join(os.Chmod(filepath.Dir(dir), 0o755), os.Chown(dir, int(uid), int(uid))); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (s *svinit) start(viaUnshare bool) *svinit {
	t := s.t
	t.Helper()
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
			t.Logf("svinit stderr:\n%s", s.stderr.String())
		}
	})
	s.pid = s.cmd.Process.Pid
	if viaUnshare {
		s.pid = waitChildOf(t, s.cmd.Process.Pid)
	}
	return s
}

// waitChildOf returns the pid of the first child of ppid (unshare --fork's child: svinit).
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

// killTree SIGKILLs pid and everything below it, as a node crash or the OOM killer would:
// each process is frozen first, so that none sees a child die and cleans up before its
// own SIGKILL. Also used so that a failed test leaves nothing behind.
func killTree(pid int) {
	unix.Kill(pid, unix.SIGSTOP)
	for _, k := range proctest.Children(pid) {
		killTree(k)
	}
	unix.Kill(pid, unix.SIGKILL)
}

// signal sends sig to svinit.
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
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := proc.ReadStat(pid); err == nil && st.State == "Z" && st.PPID == ppid {
			n++
		}
	}
	return n
}

func alive(pid int) bool {
	st, err := proc.ReadStat(pid)
	return err == nil && st.State != "Z"
}

// procState is pid's state letter (R, S, T, Z...), or "" once it is gone.
func procState(pid int) string {
	st, _ := proc.ReadStat(pid)
	return st.State
}

// readFile returns path's content; a missing file reads as empty.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
