// Command mininit is the minimal Go init, the yardstick of issue 18: it catches the signals
// svinit forwards, starts the child, forwards each signal to it, reaps every child and
// exits with the child's status. Nothing more, and nothing but the standard library and
// golang.org/x/sys linked: what separates it from tini is the Go runtime, what separates
// svinit from it is all the rest svinit links and does.
//
//	mininit [--] PROGRAM [ARG...]
package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// Exit codes, as svinit's and tini's: 2 for usage, 126/127 when the program cannot run.
const (
	exitUsage      = 2
	exitCannotRun  = 126
	exitNotFound   = 127
	exitSignalBase = 128
)

// work, when set (go build -tags work), does the part of svinit's work that every start
// does with svinit's own dependencies: the yardstick for what they cost (work.go).
var work func(args []string, child int)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	sigs := make(chan os.Signal, 128)
	subscribed := subscribe(sigs)
	if os.Getpid() != 1 {
		unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: mininit [--] PROGRAM [ARG...]")
		return exitUsage
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintln(stderr, "mininit:", err)
		return exitNotFound
	}
	<-subscribed // a signal the runtime dropped before now could not be forwarded
	child, err := syscall.ForkExec(path, args, &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}})
	if err != nil {
		fmt.Fprintln(stderr, "mininit:", err)
		return exitCannotRun
	}
	if work != nil {
		work(args, child)
	}
	return supervise(child, sigs)
}

// subscribe catches what svinit catches (internal/signals, which this program may not
// import), the same way, so that the start-up figures compare like with like: the
// signals whose Go default would exit or stop the init at once, then the rest in the
// background. The returned channel is closed once all are caught.
func subscribe(c chan<- os.Signal) <-chan struct{} {
	var first, rest []os.Signal
	for s := unix.Signal(1); s <= 64; s++ {
		switch {
		case s == unix.SIGKILL || s == unix.SIGSTOP || s == unix.SIGURG || s == unix.SIGPROF,
			s == unix.SIGSEGV || s == unix.SIGBUS || s == unix.SIGILL || s == unix.SIGFPE,
			s == unix.SIGABRT || s == unix.SIGTRAP || s == unix.SIGSYS, s >= 32 && s <= 34:
			// uncatchable, synchronous, or the runtime's and the C libraries' own
		case s == unix.SIGHUP || s == unix.SIGINT:
			if !signal.Ignored(s) { // catching would take an inherited SIG_IGN from the child
				first = append(first, s)
			}
		case s == unix.SIGTERM || s == unix.SIGQUIT || s == unix.SIGTSTP || s == unix.SIGTTIN || s == unix.SIGTTOU,
			s == unix.SIGCHLD:
			first = append(first, s)
		default:
			rest = append(rest, s)
		}
	}
	signal.Notify(c, first...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		signal.Notify(c, rest...)
	}()
	return done
}

// supervise forwards every signal but SIGCHLD to the child; on SIGCHLD it reaps every
// exited child, and returns the exit code once the child is among them.
func supervise(child int, sigs <-chan os.Signal) int {
	for sig := range sigs {
		if sig != unix.SIGCHLD {
			unix.Kill(child, sig.(unix.Signal))
			continue
		}
		if ws, done := reapAll(child); done {
			if ws.Signaled() {
				return exitSignalBase + int(ws.Signal())
			}
			return ws.ExitStatus()
		}
	}
	return 0 // not reached: sigs is never closed
}

// reapAll collects every exited child, and the child's status if it is one of them.
func reapAll(child int) (status unix.WaitStatus, childDone bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 {
			return status, childDone
		}
		if pid == child {
			status, childDone = ws, true
		}
	}
}
