// Package e2e runs the real svinit binary: as PID 1 of a fresh PID namespace (unshare) and
// as a plain process (a subreaper), with the test binary itself as every child program.
package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/svinit/svinit/e2e/e2etest"
	"github.com/svinit/svinit/internal/proctest"
)

// helperEnv selects the helper program the test binary plays (see helpers_test.go).
const helperEnv = e2etest.HelperEnv

var (
	svinitBin string // the svinit binary under test
	selfBin   string // this test binary, the helper programs
)

func TestMain(m *testing.M) {
	os.Exit(helpers.Main(helperEnv, func() int { return buildAndRun(m) }))
}

func buildAndRun(m *testing.M) int {
	// svinit must start with SIGINT and SIGHUP at their defaults, whatever this process
	// inherited: svinit rightly keeps an inherited SIG_IGN.
	proctest.ExitOnInterrupt(nil, syscall.SIGINT, syscall.SIGHUP)
	dir, err := os.MkdirTemp("", "svinit-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755) // other users run it too
	svinitBin = filepath.Join(dir, "svinit")
	// svinit and svinit-net, side by side as they ship. svinit-net is never built with the
	// race detector: one call per process shares nothing, and the detector's start-up would
	// eat the tests' request timeouts.
	args := []string{"build", "-o", dir}
	if raceBuild() {
		args = append(args, "-race") // the supervisor's goroutines, under the race detector
	}
	build := exec.Command("go", append(args, "github.com/svinit/svinit/cmd/svinit")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	buildNet := exec.Command("go", "build", "-o", dir, "github.com/svinit/svinit/cmd/svinit-net")
	buildNet.Stdout, buildNet.Stderr = os.Stderr, os.Stderr
	if err := errors.Join(build.Run(), buildNet.Run()); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cannot build svinit:", err)
		return 1
	}
	if selfBin, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// raceBuild reports whether svinit is built with the race detector (SVINIT_E2E_RACE).
func raceBuild() bool { return os.Getenv("SVINIT_E2E_RACE") != "" }
