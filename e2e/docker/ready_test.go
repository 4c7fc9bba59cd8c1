package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The servers of these tests are busybox's httpd: the test binary, every other child here,
// must stay free of the net package (it is static, see setUpAndRun).

// serverPort is where the servers listen, inside their container.
const serverPort = "8080"

// readyFile is the trigger of the servers: while it exists, they answer.
const readyFile = "/tmp/www/ok"

// httpServer is busybox's httpd serving /tmp/www on serverPort of the loopback.
var httpServer = []string{busybox, "sh", "-c", "mkdir -p /tmp/www && exec " + busybox + " httpd -f -p 127.0.0.1:" + serverPort + " -h /tmp/www"}

// A HEALTHCHECK of `svinit status --ready` in a FROM-scratch image (no curl, no shell needed)
// turns healthy only once the server answers svinit's --ready check, and unhealthy again
// when it stops answering, for each kind of check; the plain `svinit status` says running
// all along.
func TestHealthcheckFollowsReady(t *testing.T) {
	for _, tc := range []struct {
		name, check string
		program     []string
		down        string // what the --ready check says while the server does not answer
	}{
		// httpd serves /tmp/www: 404 until the file is there, 200 while it is.
		{"http", "http://127.0.0.1:" + serverPort + "/ok", httpServer, "404"},
		// The port is open only while the file is there.
		{"tcp", "tcp://127.0.0.1:" + serverPort,
			[]string{busybox, "sh", "-c", "mkdir -p /tmp/www; while :; do until [ -e " + readyFile + " ]; do sleep 0.1; done; " +
				busybox + " httpd -f -p 127.0.0.1:" + serverPort + " -h /tmp/www & p=$!; while [ -e " + readyFile + " ]; do sleep 0.1; done; kill $p; wait $p; done"},
			"127.0.0.1:" + serverPort},
		// The file itself, and a command looking at it (svinit runs it, not the shell).
		{"file", "file:" + readyFile, httpServer, "does not exist"},
		{"exec", "exec:" + busybox + " test -e " + readyFile, httpServer, "exit 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireDocker(t)
			dir := t.TempDir()
			tag := fmt.Sprintf("svinit-e2e/ready-%s:%s", tc.name, runID)
			writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM "+testImage+"\n"+
				`HEALTHCHECK --interval=1s --timeout=10s --retries=1 CMD ["`+svinitPath+`", "status", "--ready"]`+"\n"+
				`ENTRYPOINT ["`+svinitPath+`", "--ready", "`+tc.check+`", "--ready-interval", "1s"]`+"\n")
			build(t, dir, tag)
			c := newContainer(t)
			c.image = tag
			c.start(nil, append([]string{"--"}, tc.program...)...)
			h := watchHealth(c)

			// Not ready: two failed health checks in a row, each `svinit status --ready`
			// exiting 3 (not 2: the option is known), the reason in the state file.
			h.waitFor("two failed health checks", func(s health) bool { return s.FailingStreak >= 2 })
			if s := h.last(); s.Status == "healthy" {
				t.Fatalf("healthy before the server answers: %+v", s)
			}
			out, code := c.exec(svinitPath, "status", "--ready")
			if code != 3 {
				t.Errorf("svinit status --ready before the server answers: exit %d, want 3:\n%s", code, out)
			}
			if out, code := c.exec(svinitPath, "status"); code != 0 {
				t.Errorf("the plain svinit status while the child runs, not ready: exit %d, want 0:\n%s", code, out)
			}
			r := c.readyState()
			if r.Ready || r.Checked.IsZero() || !strings.Contains(r.Reason, tc.down) {
				t.Errorf("the state file's ready while the server does not answer: %+v; want not ready, checked, the reason naming %q", r, tc.down)
			}

			up := time.Now()
			c.mustExec(busybox, "touch", readyFile)
			h.waitFor("healthy", func(s health) bool { return s.Status == "healthy" })
			t.Logf("healthy %s after the server was made to answer", time.Since(up).Round(time.Millisecond))
			// No check before the server answered passed (the host's clock is the container's).
			for _, e := range h.log() {
				if e.ExitCode == 0 && e.Start.Before(up) {
					t.Errorf("a health check that started before the server answered passed: %+v", e)
				}
				if e.ExitCode != 0 && e.ExitCode != 3 {
					t.Errorf("svinit status --ready exited %d, want 0 or 3: %+v", e.ExitCode, e)
				}
			}
			if out, code := c.exec(svinitPath, "status", "--ready"); code != 0 {
				t.Errorf("svinit status --ready once the server answers: exit %d, want 0:\n%s", code, out)
			}
			if r := c.readyState(); !r.Ready || r.Since.Before(up) {
				t.Errorf("the state file's ready once the server answers: %+v; want ready since after %s", r, up.Format(time.RFC3339Nano))
			}

			down := time.Now()
			c.mustExec(busybox, "rm", readyFile)
			h.waitFor("unhealthy again", func(s health) bool { return s.Status == "unhealthy" })
			t.Logf("unhealthy %s after the server stopped answering", time.Since(down).Round(time.Millisecond))
			if r := c.readyState(); r.Ready || !strings.Contains(r.Reason, tc.down) {
				t.Errorf("the state file's ready once the server stopped answering: %+v; want not ready, the reason naming %q", r, tc.down)
			}
			if running := c.inspect("{{.State.Running}}"); running != "true" {
				t.Errorf("the container is not running: a failed --ready check must not stop it")
			}
		})
	}
}

// --wait-for holds the child back until a server in another container answers, found by its
// name on a user-defined network (as in compose): every check must pass, the tcp port and
// the http path (404 until the test creates the file); meanwhile `svinit status` says
// waiting-for-dependencies and exits 3.
func TestWaitForAnotherContainer(t *testing.T) {
	requireDocker(t)
	network := newNetwork(t)
	data := shared(t, 0)
	rec := filepath.Join(data, "rec")
	srv := newContainer(t)
	app := newContainer(t)
	checks := []string{"tcp://" + srv.name + ":" + serverPort, "http://" + srv.name + ":" + serverPort + "/ok"}
	app.start(append(helper("stamp"), "--network", network, "-v", data+":/data", "-e", "REC=/data/rec", "-e", "NAME=app"),
		"--wait-for", checks[0], "--wait-for", checks[1], "--wait-timeout", "5m", "--", helperPath)
	app.waitStatus("waiting-for-dependencies")

	// The server: httpd on its port, 404 on /ok until the file is there.
	srv.start([]string{"--network", network},
		"--", busybox, "sh", "-c", "mkdir -p /tmp/www && exec "+busybox+" httpd -f -p "+serverPort+" -h /tmp/www")
	// svinit's own account: the port passed and is not tried again, the path still fails.
	app.waitLogLine(`"dependency ready"`, `"check":"`+checks[0]+`"`)
	app.waitLogLine(`"waiting for dependency"`, `"check":"`+checks[1]+`"`, "404")
	if at := stamped(rec, "app", "start"); at != 0 {
		t.Fatalf("the child started while %s answered 404", checks[1])
	}
	out, code := app.exec(svinitPath, "status")
	if code != 3 || !strings.Contains(out, "waiting-for-dependencies") {
		t.Errorf("svinit status while waiting for the server: exit %d, want 3 saying waiting-for-dependencies:\n%s", code, out)
	}
	if !strings.Contains(out, "waiting for: "+checks[1]) || strings.Contains(out, checks[0]) {
		t.Errorf("svinit status while the path answers 404: want it to name %s as missing and %s no more:\n%s", checks[1], checks[0], out)
	}

	up := time.Now()
	srv.mustExec(busybox, "touch", readyFile)
	poll(t, "the app's child to start", func() bool { return stamped(rec, "app", "start") != 0 })
	started := time.Unix(0, stamped(rec, "app", "start"))
	if started.Before(up) {
		t.Errorf("the child started %s before the server's %s answered 200", up.Sub(started), checks[1])
	}
	t.Logf("the child started %s after the server was made to answer 200", started.Sub(up).Round(time.Millisecond))
	if out, code := app.exec(svinitPath, "status"); code != 0 {
		t.Errorf("svinit status once the child runs: exit %d, want 0:\n%s", code, out)
	}
	mustDocker(t, "stop", app.name)
	if code := app.wait(); code != 0 {
		t.Errorf("the app exited %d, want its child's 0 after SIGTERM", code)
	}
}

// docker stop during --wait-for: svinit ends the wait at once, even in the middle of a check
// that would last longer than docker's -t (then a SIGKILL would give 137), exits 143 and
// never starts the child. --wait-timeout passed: 124, no child either.
func TestWaitForEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		stop bool
		code int
	}{
		// Nothing listens on port 9 of the container: refused at once, again and again.
		{"docker stop, refused tcp", []string{"--wait-for", "tcp://127.0.0.1:9", "--wait-timeout", "5m"}, true, 143},
		// A check that never ends by itself.
		{"docker stop, during a long check", []string{"--wait-for", "exec:/bin/sleep 600", "--check-timeout", "10m", "--wait-timeout", "15m"}, true, 143},
		{"wait timeout", []string{"--wait-for", "tcp://127.0.0.1:9", "--wait-for", "file:/data/never", "--wait-timeout", "2s"}, false, 124},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := shared(t, 0)
			rec := filepath.Join(data, "rec")
			c := newContainer(t)
			opts := append(helper("stamp"), "-v", data+":/data", "-e", "REC=/data/rec", "-e", "NAME=child")
			args := append(append([]string{}, tc.args...), "--", helperPath)
			if tc.stop {
				c.start(opts, args...)
				c.waitStatus("waiting-for-dependencies")
				sent := time.Now()
				mustDocker(t, "stop", "-t", "30", c.name)
				t.Logf("docker stop -t 30 during the wait returned after %s", time.Since(sent).Round(time.Millisecond))
			} else {
				c.run(opts, args...)
			}
			if code := c.wait(); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			if b, err := os.ReadFile(rec); err == nil {
				t.Errorf("the child started: %s", b)
			}
			if !tc.stop {
				logs := c.logs()
				for _, check := range []string{"tcp://127.0.0.1:9", "file:/data/never"} {
					if !strings.Contains(logs, check) {
						t.Errorf("svinit's log does not name the check %s that was still missing:\n%s", check, logs)
					}
				}
			}
		})
	}
}

// health is a container's .State.Health.
type health struct {
	Status        string
	FailingStreak int
	Log           []healthRun
}

// healthRun is one health check Docker ran.
type healthRun struct {
	Start    time.Time
	ExitCode int
	Output   string
}

// healthWatch records every health check Docker ran in a container, beyond the last five
// Docker keeps.
type healthWatch struct {
	c    *container
	seen map[int64]healthRun
	cur  health
}

func watchHealth(c *container) *healthWatch { return &healthWatch{c: c, seen: map[int64]healthRun{}} }

// waitFor polls the container's health until cond holds.
func (h *healthWatch) waitFor(what string, cond func(health) bool) {
	h.c.t.Helper()
	poll(h.c.t, what+" of "+h.c.name, throttled(func() bool {
		h.c.requireRunning()
		var s health
		if err := json.Unmarshal([]byte(h.c.inspect("{{json .State.Health}}")), &s); err != nil {
			h.c.t.Fatalf("the health of %s: %v (no HEALTHCHECK?)", h.c.name, err)
		}
		for _, e := range s.Log {
			h.seen[e.Start.UnixNano()] = e
		}
		h.cur = s
		return cond(s)
	}))
}

func (h *healthWatch) last() health { return h.cur }

func (h *healthWatch) log() []healthRun {
	var all []healthRun
	for _, e := range h.seen {
		all = append(all, e)
	}
	return all
}

// readiness is the "ready" object of svinit's state file.
type readiness struct {
	Ready   bool      `json:"ready"`
	Since   time.Time `json:"since"`
	Checked time.Time `json:"checked"`
	Reason  string    `json:"reason"`
}

// readyState reads the "ready" of the state file, through `svinit status --json`.
func (c *container) readyState() readiness {
	c.t.Helper()
	out, _ := c.exec(svinitPath, "status", "--json")
	var st struct {
		Ready *readiness `json:"ready"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Ready == nil {
		c.t.Fatalf("svinit status --json has no \"ready\" (%v):\n%s", err, out)
	}
	return *st.Ready
}

// waitStatus polls `svinit status` in c until it says phase.
func (c *container) waitStatus(phase string) {
	c.t.Helper()
	poll(c.t, "svinit status in "+c.name+" to say "+phase, throttled(func() bool {
		c.requireRunning()
		out, _ := c.exec(svinitPath, "status")
		return strings.Contains(out, phase)
	}))
}

// requireRunning fails the test at once when c has exited: what it waits for cannot come.
func (c *container) requireRunning() {
	c.t.Helper()
	if c.inspect("{{.State.Running}}") != "true" {
		c.t.Fatalf("%s is not running (exit code %s)", c.name, c.inspect("{{.State.ExitCode}}"))
	}
}

// waitLogLine polls c's log until one line of it contains every part.
func (c *container) waitLogLine(parts ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	poll(c.t, fmt.Sprintf("a line with %q in the log of %s", parts, c.name), throttled(func() bool {
		out, _ := docker(ctx, "logs", c.name)
		for _, line := range strings.Split(out, "\n") {
			n := 0
			for _, p := range parts {
				if strings.Contains(line, p) {
					n++
				}
			}
			if n == len(parts) {
				return true
			}
		}
		return false
	}))
}

// exec runs a command in c and returns its combined output and exit code.
func (c *container) exec(argv ...string) (string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", append([]string{"exec", c.name}, argv...)...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		c.t.Fatalf("docker exec %s %v: %v: %s", c.name, argv, err, out)
	}
	return string(out), 0
}

// mustExec runs a command in c that must succeed.
func (c *container) mustExec(argv ...string) {
	c.t.Helper()
	if out, code := c.exec(argv...); code != 0 {
		c.t.Fatalf("docker exec %s %v: exit %d: %s", c.name, argv, code, out)
	}
}

// newNetwork creates a user-defined network, whose containers find each other by name, and
// removes it when the test ends (after its containers, made later).
func newNetwork(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("svinit-e2e-%s-net%d", runID, containerSeq.Add(1))
	mustDocker(t, "network", "create", "--label", runLabel+"="+runID, name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		docker(ctx, "network", "rm", name)
	})
	return name
}

// throttled asks cond at most every 200 ms: each question is a docker CLI run.
func throttled(cond func() bool) func() bool {
	var last time.Time
	return func() bool {
		if time.Since(last) < 200*time.Millisecond {
			return false
		}
		last = time.Now()
		return cond()
	}
}
