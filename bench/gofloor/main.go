// Command gofloor is the floor of a Go init built like svinit: the whole of svinit is
// linked in, so that its binary, its package inits and the pages they touch are svinit's,
// but none of svinit's work is done. It does what every init must: subscribes to the
// signals svinit forwards (the same way, through signals.Subscribe), starts the child,
// forwards each signal to it, reaps every child, and exits with the child's status.
//
//	gofloor [--] PROGRAM [ARG...]
//
// The bench runs it beside svinit and the C inits: what separates gofloor from tini is the
// Go runtime and what svinit links; what separates svinit from gofloor is svinit's own work
// (configuration, logging, the state file, the clean-up).
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/cli"
	"github.com/svinit/svinit/internal/signals"
)

// linkAll is never set by the bench. Its branch keeps every function of svinit in the
// binary: without a call the linker would drop all but the package inits.
const linkAll = "GOFLOOR_RUN_SVINIT"

func main() {
	if os.Getenv(linkAll) == "1" {
		os.Exit(cli.Run(os.Args, os.Stdout, os.Stderr, "gofloor"))
	}
	sigs := make(chan os.Signal, 128)
	subscribed := signals.Subscribe(sigs)
	signal.Notify(sigs, unix.SIGCHLD)
	if os.Getpid() != 1 {
		unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: gofloor [--] PROGRAM [ARG...]")
		os.Exit(2)
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "gofloor:", err)
		os.Exit(127)
	}
	<-subscribed
	child, err := syscall.ForkExec(path, args, &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "gofloor:", err)
		os.Exit(126)
	}
	for sig := range sigs {
		if sig != unix.SIGCHLD {
			unix.Kill(child, sig.(unix.Signal))
			continue
		}
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if pid <= 0 {
				break
			}
			if pid == child {
				if ws.Signaled() {
					os.Exit(128 + int(ws.Signal()))
				}
				os.Exit(ws.ExitStatus())
			}
		}
	}
}
