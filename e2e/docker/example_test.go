package docker

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/svinit/svinit/internal/proctest"
)

// TestDockerfileExample builds Dockerfile.example as CI can: from the source tree with
// vendored modules, GOPROXY=off, and base images made here FROM scratch (a Go toolchain
// image and a busybox one) in place of golang and debian, which cannot be pulled. The
// svinit it compiles must be the one `make build` makes of the same tree, byte for byte:
// static, stripped, version stamped, reproducible.
func TestDockerfileExample(t *testing.T) {
	requireDocker(t)
	root := moduleRoot(t)
	work := t.TempDir()
	version := "e2e-" + runID

	src := filepath.Join(work, "src")
	for _, p := range []string{"go.mod", "go.sum", "Makefile", "cmd", "internal", "Dockerfile.example"} {
		copyTree(t, filepath.Join(root, p), filepath.Join(src, p), false, nil)
	}
	output(t, root, "go", "mod", "vendor", "-o", filepath.Join(src, "vendor"))
	made, actions := makeBuild(t, src, filepath.Join(work, "svinit-make"), version)

	goImage, baseImage := "svinit-e2e/go:"+runID, "svinit-e2e/base:"+runID
	imageDir := filepath.Join(work, "go")
	mkRootfs(t, imageDir, "go", "root")
	goroot(t, strings.TrimSpace(output(t, root, "go", "env", "GOROOT")), filepath.Join(imageDir, "rootfs", "usr", "local", "go"))
	warmGoCache(t, actions, filepath.Join(imageDir, "rootfs", "root", ".cache", "go-build"))
	writeFile(t, filepath.Join(imageDir, "Dockerfile"), "FROM scratch\nCOPY rootfs/ /\n"+
		"ENV PATH=/usr/local/go/bin:/bin HOME=/root GOPATH=/go GOTOOLCHAIN=local\nWORKDIR /go\n")
	build(t, imageDir, goImage)
	baseDir := filepath.Join(work, "base")
	mkRootfs(t, baseDir)
	writeFile(t, filepath.Join(baseDir, "Dockerfile"), "FROM scratch\nCOPY rootfs/ /\n")
	build(t, baseDir, baseImage)

	args := []string{"-f", filepath.Join(src, "Dockerfile.example"),
		"--build-arg", "GO_IMAGE=" + goImage, "--build-arg", "BASE_IMAGE=" + baseImage,
		"--build-arg", "GOPROXY=off", "--build-arg", "SVINIT_VERSION=" + version}
	// The build stage gets a tag of its own, so that its layers are removed with it.
	build(t, src, "svinit-e2e/example-build:"+runID, append(args, "--target", "svinit")...)
	example := "svinit-e2e/example:" + runID
	build(t, src, example, args...)

	c := newContainer(t)
	c.image = example
	script := "/bin/busybox id -u; /bin/busybox id -g; /bin/busybox tr '\\0' ' ' </proc/1/cmdline; echo; exit 3"
	if code := c.run(nil, "/bin/busybox", "sh", "-c", script); code != 3 {
		t.Errorf("exit code %d, want the child's 3:\n%s", code, c.logs())
	}
	out := c.logs()
	for _, want := range []string{"10001\n10001\n", "/usr/local/bin/svinit /bin/busybox sh -c"} {
		if !strings.Contains(out, want) {
			t.Errorf("the example image's container did not print %q (non-root USER, svinit as PID 1):\n%s", want, out)
		}
	}
	// Options go after the image name, before PROGRAM, and PROGRAM's own options reach it.
	for _, args := range [][]string{
		{"/bin/busybox", "echo", "--flag"},
		{"--grace", "5s", "/bin/busybox", "echo", "--flag"},
	} {
		o := newContainer(t)
		o.image = example
		if code := o.run(nil, args...); code != 0 || !strings.Contains("\n"+o.logs(), "\n--flag\n") {
			t.Errorf("docker run IMAGE %s: exit %d, want 0 and PROGRAM printing --flag:\n%s", strings.Join(args, " "), code, o.logs())
		}
	}
	v := newContainer(t)
	v.image = example
	v.run([]string{"--entrypoint", svinitPath}, "--version")
	if out := v.logs(); !strings.Contains(out, version) {
		t.Errorf("svinit --version in the example image: %q, want %s stamped in", out, version)
	}

	shipped := filepath.Join(work, "svinit-image")
	mustDocker(t, "cp", v.name+":"+svinitPath, shipped)
	if err := requireStatic(shipped); err != nil {
		t.Error(err)
	}
	if err := requireStripped(shipped); err != nil {
		t.Error(err)
	}
	a, b := readFile(t, shipped), readFile(t, made)
	t.Logf("svinit in the example image: %d bytes, sha256 %x", len(a), sha256.Sum256(a))
	if !bytes.Equal(a, b) {
		t.Errorf("not reproducible: the example image's svinit (%d bytes) differs from make build's (%d bytes) of the same tree:\n%s\n%s",
			len(a), len(b), output(t, src, "go", "version", "-m", shipped), output(t, src, "go", "version", "-m", made))
	}
}

// makeBuild runs `make build` in src, as a developer would, and moves the binary to dst.
// It also returns the go command's action ids (the keys of its build cache) of the build.
func makeBuild(t *testing.T, src, dst, version string) (string, []string) {
	t.Helper()
	cmd := exec.Command("make", "build", "VERSION="+version)
	cmd.Dir = src
	// As in the build stage: vendored modules (GOFLAGS also replaces this machine's own),
	// no network; gocachehash makes the go command print every hash it computes.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=vendor", "GOPROXY=off", "GOTOOLCHAIN=local", "GODEBUG=gocachehash=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("make build: %v\n%s%s", err, stdout.String(), hashLine.ReplaceAllString(stderr.String(), ""))
	}
	t.Logf("make build: %s", strings.TrimSpace(stdout.String()))
	if !strings.Contains(stdout.String(), "bytes") {
		t.Errorf("make build did not print the binary's size:\n%s", stdout.String())
	}
	if err := os.Rename(filepath.Join(src, "bin", "svinit"), dst); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(src, "bin")); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, m := range actionHash.FindAllStringSubmatch(stderr.String(), -1) {
		actions = append(actions, m[1])
	}
	return dst, actions
}

// Lines of GODEBUG=gocachehash=1: any of them, and the result of a hash (an action id).
var (
	hashLine   = regexp.MustCompile(`(?m)^HASH[ \[].*\n`)
	actionHash = regexp.MustCompile(`(?m)^HASH\[[^\]]*\]: ([0-9a-f]{64})$`)
)

// warmGoCache copies into dir the entries of this machine's Go build cache under the
// action ids, so that the image's go command compiles only what they miss instead of the
// whole standard library (minutes on a busy machine). The entries are keyed by their
// inputs: a hit is what the compiler would produce. Missing entries only cost time.
func warmGoCache(t *testing.T, actions []string, dir string) {
	t.Helper()
	cache := strings.TrimSpace(output(t, ".", "go", "env", "GOCACHE"))
	entry := func(id, kind string) string { return filepath.Join(id[:2], id+"-"+kind) }
	var copied int
	var size int64
	for _, id := range actions {
		// An action entry reads "v1 <action id> <output id> <size> <time>".
		b, err := os.ReadFile(filepath.Join(cache, entry(id, "a")))
		f := strings.Fields(string(b))
		if err != nil || len(f) < 4 || len(f[2]) != 64 {
			continue
		}
		for _, e := range []string{entry(id, "a"), entry(f[2], "d")} {
			if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(e)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := linkOrCopy(filepath.Join(cache, e), filepath.Join(dir, e)); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
		n, _ := strconv.ParseInt(f[3], 10, 64)
		copied, size = copied+1, size+n
	}
	t.Logf("warmed the image's Go build cache with %d of the %d actions of make build (%d MB)", copied, len(actions), size>>20)
}

// requireStripped fails unless the binary at path has no symbol table.
func requireStripped(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	if f.Section(".symtab") != nil {
		return fmt.Errorf("%s is not stripped: it has a .symtab", path)
	}
	return nil
}

// build builds the Dockerfile of dir as tag; the image is removed when the test ends.
func build(t *testing.T, dir, tag string, args ...string) {
	t.Helper()
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	start := time.Now()
	if err := dockerBuild(dir, tag, args...); err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %s", tag, time.Since(start).Round(100*time.Millisecond))
}

// mkRootfs makes dir/rootfs with busybox as /bin/sh, /tmp, and the directories dirs.
func mkRootfs(t *testing.T, dir string, dirs ...string) {
	t.Helper()
	root := filepath.Join(dir, "rootfs")
	for _, d := range append([]string{"bin", "tmp"}, dirs...) {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(root, "tmp"), 0o1777)
	if err := copyFile(busybox, filepath.Join(root, "bin", "busybox")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(root, "bin", "sh")); err != nil {
		t.Fatal(err)
	}
}

// goroot links the parts of the Go toolchain that compile a program into dst: no tests,
// no testdata, no sources of the go command itself.
func goroot(t *testing.T, src, dst string) {
	t.Helper()
	copyTree(t, src, dst, true, func(rel string) bool {
		top, _, _ := strings.Cut(rel, "/")
		switch {
		case top == "test" || top == "api" || top == "doc" || top == "misc" || rel == "src/cmd":
			return true
		case filepath.Base(rel) == "testdata" || strings.HasSuffix(rel, "_test.go"):
			return true
		}
		return false
	})
}

// copyTree copies the directories and regular files of src to dst, but those skip names
// (by their path relative to src); link hard-links them where it can, as cheaper copies.
func copyTree(t *testing.T, src, dst string, link bool, skip func(rel string) bool) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type().IsRegular():
			if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
				return err
			}
			if link {
				return linkOrCopy(path, to)
			}
			return copyFile(path, to)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// linkOrCopy hard-links src to dst, a cheaper copy, or copies it where it cannot. An
// existing dst is kept: it may be a link to a file of this machine's, never to rewrite.
func linkOrCopy(src, dst string) error {
	err := os.Link(src, dst)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return nil
	}
	return copyFile(src, dst)
}

// moduleRoot returns the directory of svinit's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	return filepath.Dir(strings.TrimSpace(output(t, ".", "go", "env", "GOMOD")))
}

// output runs name in dir and returns its standard output.
func output(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	return proctest.Output(t, dir, nil, name, args...)
}
