package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/svinit/svinit/e2e/e2etest"
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

// svinit is one running svinit process, with the commands of operate_test.go on it.
type svinit struct{ *e2etest.Svinit }

// startSvinit runs svinit with args; env is added to this process's environment and reaches
// the child, whose helper mode is childMode.
func startSvinit(t *testing.T, m mode, childMode string, env []string, args ...string) *svinit {
	t.Helper()
	argv := append(append(slices.Clone(m.wrap), svinitBin), args...)
	if m.pid1 {
		requireRoot(t)
		argv = append([]string{"unshare", "--pid", "--fork", "--mount-proc"}, argv...)
	}
	return &svinit{e2etest.Command(t, waitLimit, argv, childMode, env).Start(m.pid1)}
}

// startSvinitAs runs svinit as uid:uid (the same gid), as a pod's runAsUser would.
func startSvinitAs(t *testing.T, uid uint32, args ...string) *svinit {
	t.Helper()
	s := &e2etest.Svinit{T: t, Cmd: exec.Command(svinitBin, args...), Limit: waitLimit}
	s.State = filepath.Join(userDir(t, uid), "state.json")
	s.Cmd.Env = append(proctest.WithoutEnv(os.Environ(), helperEnv), "SVINIT_STATE_FILE="+s.State)
	s.Cmd.Stderr = &s.Stderr
	s.Cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	return &svinit{s.Start(false)}
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

// poll calls cond until it holds or waitLimit passes.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	proctest.Poll(t, waitLimit, what, cond)
}

// waitLine polls until the file at path has a line equal to want.
func waitLine(t *testing.T, path, want string) {
	t.Helper()
	proctest.WaitLine(t, waitLimit, path, want)
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
