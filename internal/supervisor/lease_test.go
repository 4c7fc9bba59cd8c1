package supervisor

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/lease"
	"github.com/svinit/svinit/internal/lock"
)

// A Lease lost while the child runs stops it with the normal stop, as a SIGTERM would: the
// stop delay, the grace, SIGKILL, the clean-up and the deactivation; then the file lock is
// released and the Lease last, and svinit exits 73 whatever the child's status.
func TestLostLeaseStopsTheChildAsSIGTERMDoes(t *testing.T) {
	taken := []string{"wait", "lock", "lease", "render", "activate", "start fd=7", "lock names group 100", "state running 100"}
	given := []string{"clean-up set", "deactivate set", "unlock", "unlease set", "state exited 73"}
	for _, tc := range []struct {
		name    string
		fwd     Forwarding
		acts    []act
		exitOn  map[unix.Signal]unix.WaitStatus
		mid     []string
		timers  []time.Duration
		expired bool
	}{
		{name: "child stops on TERM", exitOn: map[unix.Signal]unix.WaitStatus{unix.SIGTERM: killedBy(unix.SIGTERM)},
			mid: []string{"kill 100 SIGTERM", "kill 100 SIGCONT"}, timers: []time.Duration{fakeGrace, stoppingShown}},
		{name: "child ignores TERM: SIGKILL at the grace", acts: acts(fire(fakeGrace)),
			mid: []string{"kill 100 SIGTERM", "kill 100 SIGCONT", "kill -100 SIGKILL"}, timers: []time.Duration{fakeGrace, stoppingShown}},
		{name: "stop delay first", fwd: Forwarding{StopDelay: fakeStopDelay}, acts: acts(fire(fakeStopDelay)),
			exitOn: map[unix.Signal]unix.WaitStatus{unix.SIGTERM: exitStatus(0)},
			mid:    []string{"kill 100 SIGTERM", "kill 100 SIGCONT"}, timers: []time.Duration{fakeGrace, fakeStopDelay, stoppingShown}},
		{name: "TERM rewritten to 0: the grace still ends it", fwd: Forwarding{Rewrite: rewrites("TERM:0")}, acts: acts(fire(fakeGrace)),
			mid: []string{"kill -100 SIGKILL"}, timers: []time.Duration{fakeGrace, stoppingShown}},
		// Woken past the Lease's duration (a paused holder): another may run already, so
		// no grace and no stop delay.
		{name: "expired: SIGKILL at once", fwd: Forwarding{StopDelay: fakeStopDelay}, expired: true,
			mid: []string{"kill -100 SIGKILL"}, timers: []time.Duration{fakeGrace, fakeStopDelay, stoppingShown}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "running")
			h.lease.on = true
			h.child.exitOn = tc.exitOn
			h.life.Forward = tc.fwd
			h.life.Forward.Grace = fakeGrace
			code := h.run(func() {
				h.waitPhase()
				h.lease.lose(tc.expired)
				for _, a := range tc.acts {
					h.do(a)
				}
			})
			if code != 73 {
				t.Errorf("exit code %d, want 73", code)
			}
			if want := slices.Concat(taken, tc.mid, given); !slices.Equal(h.events(), want) {
				t.Errorf("steps did\n  %q\nwant\n  %q", h.events(), want)
			}
			if got := h.clock.made(); !slices.Equal(got, tc.timers) {
				t.Errorf("timers %v, want %v", got, tc.timers)
			}
		})
	}
}

// A Lease lost before the child started ends the start-up as a SIGTERM would, with 73; one
// not taken gives back the file lock; both are given back in every case, the Lease last.
func TestLeaseAtStartUp(t *testing.T) {
	for _, tc := range []struct {
		name   string
		phase  string
		fail   error
		lose   bool
		want   int
		events []string
	}{
		{name: "lost while activating", phase: "license", lose: true, want: 73,
			events: []string{"wait", "lock", "lease", "render", "activate", "deactivate none", "unlock", "unlease none", "state exited 73"}},
		{name: "lost while rendering", phase: "render", lose: true, want: 73,
			events: []string{"wait", "lock", "lease", "render", "unlock", "unlease none", "state exited 73"}},
		{name: "wait timed out", fail: fmt.Errorf("lease web held by \"b\": %w", lock.ErrTimeout), want: 73,
			events: []string{"wait", "lock", "lease", "unlock", "state exited 73"}},
		{name: "refused by the API", fail: fmt.Errorf("lease web: %w: 403", lease.ErrRefused), want: 73,
			events: []string{"wait", "lock", "lease", "unlock", "state exited 73"}},
		{name: "TERM while waiting", phase: "lease", want: 143,
			events: []string{"wait", "lock", "lease", "unlock", "state exited 143"}},
		{name: "clean run", want: 0,
			events: []string{"wait", "lock", "lease", "render", "activate", "start fd=7", "lock names group 100", "state running 100", "clean-up none", "deactivate none", "unlock", "unlease none", "state exited 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.phase)
			h.lease.on = true
			h.fail["lease"] = tc.fail
			code := h.run(func() {
				if tc.phase != "" {
					h.waitPhase()
					if tc.lose {
						h.lease.lose(false)
					} else {
						h.signal(unix.SIGTERM)
					}
					h.proceed()
				}
				h.child.exit(exitStatus(0)) // should the start-up go on
			})
			if code != tc.want {
				t.Errorf("exit code %d, want %d", code, tc.want)
			}
			if !slices.Equal(h.events(), tc.events) {
				t.Errorf("steps did\n  %q\nwant\n  %q", h.events(), tc.events)
			}
		})
	}
}

// RequestStop may come from any goroutine while signals arrive and the child exits: the
// signal goroutine takes each in turn (go test -race).
func TestRequestStopRacesNothing(t *testing.T) {
	for range 20 {
		h := newHarness(t, "running")
		h.child.exitOn = map[unix.Signal]unix.WaitStatus{unix.SIGTERM: killedBy(unix.SIGTERM)}
		h.life.Forward.Grace = fakeGrace
		code := h.run(func() {
			h.waitPhase()
			done := make(chan struct{})
			for range 4 {
				go func() { h.sigs.RequestStop(); done <- struct{}{} }()
			}
			h.signals <- unix.SIGUSR1
			h.signals <- unix.SIGTERM
			for range 4 {
				<-done
			}
			h.sync()
		})
		if code != 143 {
			t.Fatalf("exit code %d, want 143", code)
		}
		if n := slices.Index(h.events(), "kill 100 SIGTERM"); n < 0 {
			t.Fatalf("no SIGTERM reached the child: %q", h.events())
		}
	}
}

// A Lease lost once the program has exited by itself stopped nothing: svinit exits with the
// program's code, or a Job that finished would be run again for a failure that never was.
func TestLeaseLostAfterTheProgramExitedKeepsItsCode(t *testing.T) {
	h := newHarness(t, "clean-up")
	h.lease.on = true
	code := h.run(func() {
		h.child.exit(exitStatus(0))
		h.waitPhase()
		h.lease.lose(false)
		h.proceed()
	})
	if code != 0 {
		t.Errorf("exit code %d, want the program's 0", code)
	}
	want := []string{"wait", "lock", "lease", "render", "activate", "start fd=7", "lock names group 100", "state running 100",
		"clean-up none", "deactivate none", "unlock", "unlease none", "state exited 0"}
	if !slices.Equal(h.events(), want) {
		t.Errorf("steps did\n  %q\nwant\n  %q", h.events(), want)
	}
}
