package k8stest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// svinitBin is svinit built from this checkout for the tests that run it against the API
// server, static as `make build` builds it, so that it runs in the pods' images too.
var svinitBin string

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "k8stest-svinit")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	svinitBin = filepath.Join(dir, "svinit")
	build := exec.Command("go", "build", "-o", dir, "./cmd/svinit", "./cmd/svinit-net") // side by side, as they ship
	build.Dir = ".."                                                                    // in svinit's own module, with its own go.mod
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build svinit:", err)
		return 1
	}
	return m.Run()
}
