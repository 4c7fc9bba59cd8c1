// Package docker runs svinit in a real container engine, through the docker CLI: as the
// ENTRYPOINT of images built FROM scratch, with the test binary itself as every child.
package docker

import (
	"context"
	"debug/elf"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/svinit/svinit/e2e/e2etest"
	"github.com/svinit/svinit/internal/proctest"
)

// helperEnv selects the helper program the test binary plays (see helpers_test.go).
const helperEnv = e2etest.HelperEnv

// busybox is the static shell and tool box of the images: Debian's busybox-static.
const busybox = "/bin/busybox"

// Paths inside the test image.
const (
	svinitPath = "/usr/local/bin/svinit"
	helperPath = "/usr/local/bin/helper"
)

// Set once by TestMain, read by the tests.
var (
	runID      = strconv.Itoa(os.Getpid()) // in every tag, name and label of this run
	svinitBin  string                      // the static svinit under test
	testImage  string                      // svinit, the helpers and busybox, FROM scratch
	dockerDown string                      // why the engine or the images are unusable, if they are
)

// netBin is the svinit-net built beside svinitBin.
func netBin() string { return filepath.Join(filepath.Dir(svinitBin), "svinit-net") }

func TestMain(m *testing.M) {
	os.Exit(helpers.Main(helperEnv, func() int { return setUpAndRun(m) }))
}

func setUpAndRun(m *testing.M) int {
	flag.Parse()
	self, err := os.Executable()
	if err == nil {
		err = requireStatic(self)
	}
	if err != nil {
		// Keep this package free of cgo users (net, os/user) and do not build it with -race.
		fmt.Fprintln(os.Stderr, "e2e/docker: the test binary must be static, it is every helper program in the images:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "svinit-e2e-docker")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The docker CLI and svinit must start with SIGINT and SIGHUP at their defaults.
	// An interrupted run removes what it made; one killed or timed out is swept by the next.
	proctest.ExitOnInterrupt(func() {
		removeRuns(isThisRun)
		os.RemoveAll(dir)
	}, syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM)
	defer os.RemoveAll(dir)
	svinitBin = filepath.Join(dir, "svinit")
	build := exec.Command("go", "build", "-trimpath", "-o", dir, "github.com/svinit/svinit/cmd/svinit", "github.com/svinit/svinit/cmd/svinit-net")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e/docker: cannot build svinit:", err)
		return 1
	}
	if dockerDown = engineDown(); dockerDown == "" {
		removeRuns(isOver)
		defer removeRuns(isThisRun)
		testImage = "svinit-e2e/test:" + runID
		if err := buildTestImage(filepath.Join(dir, "image"), self); err != nil {
			dockerDown = "cannot build the test image: " + err.Error()
		}
	}
	return m.Run()
}

// requireStatic fails unless the binary at path has no dynamic loader (PT_INTERP): the
// images are FROM scratch.
func requireStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (PT_INTERP), so it cannot run in a FROM scratch image", path)
		}
	}
	return nil
}

// engineDown says why the docker engine cannot be used, or "" when it can.
func engineDown() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("the docker engine is not reachable (`docker version`: %v): %s", err, strings.TrimSpace(string(out)))
	}
	return ""
}

// requireDocker fails the test when the engine or the test image is unusable (with -short,
// skips it).
func requireDocker(t *testing.T) {
	t.Helper()
	if dockerDown != "" {
		e2etest.Require(t, dockerDown+"; these tests need a docker engine and busybox-static")
	}
}

// buildTestImage builds testImage in dir from svinit, the test binary (the helpers) and
// busybox. Nothing is pulled: it is FROM scratch.
func buildTestImage(dir, self string) error {
	if _, err := os.Stat(busybox); err != nil {
		return fmt.Errorf("%s is missing: install Debian's busybox-static package (scripts/test does)", busybox)
	}
	if err := requireStatic(busybox); err != nil {
		return fmt.Errorf("%w: install busybox-static, not busybox", err)
	}
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "usr/local/bin", "tmp", "data", "config"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		return err
	}
	for src, dst := range map[string]string{busybox: "bin/busybox", svinitBin: "usr/local/bin/svinit", netBin(): "usr/local/bin/svinit-net", self: "usr/local/bin/helper"} {
		if err := copyFile(src, filepath.Join(root, dst)); err != nil {
			return err
		}
	}
	for _, applet := range []string{"sh", "true", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			return err
		}
	}
	dockerfile := "FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/local/bin:/bin\nENTRYPOINT [\"" + svinitPath + "\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return err
	}
	return dockerBuild(dir, testImage)
}

// dockerBuild builds the Dockerfile in dir as tag, with the classic builder: BuildKit may
// look for a FROM image in a registry even when it exists locally. The image carries this
// run's label; a failed build's intermediate images do not (docker adds --label as the
// last step), so they are removed here.
func dockerBuild(dir, tag string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	argv := append([]string{"build", "--force-rm", "--label", runLabel + "=" + runID, "-t", tag}, args...)
	cmd := exec.CommandContext(ctx, "docker", append(argv, dir)...)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	steps := intermediateImage.FindAllStringSubmatch(string(out), -1)
	for i := len(steps) - 1; i >= 0; i-- {
		// Without -f: an image that is cached for another build keeps its children.
		exec.Command("docker", "rmi", steps[i][1]).Run()
	}
	return fmt.Errorf("docker build %s: %v\n%s", tag, err, out)
}

// intermediateImage matches the image a step of the classic builder made: " ---> 3f2a9c1b7d4e".
var intermediateImage = regexp.MustCompile(`(?m)^ ---> ([0-9a-f]{12})$`)

// runLabel labels every container and image of a run with the run's id, the test binary's
// pid.
const runLabel = "svinit-e2e"

func isThisRun(run string) bool { return run == runID }

// isOver says whether run is over: its test binary is gone (killed, or timed out, so that
// it could not clean up). A run alive in parallel is left alone.
func isOver(run string) bool {
	if run == runID {
		return false
	}
	self, _ := os.ReadFile("/proc/self/comm")
	comm, err := os.ReadFile("/proc/" + run + "/comm")
	return err != nil || string(comm) != string(self)
}

// removeRuns removes the containers, networks and images of the runs for which remove holds, failed
// tests' included. Images go in passes: one still used by a build stage's image is removed
// after it.
func removeRuns(remove func(run string) bool) {
	// Each row is an id and its run: the container's label, the image's tag.
	pick := func(args ...string) []string {
		out, _ := exec.Command("docker", args...).Output()
		var ids []string
		for _, line := range strings.Split(string(out), "\n") {
			if id, run, ok := strings.Cut(strings.TrimSpace(line), " "); ok && remove(run) {
				ids = append(ids, id)
			}
		}
		return ids
	}
	filter := "label=" + runLabel
	if ids := pick("ps", "-a", "--filter", filter, "--format", `{{.ID}} {{.Label "`+runLabel+`"}}`); len(ids) > 0 {
		exec.Command("docker", append([]string{"rm", "-f", "-v"}, ids...)...).Run()
	}
	// Networks once their containers are gone.
	if ids := pick("network", "ls", "--filter", filter, "--format", `{{.ID}} {{.Label "`+runLabel+`"}}`); len(ids) > 0 {
		exec.Command("docker", append([]string{"network", "rm"}, ids...)...).Run()
	}
	for pass := 0; pass < 4; pass++ {
		ids := pick("images", "--filter", filter, "--format", "{{.ID}} {{.Tag}}")
		if len(ids) == 0 {
			return
		}
		exec.Command("docker", append([]string{"rmi", "-f"}, ids...)...).Run()
	}
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, fi.Mode().Perm())
}
