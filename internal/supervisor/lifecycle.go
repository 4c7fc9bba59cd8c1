package supervisor

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/check"
	"github.com/svinit/svinit/internal/config"
	"github.com/svinit/svinit/internal/exitcode"
	"github.com/svinit/svinit/internal/lease"
	"github.com/svinit/svinit/internal/license"
	"github.com/svinit/svinit/internal/lock"
	"github.com/svinit/svinit/internal/signals"
	"github.com/svinit/svinit/internal/state"
)

// The steps of the life cycle, each owning one thing. A step that is not configured (no
// --wait-for, no --ready, no --lock, no --template, no license) does nothing, and writes
// no phase.

// Dependencies is --wait-for: waited for first, before anything is taken.
type Dependencies interface {
	// Wait returns once every dependency is there; ctx ends the wait.
	Wait(ctx context.Context) error
}

// Readiness is --ready: checked while the child runs.
type Readiness interface {
	// Watch checks the child's readiness until ctx ends, and then returns at once.
	Watch(ctx context.Context)
}

// Lock is --lock: taken first of what is taken, after the wait, and released last.
type Lock interface {
	// Take waits for the lock and takes it; ctx ends the wait.
	Take(ctx context.Context) error
	// FD is the descriptor the child inherits, which keeps the lock held while it runs; -1
	// when there is none.
	FD() int
	// ChildStarted names the child's process group in the lock, for waiters.
	ChildStarted(pid int)
	Release()
}

// Lease is --lock k8s-lease:NAME: taken after the lock file, renewed while svinit holds it,
// and given back as the very last step.
type Lease interface {
	// Take waits for the Lease and takes it; ctx ends the wait. From then on it is renewed,
	// and lost is called, once, from another goroutine, should it be lost; expired when
	// another may hold it already.
	Take(ctx context.Context, lost func(expired bool)) error
	// Lost reports that it was lost while held.
	Lost() bool
	// Release clears it within what is left of the stop budget, deadline (zero when nobody
	// asked the child to stop).
	Release(deadline time.Time)
}

// Templates writes the --template files, checked before anything was taken, all or none.
type Templates interface {
	Write() error
}

// Watch is --template-watch: while the child runs, it renders the templates again when
// their sources change, and tells the child.
type Watch interface {
	// Refresh renders the templates again just before the child starts, and signals nothing:
	// a change made while svinit waited (a lock, the seat) is what the child starts with.
	Refresh()
	// Start begins once the child runs; closing stop (the stop begins) ends it.
	Start(stop <-chan struct{})
	// Stop ends it, once the child has exited.
	Stop()
}

// License is the seat the child runs under.
type License interface {
	// Activate takes the seat; ctx ends the attempts. It fails with nothing held, or with a
	// seat that Deactivate gives back.
	Activate(ctx context.Context) error
	// Deactivate gives the seat back within what is left of the stop budget, deadline (zero
	// when nobody asked the child to stop).
	Deactivate(deadline time.Time)
	// Held reports a seat still held: its deactivation failed, and the journal keeps it.
	Held() bool
}

// Child is the program.
type Child interface {
	// Start starts it with lockFD (-1: none) beside what it inherits; exited delivers its
	// status once it has been reaped.
	Start(lockFD int) (pid int, exited <-chan unix.WaitStatus, err error)
	// Signal sends sig to target: the child's pid, or its process group (-pid).
	Signal(target int, sig unix.Signal) error
	// Release lets go of what holds the child to svinit's life, once it has been reaped.
	Release()
}

// CleanUp ends every process the child or a check left, within what is left of the stop budget
// (deadline; zero when nobody asked the child to stop), and reaps them all.
type CleanUp interface {
	Run(deadline time.Time)
}

// Recorder keeps the state file, which `svinit status` reads.
type Recorder interface {
	Enter(phase string)
	ChildStarted(pid int, started time.Time)
	// Exited is the last record: svinit's exit code, once the seat and the lock are back;
	// seatHeld keeps the activation in the record when its deactivation failed.
	Exited(code int, seatHeld bool)
}

// Life is one life cycle: the steps, in the order Run goes through them, and the goroutine
// that owns the signals.
type Life struct {
	Dependencies Dependencies
	Readiness    Readiness
	Lock         Lock
	Lease        Lease
	Templates    Templates
	Watch        Watch // nil without --template-watch: no watch at all
	License      License
	Child        Child
	CleanUp      CleanUp
	Record       Recorder
	Signals      *Signals
	Forward      Forwarding
	RemapExit    config.ExitCodes
	Argv         []string // for the log
	Log          zerolog.Logger
}

// Run goes through the whole life cycle and returns the code svinit exits with:
// wait -> lock -> lease -> render -> activate -> start -> supervise -> stop -> clean up ->
// deactivate -> unlock -> release the lease. A failed step, or a stop signal before the
// child started, ends the start-up; whatever was taken is given back on every path, the
// seat before the locks. A Lease lost stops the child as SIGTERM does, and svinit exits 73.
func (l *Life) Run() (code int) {
	defer func() { l.Record.Exited(code, l.License.Held()) }()
	startup := l.Signals.Startup()

	if err := l.Dependencies.Wait(startup); err != nil || l.Signals.Stopped() != 0 {
		// A check's command may have left a daemon out of its process group: the
		// start-up ends here, and nothing may outlive it.
		l.CleanUp.Run(time.Time{})
		if err != nil {
			return l.startupFailed("wait", err, waitExitCode(err))
		}
	}
	if sig := l.Signals.Stopped(); sig != 0 {
		return l.stoppedBeforeStart(sig, "wait")
	}

	if err := l.Lock.Take(startup); err != nil {
		return l.startupFailed("lock", err, lockExitCode(err))
	}
	if err := l.Lease.Take(startup, l.leaseLost); err != nil {
		l.Lock.Release()
		return l.startupFailed("lease", err, lockExitCode(err))
	}
	code, stopDeadline := l.underLocks(startup)
	// The Lease last: a successor on another node that holds it finds everything given
	// back, the file lock too, and its clearing, a network call, cannot hold up the rest.
	l.Lock.Release()
	l.Lease.Release(stopDeadline)
	if l.Lease.Lost() && l.Signals.StopRequested() { // lost after the child's own exit, it stopped nothing
		l.Log.Error().Int("child_exit_code", code).Int("exit_code", exitcode.LockTimeout).Msg("the lease was lost: exiting with 73")
		return exitcode.LockTimeout
	}
	return code
}

// underLocks is the life cycle while svinit holds its locks: render -> activate -> the child
// -> deactivate. It returns the exit code and the end of the stop budget (zero when nobody
// asked the child to stop).
func (l *Life) underLocks(startup context.Context) (code int, stopDeadline time.Time) {
	if sig := l.Signals.Stopped(); sig != 0 {
		return l.stoppedBeforeStart(sig, "lock"), time.Time{}
	}

	if err := l.Templates.Write(); err != nil {
		return l.startupFailed("render", err, exitcode.Usage), time.Time{}
	}
	if sig := l.Signals.Stopped(); sig != 0 {
		return l.stoppedBeforeStart(sig, "render"), time.Time{}
	}

	if err := l.License.Activate(startup); err != nil {
		l.License.Deactivate(time.Time{}) // a seat whose license could not be written
		return l.startupFailed("license", err, license.ExitCode(err)), time.Time{}
	}
	code, stopDeadline = l.runChild()
	l.License.Deactivate(stopDeadline)
	return code, stopDeadline
}

// runChild starts the child, forwards its signals until it exits, then ends what it left.
// It returns the exit code and the end of the stop budget (zero when nobody asked the
// child to stop), which the deactivation gets what is left of.
func (l *Life) runChild() (code int, stopDeadline time.Time) {
	started := time.Now()
	// What runs beside the child ends when its stop begins, or when it exits.
	beside, endBeside := context.WithCancel(l.Signals.StopBegun())
	defer endBeside()
	if l.Watch != nil {
		l.Watch.Refresh()
	}
	pid, stopped, err := l.Signals.startChild(l.Child, l.Lock.FD(), l.Forward, func() { l.Record.Enter(state.Stopping) })
	defer l.Child.Release() // after the reaping: the child may end with what held it
	switch {
	case stopped != 0:
		return l.stoppedBeforeStart(stopped, "spawn"), time.Time{}
	case err != nil:
		return l.cannotStart(err), time.Time{}
	}
	// The child's process group is its pid (Setpgid), recorded before anything else, for
	// a program that closes its copy of the lock's descriptor at once.
	l.Lock.ChildStarted(pid)
	l.Log.Info().Int("pid", pid).Strs("argv", l.Argv).Msg("child started")
	l.Record.ChildStarted(pid, started)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		l.Readiness.Watch(beside)
	}()
	if l.Watch != nil {
		l.Watch.Start(l.Signals.StopBegun().Done())
	}

	exit := l.Signals.waitChild()
	endBeside()
	if l.Watch != nil {
		l.Watch.Stop()
	}
	<-watched // its check processes are killed, and it writes no more state
	code = exitcode.Of(exit.Status)
	ev := l.Log.Info().Int("pid", pid).Int("exit_code", code).Dur("elapsed_ms", time.Since(started))
	if exit.Status.Signaled() {
		ev = ev.Str("signal", signals.Name(exit.Status.Signal()))
	}
	ev.Msg("child exited")

	l.CleanUp.Run(exit.StopDeadline)

	if mapped := l.RemapExit.Map(code); mapped != code {
		l.Log.Info().Int("exit_code", code).Int("reported", mapped).Msg("exit code remapped")
		code = mapped
	}
	return code, exit.StopDeadline
}

// leaseLost stops the child, at once when the Lease may be another's already.
func (l *Life) leaseLost(expired bool) {
	if expired {
		l.Signals.RequestKill()
		return
	}
	l.Signals.RequestStop()
}

// startupFailed ends the start-up after step failed: with 128+N when a stop signal caused
// it (the wait was cancelled), else with code.
func (l *Life) startupFailed(step string, err error, code int) int {
	if sig := l.Signals.Stopped(); sig != 0 {
		return l.stoppedBeforeStart(sig, step)
	}
	l.Log.Error().Err(err).Str("step", step).Int("exit_code", code).Msg("start-up failed, nothing started")
	return code
}

// stoppedBeforeStart is the exit code of a start-up that a stop signal ended during step.
func (l *Life) stoppedBeforeStart(sig unix.Signal, step string) int {
	l.Log.Info().Str("signal", signals.Name(sig)).Str("step", step).Msg("stopped before the child started")
	return exitcode.Signaled(sig)
}

// cannotStart is the exit code of a child that could not be started: 127 or 126 as a
// shell gives them, or 125 when svinit itself failed.
func (l *Life) cannotStart(err error) int {
	var se *startError
	if errors.As(err, &se) {
		l.Log.Error().Err(err).Str("program", se.program).Int("exit_code", se.code).Msg("cannot start the child")
		return se.code
	}
	l.Log.Error().Err(err).Msg("cannot start the child")
	return exitcode.Internal
}

// waitExitCode is the exit code of a --wait-for that failed: 124 when --wait-timeout
// passed, as timeout(1) gives.
func waitExitCode(err error) int {
	if errors.Is(err, check.ErrTimeout) {
		return exitcode.WaitTimeout
	}
	return exitcode.Internal
}

// lockExitCode is the exit code of a lock that could not be taken.
func lockExitCode(err error) int {
	switch {
	case errors.Is(err, lock.ErrBadPath):
		return exitcode.Usage
	case errors.Is(err, lock.ErrTimeout), errors.Is(err, lease.ErrRefused):
		return exitcode.LockTimeout
	}
	return exitcode.Internal
}
