package reaper

import (
	"context"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proctest"
)

// Processes started while the reap loop runs each get their own exit status, never one
// stolen by a concurrent reap pass, and orphans are counted apart.
func TestStartedExitsAreDelivered(t *testing.T) {
	if err := SetSubreaper(); err != nil {
		t.Fatalf("subreaper: %v", err)
	}
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, unix.SIGCHLD)
	defer signal.Stop(chld)
	r := New(zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go reapOnSIGCHLD(ctx, r, chld)

	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(code int) {
			defer wg.Done()
			_, exited, err := r.Start(func() (int, error) {
				return syscall.ForkExec("/bin/sh", []string{"sh", "-c", "exit $0", strconv.Itoa(code)}, &syscall.ProcAttr{})
			})
			if err != nil {
				t.Errorf("start: %v", err)
				return
			}
			select {
			case ws := <-exited:
				if ws.ExitStatus() != code {
					t.Errorf("exit status %d, want %d", ws.ExitStatus(), code)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("exit of the process exiting %d never delivered", code)
			}
		}(i)
	}
	wg.Wait()

	// An orphan: sh leaves a background sleep behind, reparented to this subreaper.
	_, exited, err := r.Start(func() (int, error) {
		return syscall.ForkExec("/bin/sh", []string{"sh", "-c", "sleep 0.01 &"}, &syscall.ProcAttr{})
	})
	if err != nil {
		t.Fatal(err)
	}
	<-exited
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := r.WaitNoChildren(wctx); err != nil {
		t.Fatalf("children left: %v", err)
	}
	if n := r.Orphans(); n != 1 {
		t.Errorf("orphans reaped: %d, want 1", n)
	}
}

// A signal reaches a started process until its exit is collected, and never after: its pid
// may belong to another process by then.
func TestSignalOnlyUntilReaped(t *testing.T) {
	r := New(zerolog.Nop())
	pid, exited, err := r.Start(func() (int, error) {
		return syscall.ForkExec("/bin/sh", []string{"sh", "-c", "trap 'exit 7' USR1; while :; do sleep 0.01; done"}, &syscall.ProcAttr{})
	})
	if err != nil {
		t.Fatal(err)
	}
	var ws unix.WaitStatus
	// sh installs its trap a moment after the fork: a USR1 before that kills it instead.
	proctest.Poll(t, 30*time.Second, "the child's exit", func() bool {
		if err := r.Signal(pid, unix.SIGUSR1); err != nil {
			t.Fatalf("Signal to a child not reaped: %v", err)
		}
		r.Reap()
		select {
		case ws = <-exited:
			return true
		default:
			return false
		}
	})
	if ws.Signaled() && ws.Signal() != unix.SIGUSR1 || ws.Exited() && ws.ExitStatus() != 7 {
		t.Errorf("status %v; want exit 7 from the trap or death by SIGUSR1", ws)
	}
	if err := r.Signal(pid, unix.SIGUSR1); err != ErrReaped {
		t.Errorf("Signal after the exit was collected = %v; want ErrReaped", err)
	}
}

// reapOnSIGCHLD is what svinit's signal goroutine does with SIGCHLD.
func reapOnSIGCHLD(ctx context.Context, r *Reaper, sigchld <-chan os.Signal) {
	for {
		r.Reap()
		select {
		case <-ctx.Done():
			return
		case <-sigchld:
		}
	}
}

// BenchmarkReapPass measures one reap pass that collects one exited child (spawning it is
// not timed) and one that finds no child at all, the cost of every spurious SIGCHLD.
func BenchmarkReapPass(b *testing.B) {
	r := New(zerolog.Nop())
	b.Run("one-exit", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			_, exited, err := r.Start(func() (int, error) {
				return syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{})
			})
			if err != nil {
				b.Fatal(err)
			}
			for len(exited) == 0 { // until it has exited: reap it in the timed part only
				var si unix.Siginfo
				unix.Waitid(unix.P_ALL, 0, &si, unix.WEXITED|unix.WNOWAIT, nil)
				b.StartTimer()
				r.Reap()
				b.StopTimer()
			}
			b.StartTimer()
		}
	})
	b.Run("none", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Reap()
		}
	})
}
