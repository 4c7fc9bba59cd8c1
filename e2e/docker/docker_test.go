package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/svinit/svinit/internal/proctest"
)

// waitLimit bounds every wait on the engine; reaching it is a failure, not a measurement.
const waitLimit = 60 * time.Second

// containerSeq numbers the containers of this run, so that names never collide.
var containerSeq atomic.Int64

// docker runs the docker CLI with args and returns its combined output.
func docker(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), err
}

// mustDocker runs the docker CLI and fails the test if it fails or hangs.
func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	out, err := docker(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// container is one container of a test, removed when the test ends.
type container struct {
	t     *testing.T
	name  string
	image string
}

// newContainer names a container after the test and removes it (and its anonymous
// volumes) when the test ends, printing its log if the test failed.
func newContainer(t *testing.T) *container {
	t.Helper()
	requireDocker(t)
	name := fmt.Sprintf("svinit-e2e-%s-%d", runID, containerSeq.Add(1))
	c := &container{t: t, name: name, image: testImage}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if t.Failed() {
			out, _ := docker(ctx, "logs", name)
			t.Logf("log of %s:\n%s", name, out)
		}
		docker(ctx, "rm", "-f", "-v", name)
	})
	return c
}

// runArgs is the `docker run` command line of c: options, then the image and its
// arguments (svinit's options, "--", the program).
func (c *container) runArgs(opts []string, args ...string) []string {
	argv := append([]string{"run", "--name", c.name, "--label", runLabel + "=" + runID}, opts...)
	return append(append(argv, c.image), args...)
}

// start runs c detached.
func (c *container) start(opts []string, args ...string) *container {
	c.t.Helper()
	mustDocker(c.t, c.runArgs(append([]string{"-d"}, opts...), args...)...)
	return c
}

// run runs c in the foreground and returns the exit code of `docker run`: the container's.
func (c *container) run(opts []string, args ...string) int {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, err := docker(ctx, c.runArgs(opts, args...)...)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		c.t.Fatal(err)
	}
	if exit != nil {
		return exit.ExitCode()
	}
	return 0
}

// logs returns what c wrote to stdout and stderr so far.
func (c *container) logs() string {
	c.t.Helper()
	return mustDocker(c.t, "logs", c.name)
}

// waitLog polls c's log until it contains want.
func (c *container) waitLog(want string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	poll(c.t, strconv.Quote(want)+" in the log of "+c.name, func() bool {
		out, _ := docker(ctx, "logs", c.name)
		return strings.Contains(out, want)
	})
}

// wait waits for c to exit and returns its exit code.
func (c *container) wait() int {
	c.t.Helper()
	out := mustDocker(c.t, "wait", c.name)
	code, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		c.t.Fatalf("docker wait %s: %q", c.name, out)
	}
	return code
}

// inspect returns c's inspect field given as a Go template, e.g. {{.State.Pid}}.
func (c *container) inspect(format string) string {
	c.t.Helper()
	return strings.TrimSpace(mustDocker(c.t, "inspect", "-f", format, c.name))
}

// hostPid returns the host's pid of c's PID 1, svinit.
func (c *container) hostPid() int {
	c.t.Helper()
	pid, err := strconv.Atoi(c.inspect("{{.State.Pid}}"))
	if err != nil || pid <= 0 {
		c.t.Fatalf("%s has no pid (not running?): %q", c.name, c.inspect("{{.State.Status}}"))
	}
	return pid
}

// poll calls cond until it holds or waitLimit passes.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	proctest.Poll(t, waitLimit, what, cond)
}

// shared returns a host directory for a bind mount, writable by uid inside containers.
func shared(t *testing.T, uid int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// helper returns the docker run options that make the child the helper mode.
func helper(mode string) []string {
	return []string{"-e", helperEnv + "=" + mode, "-e", "GODEBUG=asyncpreemptoff=1"}
}
