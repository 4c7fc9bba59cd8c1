// Package reaper collects the exit of every process that becomes svinit's child: the one
// it started, and as PID 1 or child subreaper, every orphan reparented to it.
package reaper

import (
	"context"
	"errors"
	"sync"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// Reaper owns every wait4 in the process. A process started through Start has its exit
// status delivered on its channel; any other exit is an orphan's and is only counted.
// Nothing else in svinit may wait for a child, or it would steal an exit status.
type Reaper struct {
	log zerolog.Logger

	mu         sync.Mutex
	waiters    map[int]chan unix.WaitStatus
	noChildren bool          // the last pass ended with ECHILD
	changed    chan struct{} // closed, and replaced, after every pass
	orphans    uint64
}

// New returns a Reaper. Whoever owns the signals calls Reap once at once (children may
// have exited before SIGCHLD was subscribed to) and once for every SIGCHLD; SIGCHLDs
// coalesce, so each pass reaps everything that has exited, not one process.
func New(log zerolog.Logger) *Reaper {
	return &Reaper{log: log, waiters: map[int]chan unix.WaitStatus{}, changed: make(chan struct{})}
}

// Start runs start, which must create a child process and return its pid, and subscribes
// to that pid's exit before any reap pass can see it.
func (r *Reaper) Start(start func() (int, error)) (int, <-chan unix.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := start()
	if err != nil {
		return 0, nil, err
	}
	exited := make(chan unix.WaitStatus, 1)
	r.waiters[pid] = exited
	r.noChildren = false
	return pid, exited, nil
}

// ErrReaped: the process's exit was collected, and its pid may belong to another by now.
var ErrReaped = errors.New("process already reaped")

// Signal sends sig to pid, a process started through Start, unless its exit was collected:
// until then its pid cannot be reused, so the signal cannot reach a stranger.
func (r *Reaper) Signal(pid int, sig unix.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.waiters[pid]; !ok {
		return ErrReaped
	}
	return unix.Kill(pid, sig)
}

// Reap collects every exited child without blocking and returns how many it collected.
func (r *Reaper) Reap() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for {
		var ws unix.WaitStatus
		pid, err := wait(&ws)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 {
			r.noChildren = err == unix.ECHILD
			break
		}
		n++
		if ch, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			ch <- ws
			continue
		}
		r.orphans++
		r.log.Debug().Int("pid", pid).Int("status", int(ws)).Msg("orphan reaped")
	}
	close(r.changed)
	r.changed = make(chan struct{})
	return n
}

// Orphans returns how many processes not started through Start have been reaped.
func (r *Reaper) Orphans() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.orphans
}

// WaitNoChildren returns nil once svinit has no child left, living or zombie: since it
// is PID 1 or a subreaper, that means no descendant is left either.
func (r *Reaper) WaitNoChildren(ctx context.Context) error {
	for {
		r.Reap()
		r.mu.Lock()
		done, changed := r.noChildren, r.changed
		r.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}
