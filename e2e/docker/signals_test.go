package docker

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/svinit/svinit/internal/logbuf"
	"github.com/svinit/svinit/internal/ptytest"
)

func TestExitCodesPassThrough(t *testing.T) {
	for _, tc := range []struct {
		name    string
		program []string
		code    int
		log     string // what svinit says about it
	}{
		{"0", []string{helperPath, "0"}, 0, `"exit_code":0`},
		{"3", []string{helperPath, "3"}, 3, `"exit_code":3`},
		{"42", []string{helperPath, "42"}, 42, `"exit_code":42`},
		{"program not found", []string{"/usr/local/bin/no-such-program"}, 127, "svinit: start /usr/local/bin/no-such-program: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newContainer(t)
			if got := c.run(helper("exit"), append([]string{"--"}, tc.program...)...); got != tc.code {
				t.Errorf("docker run exited %d, want %d", got, tc.code)
			}
			if got := c.inspect("{{.State.ExitCode}}"); got != strconv.Itoa(tc.code) {
				t.Errorf("the container's exit code is %s, want %d", got, tc.code)
			}
			if logs := c.logs(); !strings.Contains(logs, tc.log) {
				t.Errorf("svinit's log lacks %s:\n%s", tc.log, logs)
			}
		})
	}
}

// docker stop sends SIGTERM and SIGKILLs PID 1 after -t: a child that stops at SIGTERM
// ends the container with 143 (or the remapped code), which a SIGKILL from docker could
// not give (137).
func TestDockerStop(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"143", nil, 143},
		{"remap 143:0", []string{"--remap-exit", "143:0"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newContainer(t)
			c.start(helper("sleep"), append(tc.args, "--", helperPath)...)
			c.waitLog("ready")
			sent := time.Now()
			mustDocker(t, "stop", "-t", "30", c.name)
			t.Logf("docker stop -t 30 returned after %s", time.Since(sent).Round(time.Millisecond))
			if code := c.wait(); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			if logs := c.logs(); !strings.Contains(logs, `"signal":"SIGTERM"`) || !strings.Contains(logs, `"stopping the child"`) {
				t.Errorf("svinit did not log forwarding SIGTERM:\n%s", logs)
			}
		})
	}
}

// A child ignoring SIGTERM is SIGKILLed by svinit at --grace, long before docker stop's
// own SIGKILL at -t.
func TestStopChildIgnoringTerm(t *testing.T) {
	c := newContainer(t)
	c.start(helper("ignore-term"), "--grace", "2s", "--", helperPath)
	c.waitLog("ready")
	sent := time.Now()
	mustDocker(t, "stop", "-t", "60", c.name)
	elapsed := time.Since(sent)
	t.Logf("docker stop -t 60 returned after %s (--grace 2s)", elapsed.Round(time.Millisecond))
	if code := c.wait(); code != 137 {
		t.Errorf("exit code %d, want 137", code)
	}
	if elapsed > 30*time.Second {
		t.Errorf("docker stop took %s: svinit did not kill the child at --grace 2s", elapsed)
	}
	if logs := c.logs(); !strings.Contains(logs, "child outlived the grace period") {
		t.Errorf("svinit did not log killing the child:\n%s", logs)
	}
}

func TestDockerKillReachesChild(t *testing.T) {
	c := newContainer(t)
	c.start(helper("record"), "--", helperPath)
	c.waitLog("ready")
	for _, sig := range []string{"USR1", "HUP", "USR2"} {
		mustDocker(t, "kill", "-s", sig, c.name)
		c.waitLog("got SIG" + sig)
	}
	mustDocker(t, "stop", c.name)
	if code := c.wait(); code != 0 {
		t.Errorf("exit code %d, want the child's 0 after SIGTERM", code)
	}
}

// docker run -it: svinit makes the child the foreground process group of the container's
// terminal, so that Ctrl-C typed at the docker CLI's terminal reaches it.
func TestInteractiveCtrlC(t *testing.T) {
	c := newContainer(t)
	cmd, master, screen := runOnTerminal(t, c, helper("tty"), "--", helperPath)
	poll(t, "the child on the terminal", func() bool { return strings.Contains(screen.String(), "ready") })
	if !strings.Contains(screen.String(), "ready foreground=true") {
		t.Errorf("the child is not the terminal's foreground process group:\n%s", screen.String())
	}
	master.Write([]byte{3}) // Ctrl-C
	if code := exitCode(t, cmd); code != 130 {
		t.Errorf("docker run -it exited %d, want 130; terminal:\n%s", code, screen.String())
	}
}

// docker run -it with an interactive shell as the child: the shell has job control only
// if it is the terminal's foreground group. Ctrl-Z stops a job, fg resumes it, Ctrl-C ends
// it, and the shell's own exit code is the container's.
func TestInteractiveJobControl(t *testing.T) {
	c := newContainer(t)
	cmd, master, screen := runOnTerminal(t, c, append([]string{"-e", "PS1=prompt$ "}, helper("sleep")...), "--", "/bin/sh", "-i")
	press := func(keys string) { master.Write([]byte(keys)) }
	poll(t, "the shell's prompt", func() bool { return strings.Contains(screen.String(), "prompt$ ") })
	press(helperPath + "\r")
	poll(t, "the job to run", func() bool { return strings.Contains(screen.String(), "ready") })
	job := jobPid(t, c)
	press("\x1a") // Ctrl-Z
	poll(t, "the job to stop", func() bool { return state(job) == "T" && strings.Contains(screen.String(), "Stopped") })
	press("fg\r")
	poll(t, "the job to resume", func() bool { s := state(job); return s != "T" && s != "" })
	press("\x03") // Ctrl-C: the job dies, the shell stays
	poll(t, "the job to end", func() bool { return state(job) == "" })
	press("exit 5\r")
	if code := exitCode(t, cmd); code != 5 {
		t.Errorf("docker run -it exited %d, want the shell's 5", code)
	}
	if strings.Contains(screen.String(), "job control turned off") {
		t.Error("the shell has no job control")
	}
	if t.Failed() {
		t.Logf("terminal:\n%s", screen.String())
	}
}

// jobPid returns the host pid of the helper the shell in c runs as a job.
func jobPid(t *testing.T, c *container) int {
	t.Helper()
	for _, p := range top(t, c) {
		if p.args == helperPath {
			return p.pid
		}
	}
	t.Fatalf("no %s in docker top: %+v", helperPath, top(t, c))
	return 0
}

// runOnTerminal starts `docker run -it` for c on a new pseudo-terminal, as a user types it
// in a terminal emulator, and returns the terminal's master end and a record of its screen.
func runOnTerminal(t *testing.T, c *container, opts []string, args ...string) (*exec.Cmd, *os.File, *logbuf.Buffer) {
	t.Helper()
	master, slave := ptytest.Open(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "docker", c.runArgs(append([]string{"-it"}, opts...), args...)...)
	ptytest.OnTerminal(cmd, slave)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	return cmd, master, ptytest.Screen(master)
}

// exitCode waits for cmd and returns its exit code.
func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode()
}
