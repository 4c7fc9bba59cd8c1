package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/exitcode"
	"github.com/svinit/svinit/internal/state"
)

// stopPoll is how often `svinit stop --wait` looks whether svinit has exited.
const stopPoll = 20 * time.Millisecond

// opsFlags parses a subcommand's options; --state-file defaults to SVINIT_STATE_FILE.
func opsFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("svinit "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("state-file", os.Getenv("SVINIT_STATE_FILE"), "the state file of the svinit to look at (SVINIT_STATE_FILE); unset: the default one")
	return fs, path
}

func readState(path string, stderr io.Writer) (state.State, string, bool) {
	if path == "" {
		path = state.ReadPath()
	}
	st, err := state.Read(path)
	if err != nil {
		fmt.Fprintf(stderr, "svinit: %v\n", err)
		return st, path, false
	}
	return st, path, true
}

// runStatus prints the state of the svinit that keeps the state file, and exits 0 only when
// its child is running: an exec startup or liveness probe, and an operator's first look.
func runStatus(args []string, stdout, stderr io.Writer) int {
	fs, path := opsFlags("status", stderr)
	asJSON := fs.Bool("json", false, "print the state file's JSON, with \"stale\" added")
	ready := fs.Bool("ready", false, "exit 0 only while the child runs and, with svinit's --ready, its last readiness checks passed: a readiness or startup probe, a HEALTHCHECK")
	if err := fs.Parse(args); err != nil {
		return usageCode(err)
	}
	st, p, ok := readState(*path, stderr)
	if !ok {
		return exitcode.StatusUnknown
	}
	stale := false
	if st.Phase != state.Exited {
		err := st.Svinit.ProveSvinit()
		if errors.Is(err, state.ErrUntrusted) {
			fmt.Fprintf(stderr, "svinit: %s: %v\n", p, err)
			return exitcode.StatusUnknown
		}
		stale = err != nil
	}
	code := exitcode.StatusNotRunning
	frozen := frozenOf(st)
	switch {
	case stale:
		code = exitcode.StatusDead
	case st.Phase == state.Running && st.Child != nil && st.Child.Alive() && frozen == "":
		code = exitcode.StatusRunning
	}
	notReady := ""
	switch {
	case !*ready:
	case code == exitcode.StatusRunning && st.Ready != nil && !st.Ready.Ready:
		code = exitcode.StatusNotRunning // the ready line says why
	case code == exitcode.StatusDead:
		notReady = "svinit is gone"
	case frozen != "":
		notReady = frozen + " is frozen"
	case code != exitcode.StatusRunning:
		notReady = st.Phase
	}
	if *asJSON {
		out, _ := json.MarshalIndent(struct {
			state.State
			Stale  bool   `json:"stale"`
			Frozen string `json:"frozen,omitempty"`
			Path   string `json:"state_file"`
		}{st, stale, frozen, p}, "", "  ")
		fmt.Fprintf(stdout, "%s\n", out)
		return code
	}
	printStatus(stdout, st, stale, p)
	if notReady != "" {
		fmt.Fprintf(stdout, "  not ready: %s\n", notReady)
	}
	if frozen != "" {
		fmt.Fprintf(stdout, "  frozen: %s is stopped by a signal (SIGSTOP), so status fails until it is continued (SIGCONT)\n", frozen)
	}
	return code
}

// frozenOf names who of a running svinit and its child is stopped by a signal:
// hung as far as a liveness probe is concerned. "" when neither is.
func frozenOf(st state.State) string {
	switch {
	case st.Phase != state.Running || st.Child == nil:
		return ""
	case st.Svinit.Frozen():
		return "svinit"
	case st.Child.Frozen():
		return "the child"
	}
	return ""
}

func printStatus(w io.Writer, st state.State, stale bool, path string) {
	now := time.Now()
	phase := st.Phase
	if stale {
		phase += " (stale: this svinit is gone; it was killed or its container stopped)"
	}
	fmt.Fprintf(w, "svinit pid %d, up %s: %s\n", st.Svinit.PID, since(now, st.Svinit.Started), phase)
	if c := st.Child; c != nil {
		what := "running"
		if st.Phase != state.Running || !c.Alive() {
			what = "exited"
		}
		fmt.Fprintf(w, "  child:   pid %d, %s, started %s ago: %s\n", c.PID, what, since(now, c.Started), strings.Join(c.Argv, " "))
	}
	for _, d := range st.Waiting {
		fmt.Fprintf(w, "  waiting for: %s: %s\n", d.Check, d.Error)
	}
	if l := st.Lock; l != nil {
		held := "waiting for it"
		if l.Held {
			held = "held (instance " + l.Instance + ")"
		} else if st.Phase != state.WaitingForLock {
			held = "released"
		}
		fmt.Fprintf(w, "  lock:    %s, %s\n", l.Path, held)
	}
	if l := st.License; l != nil {
		line := fmt.Sprintf("  license: %s, instance %s", l.Provider, l.Instance)
		if l.ActivationID != "" {
			line += ", activation " + l.ActivationID
		}
		if !l.LeaseExpires.IsZero() {
			line += ", lease until " + l.LeaseExpires.Format(time.RFC3339)
		}
		if !l.Expires.IsZero() {
			line += ", license until " + l.Expires.Format(time.RFC3339)
		}
		fmt.Fprintln(w, line)
	}
	if r := st.Ready; r != nil {
		what := "ready"
		if !r.Ready {
			what = "not ready"
		}
		line := fmt.Sprintf("  ready:   %s since %s ago (%s)", what, since(now, r.Since), r.Since.Format(time.RFC3339))
		if r.Reason != "" {
			line += ": " + r.Reason
		}
		if !r.Checked.IsZero() {
			line += fmt.Sprintf("; checked %s ago", since(now, r.Checked))
		}
		fmt.Fprintln(w, line)
	}
	if st.ExitCode != nil {
		fmt.Fprintf(w, "  exit code: %d\n", *st.ExitCode)
	}
	fmt.Fprintf(w, "  state file: %s, updated %s ago\n", path, since(now, st.Updated))
}

func since(now, t time.Time) time.Duration { return now.Sub(t).Round(time.Second) }

// runStop asks the svinit of the state file to stop gracefully, with SIGTERM, as
// `docker stop` or the kubelet would; with --wait it returns once that svinit has exited.
func runStop(args []string, stdout, stderr io.Writer) int {
	fs, path := opsFlags("stop", stderr)
	wait := fs.Bool("wait", false, "return only once svinit has exited (its child stopped, the seat and the lock given back)")
	timeout := fs.Duration("timeout", 0, "with --wait, give up after this long (exit 1); 0: wait as long as it takes")
	if err := fs.Parse(args); err != nil {
		return usageCode(err)
	}
	st, p, ok := readState(*path, stderr)
	if !ok {
		return exitcode.StatusUnknown
	}
	err := errNotRunning
	if st.Phase != state.Exited {
		err = terminate(st.Svinit)
	}
	switch {
	case errors.Is(err, state.ErrGone), errors.Is(err, errNotRunning):
		fmt.Fprintf(stdout, "svinit pid %d is not running\n", st.Svinit.PID)
		return 0
	case errors.Is(err, state.ErrUntrusted):
		fmt.Fprintf(stderr, "svinit: stop: %s: %v; nothing was signalled\n", p, err)
		return exitcode.StatusUnknown
	case err != nil:
		fmt.Fprintf(stderr, "svinit: stop: SIGTERM to svinit pid %d: %v\n", st.Svinit.PID, err)
		return exitcode.StatusDead
	}
	if !*wait {
		return 0
	}
	var deadline <-chan time.Time
	if *timeout > 0 {
		deadline = time.After(*timeout)
	}
	tick := time.NewTicker(stopPoll)
	defer tick.Stop()
	for st.Svinit.Alive() && !(st.Svinit.PID == 1 && saysExited(p, st.Svinit)) {
		select {
		case <-deadline:
			fmt.Fprintf(stderr, "svinit: stop: svinit pid %d still running after %s\n", st.Svinit.PID, *timeout)
			return exitcode.StatusDead
		case <-tick.C:
		}
	}
	fmt.Fprintf(stdout, "svinit pid %d stopped\n", st.Svinit.PID)
	return 0
}

// errNotRunning: the state file says its svinit has exited.
var errNotRunning = errors.New("exited")

// terminate sends SIGTERM to svinit p once it is proved to be the svinit of the state file.
// The pid is held by a pidfd from before the proof, so that it cannot exit and be reused by
// another process between the proof and the signal.
func terminate(p state.Process) error {
	pidfd, err := unix.PidfdOpen(p.PID, 0)
	switch {
	case errors.Is(err, unix.ESRCH):
		return fmt.Errorf("svinit pid %d: %w", p.PID, state.ErrGone)
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM): // an old kernel, a seccomp profile
		pidfd = -1
	case err != nil:
		return err
	default:
		defer unix.Close(pidfd)
	}
	if err := p.ProveSvinit(); err != nil {
		return err
	}
	if pidfd < 0 {
		return unix.Kill(p.PID, unix.SIGTERM)
	}
	return unix.PidfdSendSignal(pidfd, unix.SIGTERM, nil, 0)
}

// saysExited says whether the state file at path says that the svinit it named, the same
// process, has exited: its seat and lock are back. A waiter in the PID namespace of which
// svinit is PID 1 returns then, as PID 1's exit ends every process there.
func saysExited(path string, svinit state.Process) bool {
	st, err := state.Read(path)
	return err == nil && st.Phase == state.Exited && st.Svinit.PID == svinit.PID && st.Svinit.StartTicks == svinit.StartTicks
}

func usageCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitcode.OK
	}
	return exitcode.Usage
}
