package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proctest"
	"github.com/svinit/svinit/internal/state"
)

// helperEnv makes the test binary a stand-in svinit that waits for SIGTERM, for `svinit
// status` and `svinit stop` to look at: it is the same executable as theirs.
const helperEnv = "SVINIT_CLI_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "wait-for-term" {
		term := make(chan os.Signal, 1)
		signal.Notify(term, unix.SIGTERM)
		select {
		case <-term:
		case <-time.After(time.Minute):
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Run's own exit codes, each from the README's table, and what it prints where.
func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "app.conf.tmpl")
	if err := os.WriteFile(tmpl, []byte("replica {{ .Index }}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name           string
		args           []string
		want           int
		stdout, stderr string // each must hold it
	}{
		{name: "help", args: []string{"--help"}, want: 0, stdout: "usage: svinit"},
		{name: "version", args: []string{"--version"}, want: 0, stdout: "svinit v-test (commit "},
		{name: "bad options, all at once", args: []string{"--grace", "soon", "--log-level", "loud", "--", "/bin/true"}, want: 2,
			stderr: "invalid configuration:\n  "},
		{name: "no program", args: nil, want: 2, stderr: "invalid configuration"},
		{name: "program not found", args: []string{"--", filepath.Join(dir, "nonexistent")}, want: 127, stderr: "nonexistent"},
		{name: "program not executable", args: []string{"--", tmpl}, want: 126, stderr: "app.conf.tmpl"},
		{name: "dry run", args: []string{"--dry-run", "--replica-index", "4", "--template", tmpl + ":" + filepath.Join(dir, "app.conf")}, want: 0,
			stdout: "replica 4"},
		{name: "the child's code", args: []string{"--state-file", filepath.Join(dir, "a.json"), "--", "/bin/sh", "-c", "exit 4"}, want: 4,
			stderr: `"exit_code":4`},
		{name: "remapped", args: []string{"--state-file", filepath.Join(dir, "b.json"), "--remap-exit", "4:0", "--", "/bin/sh", "-c", "exit 4"}, want: 0},
		{name: "killed child", args: []string{"--state-file", filepath.Join(dir, "c.json"), "--", "/bin/sh", "-c", "kill -KILL $$"}, want: 137},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Chdir(t.TempDir()) // a run changes to /
			var stdout, stderr bytes.Buffer
			code := Run(append([]string{"svinit"}, tc.args...), &stdout, &stderr, "v-test")
			if code != tc.want {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.want, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout %q, want it to hold %q", stdout.String(), tc.stdout)
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q, want it to hold %q", stderr.String(), tc.stderr)
			}
		})
	}
}

// `svinit status` and `svinit stop` against state files in each condition, with the LSB
// codes of the README's table.
func TestStatusAndStopCodes(t *testing.T) {
	dir := t.TempDir()
	svinit := startHelper(t)
	gone := exec.Command("/bin/true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	deadPID := gone.ProcessState.Pid()
	stateOf := func(name string, st state.State, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		st.Version = state.Version
		if err := state.Write(path, st); err != nil {
			t.Fatal(err)
		}
		if mode != 0 {
			os.Chmod(path, mode)
		}
		return path
	}
	code3 := 3
	var (
		running = stateOf("running.json", state.State{Phase: state.Running, Svinit: svinit, Child: &svinit,
			Lock: &state.Lock{Path: "/data/lock", Held: true, Instance: "i-1"}, License: &state.License{Provider: "exec", Instance: "i-1", ActivationID: "a-1"}}, 0)
		starting = stateOf("starting.json", state.State{Phase: state.WaitingForLock, Svinit: svinit, Lock: &state.Lock{Path: "/data/lock"}}, 0)
		exited   = stateOf("exited.json", state.State{Phase: state.Exited, Svinit: svinit, ExitCode: &code3}, 0)
		stale    = stateOf("stale.json", state.State{Phase: state.Running, Svinit: state.Process{PID: deadPID, StartTicks: 1}}, 0)
		planted  = stateOf("planted.json", state.State{Phase: state.Running, Svinit: svinit}, 0o666)
		missing  = filepath.Join(dir, "missing.json")
		ready    = stateOf("ready.json", state.State{Phase: state.Running, Svinit: svinit, Child: &svinit,
			Ready: &state.Ready{Ready: true, Since: time.Now().Add(-time.Minute), Checked: time.Now()}}, 0)
		notReady = stateOf("notready.json", state.State{Phase: state.Running, Svinit: svinit, Child: &svinit,
			Ready: &state.Ready{Since: time.Now().Add(-time.Minute), Checked: time.Now(), Reason: "tcp://db:5432: connection refused"}}, 0)
		waiting = stateOf("waiting.json", state.State{Phase: state.WaitingForDependencies, Svinit: svinit,
			Waiting: []state.Dependency{{Check: "tcp://db:5432", Error: "connection refused"}}}, 0)
	)
	for _, tc := range []struct {
		args   []string
		want   int
		stdout string
	}{
		{[]string{"status", "--state-file", running}, 0, "running"},
		{[]string{"status", "--json", "--state-file", running}, 0, `"phase": "running"`},
		{[]string{"status", "--state-file", starting}, 3, "waiting for it"},
		{[]string{"status", "--state-file", exited}, 3, "exit code: 3"},
		{[]string{"status", "--state-file", stale}, 1, "stale"},
		{[]string{"status", "--state-file", planted}, 4, ""},
		{[]string{"status", "--state-file", missing}, 4, ""},
		{[]string{"status", "--ready", "--state-file", running}, 0, "running"},
		{[]string{"status", "--ready", "--state-file", ready}, 0, "ready since"},
		{[]string{"status", "--state-file", notReady}, 0, "not ready since"},
		{[]string{"status", "--ready", "--state-file", notReady}, 3, "not ready since 1m0s ago (20"},
		{[]string{"status", "--ready", "--state-file", notReady}, 3, "tcp://db:5432: connection refused"},
		{[]string{"status", "--ready", "--state-file", starting}, 3, "not ready: waiting-for-lock"},
		{[]string{"status", "--ready", "--state-file", waiting}, 3, "not ready: waiting-for-dependencies"},
		{[]string{"status", "--state-file", waiting}, 3, "waiting for: tcp://db:5432: connection refused"},
		{[]string{"status", "--ready", "--state-file", exited}, 3, "not ready: exited"},
		{[]string{"status", "--bogus"}, 2, ""},
		{[]string{"status", "--help"}, 0, ""},
		{[]string{"stop", "--state-file", exited}, 0, "not running"},
		{[]string{"stop", "--state-file", stale}, 0, "not running"},
		{[]string{"stop", "--state-file", planted}, 4, ""},
		{[]string{"stop", "--state-file", missing}, 4, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Run(append([]string{"svinit"}, tc.args...), &stdout, &stderr, "v-test"); code != tc.want {
				t.Errorf("exit code %d, want %d; stdout %q, stderr %q", code, tc.want, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout %q, want it to hold %q", stdout.String(), tc.stdout)
			}
		})
	}
	// Last: it ends the stand-in.
	t.Run("stop --wait", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := Run([]string{"svinit", "stop", "--wait", "--timeout", "30s", "--state-file", running}, &stdout, &stderr, "v-test"); code != 0 {
			t.Errorf("exit code %d; stderr %q", code, stderr.String())
		}
		if !strings.Contains(stdout.String(), "stopped") {
			t.Errorf("stdout %q", stdout.String())
		}
	})
}

// The JSON of `svinit status --json` is the state file's, with what status worked out.
func TestStatusJSONAddsWhatItWorkedOut(t *testing.T) {
	svinit := startHelper(t)
	path := filepath.Join(t.TempDir(), "state.json")
	if err := state.Write(path, state.State{Version: state.Version, Phase: state.Running, Svinit: svinit, Child: &svinit}); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	Run([]string{"svinit", "status", "--json", "--state-file", path}, &stdout, &stderr, "v-test")
	var got struct {
		Phase     string `json:"phase"`
		Stale     bool   `json:"stale"`
		StateFile string `json:"state_file"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v: %q", err, stdout.String())
	}
	if got.Phase != state.Running || got.Stale || got.StateFile != path {
		t.Errorf("status --json = %+v", got)
	}
}

// startHelper starts the stand-in svinit and describes it as a state file would.
func startHelper(t *testing.T) state.Process {
	t.Helper()
	cmd := exec.Command(proctest.SelfPath(), "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=wait-for-term")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	pid := cmd.Process.Pid
	var p state.Process
	proctest.Poll(t, 10*time.Second, "the stand-in's start time", func() bool {
		p = state.Process{PID: pid, Started: time.Now().UTC(), StartTicks: state.StartTicks(pid)}
		return p.StartTicks != 0
	})
	return p
}
