package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The yardstick must be a working init, or the bench would compare svinit with less than
// one: it passes the child's status on, forwards signals, and runs PROGRAM with or without "--".
func TestMinimalInitIsAnInit(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("needs sh")
	}
	mininit := filepath.Join(t.TempDir(), "mininit")
	build := exec.Command("go", "build", "-o", mininit, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if code := exitCode(t, exec.Command(mininit, "--", "sh", "-c", "exit 3"), nil); code != 3 {
		t.Errorf("child exit 3: mininit exited %d", code)
	}
	if code := exitCode(t, exec.Command(mininit, "sh", "-c", "kill -TERM $$"), nil); code != 143 {
		t.Errorf("child killed by SIGTERM: mininit exited %d, want 143", code)
	}

	ready := filepath.Join(t.TempDir(), "ready")
	usr1 := exec.Command(mininit, "--", "sh", "-c", `trap "exit 7" USR1; : > "$0"; while :; do sleep 0.01; done`, ready)
	code := exitCode(t, usr1, func() {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(ready); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Error("the child never got ready")
				unix.Kill(-usr1.Process.Pid, unix.SIGKILL)
				return
			}
		}
		usr1.Process.Signal(unix.SIGUSR1)
	})
	if code != 7 {
		t.Errorf("SIGUSR1 forwarded to a child that exits 7 on it: mininit exited %d", code)
	}
}

// The yardstick links the standard library and golang.org/x/sys only: an svinit package in
// it would make svinit's ratios to it look better than they are.
func TestMinimalInitLinksNothingOfSvinit(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if !strings.HasPrefix(pkg, "golang.org/x/sys/") && pkg != "github.com/svinit/svinit/bench/mininit" {
			t.Errorf("mininit links %s: only the standard library and golang.org/x/sys are allowed", pkg)
		}
	}
}

// exitCode runs cmd, calls meanwhile (if any) once it has started, and returns its exit code.
func exitCode(t *testing.T, cmd *exec.Cmd, meanwhile func()) int {
	t.Helper()
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true} // a group to kill, child and all
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if meanwhile != nil {
		meanwhile()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		<-done
		t.Fatalf("%s: still running after 30 s", cmd)
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode()
}
