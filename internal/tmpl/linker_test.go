package tmpl_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSvinitHasNoReflectMethod builds svinit as it ships and fails when the linker marks any
// function <ReflectMethod>: a reachable call of reflect's Method or MethodByName with a name
// not known at build time (text/template's field evaluation has one), which makes the linker
// keep every exported method of every reachable type, 1.3 MiB of svinit.
func TestSvinitHasNoReflectMethod(t *testing.T) {
	if testing.Short() {
		t.Skip("builds svinit")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	bin := filepath.Join(t.TempDir(), "svinit")
	cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags=-s -w -dumpdep", "-o", bin, "github.com/svinit/svinit/cmd/svinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var deps bytes.Buffer // the linker's reachability graph, one edge a line
	cmd.Stdout, cmd.Stderr = &deps, &deps
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd, err, lastLines(deps.String(), 20))
	}
	var marked []string
	for sc := bufio.NewScanner(&deps); sc.Scan(); {
		if strings.Contains(sc.Text(), "<ReflectMethod>") {
			marked = append(marked, sc.Text())
		}
	}
	if len(marked) > 0 {
		t.Errorf("the linker keeps every exported method, because of:\n%s", strings.Join(marked[:min(len(marked), 20)], "\n"))
	}
	if fi, err := os.Stat(bin); err == nil {
		t.Logf("svinit is %d bytes (%.2f MiB; CGO_ENABLED=0 go build -trimpath -ldflags \"-s -w\")", fi.Size(), float64(fi.Size())/(1<<20))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
