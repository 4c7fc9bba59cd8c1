package supervisor

import (
	"os"
	"os/signal"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/config"
	"github.com/svinit/svinit/internal/license"
	"github.com/svinit/svinit/internal/proctest"
	"github.com/svinit/svinit/internal/reaper"
	"github.com/svinit/svinit/internal/state"
)

// The steps New wires from the options go through a real life cycle: the lock is taken and
// removed, the template written, the seat taken by the exec provider's command and given
// back by its other, the child's code reported, and the state file ends at exited. The
// table over fake steps holds the order; this holds the wiring.
func TestWiredStepsTakeAndGiveBack(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // the child step changes to /; the test's directory comes back
	var (
		lockPath  = filepath.Join(dir, "lock")
		src, dst  = filepath.Join(dir, "app.conf.tmpl"), filepath.Join(dir, "app.conf")
		stateFile = filepath.Join(dir, "state.json")
		seatLog   = filepath.Join(dir, "seats")
	)
	if err := os.WriteFile(src, []byte("index={{ .Index }}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := parse(t, "--lock", lockPath, "--template", src+":"+dst, "--replica-index", "2", "--state-file", stateFile,
		"--license-provider", "exec", "--instance-id", "test-1",
		"--license-activate-cmd", "/bin/sh "+writeScript(t, dir, "activate", "echo activated >> "+seatLog),
		"--license-deactivate-cmd", "/bin/sh "+writeScript(t, dir, "deactivate", "echo deactivated >> "+seatLog),
		"--", "/bin/sh", "-c", "test -f "+dst+" && exit 3")

	code := <-runWired(t, cfg, nil)

	if code != 3 {
		t.Errorf("exit code %d, want the child's 3", code)
	}
	if b, err := os.ReadFile(dst); err != nil || string(b) != "index=2\n" {
		t.Errorf("rendered %q, %v; want index=2", b, err)
	}
	if _, err := os.Lstat(lockPath); !os.IsNotExist(err) {
		t.Errorf("the lock file is left: %v", err)
	}
	if b, _ := os.ReadFile(seatLog); string(b) != "activated\ndeactivated\n" {
		t.Errorf("license commands ran %q, want an activation and its deactivation", b)
	}
	st, err := state.Read(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != state.Exited || st.ExitCode == nil || *st.ExitCode != 3 || st.Lock == nil || st.Lock.Held || st.License != nil {
		t.Errorf("state file %+v, want exited 3, lock released, no license", st)
	}
}

// A stop signal reaches the real child, which exits by it: 128+N.
func TestWiredChildGetsTheStop(t *testing.T) {
	t.Chdir(t.TempDir())
	cfg := parse(t, "--state-file", filepath.Join(t.TempDir(), "state.json"), "--grace", "10s", "--", "/bin/sleep", "60")
	stop := make(chan os.Signal, 1)
	exited := runWired(t, cfg, stop)
	proctest.Poll(t, 10*time.Second, "the child to run", func() bool { return runningIn(cfg.StateFile) })
	stop <- unix.SIGTERM
	if code := <-exited; code != 143 {
		t.Errorf("exit code %d, want 143", code)
	}
}

// A child that cannot be started gives the shell's code, and New finds it first.
func TestWiredProgramNotFound(t *testing.T) {
	cfg := parse(t, "--", "/nonexistent/program")
	_, err := New(Params{Config: cfg, Log: zerolog.Nop(), Env: os.Environ(), Redactor: license.NewRedactor(), Reaper: reaper.New(zerolog.Nop())})
	if code, ok := ProgramExitCode(err); !ok || code != 127 {
		t.Errorf("New: %v; want exit 127", err)
	}
}

func parse(t *testing.T, args ...string) config.Config {
	t.Helper()
	cfg, err := config.Parse(args)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name+".sh")
	if err := os.WriteFile(path, []byte(body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// runWired runs the Supervisor New builds from cfg, with SIGCHLD and the signals of sigs
// (none when nil), and delivers its exit code.
func runWired(t *testing.T, cfg config.Config, sigs chan os.Signal) <-chan int {
	t.Helper()
	r := reaper.New(zerolog.Nop())
	s, err := New(Params{Config: cfg, Log: zerolog.Nop(), Env: os.Environ(), Redactor: license.NewRedactor(), Reaper: r})
	if err != nil {
		t.Fatal(err)
	}
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, unix.SIGCHLD)
	own := OwnSignals(SignalSources{Signals: sigs, SIGCHLD: sigchld, Reap: func() { r.Reap() }, Log: zerolog.Nop()})
	t.Cleanup(func() {
		own.Close()
		signal.Stop(sigchld)
	})
	code := make(chan int, 1)
	go func() { code <- s.Run(own) }()
	return code
}

func runningIn(stateFile string) bool {
	st, err := state.Read(stateFile)
	return err == nil && st.Phase == state.Running
}
