// Package emulated runs svinit built for other architectures (arm64, arm/v7) under Debian's
// qemu-user-static, as PID 1 of a new PID namespace: the core cases, each per architecture.
//
// The emulator is invoked by name, never through binfmt_misc, which CI may not register.
// svinit is the emulated binary; its children are this test binary, native: without binfmt
// the kernel cannot exec a foreign binary, and what is under test is svinit's own code
// (its syscalls, signals and wait loop) on that architecture, which the children only watch.
// Only PID 1 runs are possible: qemu-user 7.2 answers PR_SET_CHILD_SUBREAPER with EINVAL, so
// an emulated svinit outside PID 1 refuses to start (125).
package emulated

import (
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/svinit/svinit/e2e/e2etest"
	"github.com/svinit/svinit/internal/proctest"
)

// helperEnv selects the helper program the test binary plays (see helpers_test.go).
const helperEnv = e2etest.HelperEnv

// arch is a target svinit is built for and emulated on.
type arch struct {
	name    string
	goarch  string
	goarm   string // GOARM, for goarch arm
	qemu    string // the emulator, run by name
	machine elf.Machine
	svinit  string // the svinit built for it, set by TestMain
}

// arches are the emulated targets: one 64-bit, one 32-bit. arm/v7 rather than 386: Go's 386
// runtime dies at start under qemu-i386 7.2 ("fatal: morestack on gsignal").
var arches = []*arch{
	{name: "arm64", goarch: "arm64", qemu: "qemu-aarch64-static", machine: elf.EM_AARCH64},
	{name: "arm-v7", goarch: "arm", goarm: "7", qemu: "qemu-arm-static", machine: elf.EM_ARM},
}

// Set once by TestMain, read by the tests.
var (
	selfBin     string // this test binary, the helper programs
	unavailable string // why these tests cannot run here, if they cannot
)

func TestMain(m *testing.M) {
	os.Exit(helpers.Main(helperEnv, func() int { return buildAndRun(m) }))
}

func buildAndRun(m *testing.M) int {
	flag.Parse()
	// svinit must start with SIGINT and SIGHUP at their defaults, whatever this process inherited.
	proctest.ExitOnInterrupt(nil, syscall.SIGINT, syscall.SIGHUP)
	var err error
	if selfBin, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if unavailable = missingPrerequisite(); unavailable != "" {
		return m.Run() // each test fails, or skips with -short, saying why
	}
	dir, err := os.MkdirTemp("", "svinit-e2e-emulated")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := buildAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e/emulated:", err)
		return 1
	}
	return m.Run()
}

// missingPrerequisite says what this machine lacks to run the tests, or "".
func missingPrerequisite() string {
	if os.Geteuid() != 0 {
		return "these tests need root (unshare makes svinit PID 1 of a new PID namespace)"
	}
	for _, a := range arches {
		if _, err := exec.LookPath(a.qemu); err != nil {
			return a.qemu + " is missing: install Debian's qemu-user-static (scripts/test does)"
		}
	}
	return ""
}

// buildAll builds svinit and svinit-net (they ship side by side) for every arch, static,
// each into a directory of its own. The builds run together: most of a cold build is the
// standard library for each target.
func buildAll(dir string) error {
	errs := make([]error, len(arches))
	var wg sync.WaitGroup
	for i, a := range arches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = a.build(filepath.Join(dir, a.name))
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (a *arch) build(dir string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-o", dir+"/", "github.com/svinit/svinit/cmd/svinit", "github.com/svinit/svinit/cmd/svinit-net")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+a.goarch, "GOARM="+a.goarm)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build svinit for %s: %v\n%s", a.name, err, out)
	}
	a.svinit = filepath.Join(dir, "svinit")
	return a.check(a.svinit)
}

// check makes sure the binary at path is a static one for a: a build that silently came out
// native would run without the emulator and test nothing of the target.
func (a *arch) check(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	if f.Machine != a.machine {
		return fmt.Errorf("%s is built for %s, want %s", path, f.Machine, a.machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (PT_INTERP)", path)
		}
	}
	return nil
}
