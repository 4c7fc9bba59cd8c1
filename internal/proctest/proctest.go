// Package proctest is what the end-to-end tests share about processes: the test binary
// playing a helper program, and what /proc says of the processes below it.
package proctest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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
