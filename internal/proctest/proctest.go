// Package proctest is what the end-to-end tests share about processes: the test binary
// playing a helper program, and what /proc says of the processes below it.
package proctest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proc"
)

// SelfPath is the running test binary, which the tests start again as a helper program.
func SelfPath() string {
	p, _ := os.Executable()
	return p
}

// WithoutEnv returns env less the variable name.
func WithoutEnv(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// AppendLine appends line to the record file at path, how helpers report what they saw;
// a helper has no one to report a failure to, so errors are dropped.
func AppendLine(path, line string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	f.WriteString(line + "\n")
	f.Close()
}

// Block waits until the process is killed. A bare select{} would not: the Go runtime would
// call it a deadlock.
func Block() int {
	for {
		time.Sleep(time.Hour)
	}
}

// Children lists the children of pid: each thread lists those it forked.
func Children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var kids []int
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		for _, f := range strings.Fields(string(b)) {
			if k, err := strconv.Atoi(f); err == nil {
				kids = append(kids, k)
			}
		}
	}
	return kids
}

// Helpers are the helper programs a test binary can play, by name.
type Helpers map[string]func(args []string) int

// Run plays the helper named mode with args and returns its exit code.
func (h Helpers) Run(mode string, args []string) int {
	run, ok := h[mode]
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown helper", mode)
		return 100
	}
	return run(args)
}

// Main is the body of TestMain for a test binary that plays helper programs: when the
// variable env names a helper, it plays it; else it runs the tests with run. It returns the
// exit code.
func (h Helpers) Main(env string, run func() int) int {
	if mode := os.Getenv(env); mode != "" {
		return h.Run(mode, os.Args[1:])
	}
	return run()
}

// ExitOnInterrupt catches sigs so that the children this process starts get them at their
// defaults, whatever it inherited: the Go runtime resets a caught signal to SIG_DFL in a
// child, but passes an inherited SIG_IGN on (a background job of a non-interactive shell
// ignores SIGINT). At the first of them it runs cleanup, if any, and exits as the signal
// would have ended it.
func ExitOnInterrupt(cleanup func(), sigs ...os.Signal) {
	interrupts := make(chan os.Signal, 1)
	signal.Notify(interrupts, sigs...)
	go func() {
		sig := <-interrupts
		if cleanup != nil {
			cleanup()
		}
		os.Exit(128 + int(sig.(syscall.Signal)))
	}()
}

// Exit is the helper that exits with the code given as its argument.
func Exit(args []string) int {
	n, _ := strconv.Atoi(args[0])
	return n
}

// Poll waits until cond holds, looking every few milliseconds, and fails the test when limit
// passes first: tests wait for what they need, never a fixed time.
func Poll(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// FirstChild waits until ppid has a child and returns its pid, failing the test when limit
// passes first.
func FirstChild(t testing.TB, limit time.Duration, ppid int) int {
	t.Helper()
	var pid int
	Poll(t, limit, fmt.Sprintf("a child of %d", ppid), func() bool {
		if kids := Children(ppid); len(kids) > 0 {
			pid = kids[0]
		}
		return pid != 0
	})
	return pid
}

// KillTree SIGKILLs pid and everything below it, as a node crash or the OOM killer would:
// each process is frozen first, so that none sees a child die and cleans up before its
// own SIGKILL. Also used so that a failed test leaves nothing behind.
func KillTree(pid int) {
	unix.Kill(pid, unix.SIGSTOP)
	for _, k := range Children(pid) {
		KillTree(k)
	}
	unix.Kill(pid, unix.SIGKILL)
}

// ZombiesOf counts the zombie children of ppid.
func ZombiesOf(ppid int) int {
	n := 0
	for _, pid := range proc.PIDs() {
		if st, err := proc.ReadStat(pid); err == nil && st.State == "Z" && st.PPID == ppid {
			n++
		}
	}
	return n
}

// HasLine reports whether the record file at path has a line equal to want.
func HasLine(path, want string) bool {
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(b), "\n") {
		if l == want {
			return true
		}
	}
	return false
}

// WaitLine waits until the record file at path has a line equal to want, failing the test
// when limit passes first.
func WaitLine(t testing.TB, limit time.Duration, path, want string) {
	t.Helper()
	Poll(t, limit, "line "+strconv.Quote(want)+" in "+filepath.Base(path), func() bool { return HasLine(path, want) })
}

// Output runs name in dir, with env added to this process's environment, and returns its
// standard output; the test fails with both outputs when it fails.
func Output(t testing.TB, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}
