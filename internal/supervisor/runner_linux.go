package supervisor

import (
	"context"
	"io"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/exitcode"
	"github.com/svinit/svinit/internal/reaper"
)

// outputDrain bounds the wait for a command's output once the command has exited.
const outputDrain = time.Second

// reaperRunner runs the license commands and the exec: checks. exec.Cmd.Wait cannot be
// used while the reaper owns every wait4 in the process: the command's exit is delivered
// by the reaper instead.
type reaperRunner struct {
	r *reaper.Reaper
	// dieWithSvinit: the command gets SIGKILL when svinit dies, as the child does; a
	// check's command has nothing to finish, and nobody else would end it.
	dieWithSvinit bool
}

func (rr reaperRunner) Run(ctx context.Context, argv, env []string, stdout, stderr io.Writer) (int, error) {
	path, err := lookPath(argv[0], env)
	if err != nil {
		return 0, err
	}
	sys := &syscall.SysProcAttr{Setpgid: true}
	if rr.dieWithSvinit {
		// The parent-death signal follows the thread that forked: it must outlive the
		// command, and a locked thread is never ended under it.
		sys.Pdeathsig = syscall.SIGKILL
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return 0, err
	}
	pid, exited, err := rr.r.Start(func() (int, error) {
		return syscall.ForkExec(path, argv, &syscall.ProcAttr{
			Env:   env,
			Files: []uintptr{^uintptr(0), outW.Fd(), errW.Fd()}, // no stdin
			Sys:   sys,
		})
	})
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return 0, err
	}
	var copies sync.WaitGroup
	for _, c := range []struct {
		w io.Writer
		r *os.File
	}{{stdout, outR}, {stderr, errR}} {
		copies.Add(1)
		go func() {
			defer copies.Done()
			io.Copy(c.w, c.r)
		}()
	}
	defer func() {
		outR.Close()
		errR.Close()
	}()
	var ws unix.WaitStatus
	select {
	case ws = <-exited:
	case <-ctx.Done():
		unix.Kill(-pid, unix.SIGKILL)
		ws = <-exited
		err = ctx.Err()
	}
	// What the command left in its group would hold its output open; and no copy may
	// write to the caller's buffers after Run returns. A process that left the group
	// (setsid, a vendor CLI's background agent) can hold it open for ever: the copies get a
	// moment to drain, then the read ends are closed under them.
	unix.Kill(-pid, unix.SIGKILL)
	drained := make(chan struct{})
	go func() {
		copies.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(outputDrain):
		outR.Close()
		errR.Close()
		<-drained
	}
	if err != nil {
		return 0, err
	}
	return exitcode.Of(ws), nil
}
