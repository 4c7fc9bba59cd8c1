package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/check"
	"github.com/svinit/svinit/internal/config"
	"github.com/svinit/svinit/internal/license"
	"github.com/svinit/svinit/internal/lock"
	"github.com/svinit/svinit/internal/signals"
)

// The fakes' timings: distinct, so that a test tells the timers apart, and never waited
// for, since the tests fire the timers themselves.
const (
	fakeGrace     = 5 * time.Second
	fakeStopDelay = 2 * time.Second
	fakePID       = 100
	fakeLockFD    = 7
)

// The README's phase x signal table, and the exit code of each cell, over fake steps: no
// process is started, no file written, no timer waited for. Each case sends its signals
// while the life cycle is in phase, then lets it go on; the child exits when a signal in
// exitOn reaches it, and always on SIGKILL. events is all that the steps were asked to do,
// in order: what was taken and what was given back.
func TestPhaseSignalTable(t *testing.T) {
	var (
		term = sig(unix.SIGTERM)
		intr = sig(unix.SIGINT)
		hup  = sig(unix.SIGHUP)
		usr1 = sig(unix.SIGUSR1)
		quit = sig(unix.SIGQUIT)
	)
	exitOnStop := map[unix.Signal]unix.WaitStatus{
		unix.SIGTERM: killedBy(unix.SIGTERM), unix.SIGINT: killedBy(unix.SIGINT), unix.SIGQUIT: killedBy(unix.SIGQUIT),
	}
	// What a whole life cycle asks of its steps, around what a case adds while the child runs.
	started := []string{"wait", "lock", "render", "activate", "start fd=7", "lock names group 100", "state running 100"}
	stopped := func(code int, deadline string) []string {
		return []string{"clean-up " + deadline, "deactivate " + deadline, "unlock", fmt.Sprintf("state exited %d", code)}
	}
	run := func(mid []string, code int, deadline string) []string {
		return slices.Concat(started, mid, stopped(code, deadline))
	}
	for _, tc := range []struct {
		name    string
		phase   string // lock, render, license, running, clean-up: where acts happen
		acts    []act
		exitOn  map[unix.Signal]unix.WaitStatus
		exit    unix.WaitStatus // with phase clean-up: the child's exit, before the acts
		fwd     Forwarding
		want    int
		events  []string
		timers  []time.Duration // every timer the signal goroutine made, in order
		nothing bool            // no step ran but the lock's wait
	}{
		// waiting-for-dependencies: the wait ends at once; nothing was taken.
		{name: "wait/TERM", phase: "wait", acts: acts(term), want: 143, events: []string{"wait", "state exited 143"}},
		{name: "wait/INT", phase: "wait", acts: acts(intr), want: 130, events: []string{"wait", "state exited 130"}},
		{name: "wait/others dropped", phase: "wait", acts: acts(hup, usr1, quit), want: 0, events: run(nil, 0, "none")},
		// waiting-for-lock: the wait ends at once; nothing was taken.
		{name: "lock/TERM", phase: "lock", acts: acts(term), want: 143, events: []string{"wait", "lock", "state exited 143"}},
		{name: "lock/INT", phase: "lock", acts: acts(intr), want: 130, events: []string{"wait", "lock", "state exited 130"}},
		{name: "lock/TERM twice", phase: "lock", acts: acts(term, term), want: 143, events: []string{"wait", "lock", "state exited 143"}},
		{name: "lock/others dropped", phase: "lock", acts: acts(hup, usr1, quit), exitOn: exitOnStop,
			want: 0, events: run(nil, 0, "none")},
		// rendering: the writing finishes, then start-up ends; the lock is released.
		{name: "render/TERM", phase: "render", acts: acts(term), want: 143,
			events: []string{"wait", "lock", "render", "unlock", "state exited 143"}},
		{name: "render/INT", phase: "render", acts: acts(intr), want: 130,
			events: []string{"wait", "lock", "render", "unlock", "state exited 130"}},
		{name: "render/others dropped", phase: "render", acts: acts(usr1, hup), want: 0, events: run(nil, 0, "none")},
		// activating: the activation is cancelled, what it may have taken given back, the
		// lock released.
		{name: "license/TERM", phase: "license", acts: acts(term), want: 143,
			events: []string{"wait", "lock", "render", "activate", "deactivate none", "unlock", "state exited 143"}},
		{name: "license/INT", phase: "license", acts: acts(intr), want: 130,
			events: []string{"wait", "lock", "render", "activate", "deactivate none", "unlock", "state exited 130"}},
		{name: "license/others dropped", phase: "license", acts: acts(quit, usr1), want: 0, events: run(nil, 0, "none")},
		// running: forwarded, rewritten, to the group with --kill-group; a stop signal is
		// followed by SIGCONT and starts the grace.
		{name: "running/TERM", phase: "running", acts: acts(term), exitOn: exitOnStop, want: 143,
			events: run([]string{"kill 100 SIGTERM", "kill 100 SIGCONT"}, 143, "set"), timers: []time.Duration{fakeGrace, stoppingShown}},
		{name: "running/INT", phase: "running", acts: acts(intr), exitOn: exitOnStop, want: 130,
			events: run([]string{"kill 100 SIGINT", "kill 100 SIGCONT"}, 130, "set"), timers: []time.Duration{fakeGrace, stoppingShown}},
		{name: "running/HUP USR1 QUIT forwarded", phase: "running", acts: acts(hup, usr1, quit), exitOn: exitOnStop, want: 131,
			events: run([]string{"kill 100 SIGHUP", "kill 100 SIGUSR1", "kill 100 SIGQUIT"}, 131, "none")},
		{name: "running/kill-group", phase: "running", acts: acts(usr1, term), exitOn: exitOnStop, fwd: Forwarding{KillGroup: true}, want: 143,
			events: run([]string{"kill -100 SIGUSR1", "kill -100 SIGTERM", "kill -100 SIGCONT"}, 143, "set"), timers: []time.Duration{fakeGrace, stoppingShown}},
		{name: "running/rewrite", phase: "running", acts: acts(hup, term), exitOn: exitOnStop, fwd: Forwarding{Rewrite: rewrites("HUP:0,TERM:QUIT")}, want: 131,
			events: run([]string{"kill 100 SIGQUIT", "kill 100 SIGCONT"}, 131, "set"), timers: []time.Duration{fakeGrace, stoppingShown}},
		{name: "running/a stop signal rewritten to 0 starts no grace", phase: "running", acts: acts(intr, exits(3)), fwd: Forwarding{Rewrite: rewrites("INT:0")}, want: 3,
			events: run(nil, 3, "none")},
		{name: "running/grace then SIGKILL to the group", phase: "running", acts: acts(term, fire(fakeGrace)), want: 137,
			events: run([]string{"kill 100 SIGTERM", "kill 100 SIGCONT", "kill -100 SIGKILL"}, 137, "set"), timers: []time.Duration{fakeGrace, stoppingShown}},
		{name: "running/stop delay holds the first TERM", phase: "running", acts: acts(term, fire(fakeStopDelay)), exitOn: exitOnStop, fwd: Forwarding{StopDelay: fakeStopDelay}, want: 143,
			events: run([]string{"kill 100 SIGTERM", "kill 100 SIGCONT"}, 143, "set"), timers: []time.Duration{fakeGrace, fakeStopDelay, stoppingShown}},
		{name: "running/stop delay, a second TERM goes at once", phase: "running", acts: acts(term, term), exitOn: exitOnStop, fwd: Forwarding{StopDelay: fakeStopDelay}, want: 143,
			events: run([]string{"kill 100 SIGTERM", "kill 100 SIGCONT"}, 143, "set"), timers: []time.Duration{fakeGrace, fakeStopDelay, stoppingShown}},
		{name: "running/stop delay, INT not held", phase: "running", acts: acts(intr), exitOn: exitOnStop, fwd: Forwarding{StopDelay: fakeStopDelay}, want: 130,
			events: run([]string{"kill 100 SIGINT", "kill 100 SIGCONT"}, 130, "set"), timers: []time.Duration{fakeGrace, stoppingShown}},
		{name: "running/child exits by itself", phase: "running", acts: acts(exits(3)), want: 3, events: run(nil, 3, "none")},
		// stopping, child still running: forwarded; the grace is not restarted.
		{name: "stopping/forwarded, grace not restarted", phase: "running", acts: acts(term, fire(stoppingShown), intr, usr1, fire(fakeGrace)), want: 137,
			events: run([]string{"kill 100 SIGTERM", "kill 100 SIGCONT", "state stopping", "kill 100 SIGINT", "kill 100 SIGCONT", "kill 100 SIGUSR1", "kill -100 SIGKILL"}, 137, "set"),
			timers: []time.Duration{fakeGrace, stoppingShown}},
		// stopping, child exited: ignored, the clean-up runs to its end.
		{name: "clean-up/ignored", phase: "clean-up", exit: exitStatus(0), acts: acts(term, intr, usr1), want: 0, events: run(nil, 0, "none")},
		{name: "clean-up/ignored after a stop", phase: "clean-up", exit: killedBy(unix.SIGTERM), acts: acts(term, hup), want: 143, events: run(nil, 143, "none")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.phase)
			h.child.exitOn = tc.exitOn
			h.life.Forward.Grace = fakeGrace
			if tc.fwd.KillGroup || tc.fwd.Rewrite != nil || tc.fwd.StopDelay > 0 {
				tc.fwd.Grace = fakeGrace
				h.life.Forward = tc.fwd
			}
			code := h.run(func() {
				if tc.phase == "clean-up" {
					h.child.exit(tc.exit)
				}
				h.waitPhase()
				for _, a := range tc.acts {
					h.do(a)
				}
				h.proceed()
				if tc.phase != "running" && tc.phase != "clean-up" {
					h.child.exit(exitStatus(0)) // should the start-up go on
				}
			})
			if code != tc.want {
				t.Errorf("exit code %d, want %d", code, tc.want)
			}
			if got := h.events(); !slices.Equal(got, tc.events) {
				t.Errorf("steps did\n  %q\nwant\n  %q", got, tc.events)
			}
			if got := h.clock.made(); !slices.Equal(got, tc.timers) {
				t.Errorf("timers %v, want %v", got, tc.timers)
			}
		})
	}
}

// Each step that fails ends the start-up with its exit code, and what the steps before it
// took is given back, the seat before the lock: nothing is left half-done.
func TestFailedStepUndoesWhatWasTaken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fail   string // the step that fails
		err    error
		held   bool // the seat is still held after the deactivation
		exit   unix.WaitStatus
		remap  string
		want   int
		events []string
	}{
		{name: "dependencies timed out", fail: "wait", err: fmt.Errorf("%w (1m0s): still failing: tcp://db:5432: refused", check.ErrTimeout), want: 124,
			events: []string{"wait", "state exited 124"}},
		{name: "dependencies failed otherwise", fail: "wait", err: errors.New("boom"), want: 125,
			events: []string{"wait", "state exited 125"}},
		{name: "lock timed out", fail: "lock", err: lock.ErrTimeout, want: 73,
			events: []string{"wait", "lock", "state exited 73"}},
		{name: "lock path unusable", fail: "lock", err: fmt.Errorf("lock /x: %w", lock.ErrBadPath), want: 2,
			events: []string{"wait", "lock", "state exited 2"}},
		{name: "lock failed otherwise", fail: "lock", err: errors.New("boom"), want: 125,
			events: []string{"wait", "lock", "state exited 125"}},
		{name: "render", fail: "render", err: errors.New("no space left on device"), want: 2,
			events: []string{"wait", "lock", "render", "unlock", "state exited 2"}},
		{name: "license no seats", fail: "license", err: fmt.Errorf("activate: %w", license.ErrNoSeats), want: 69,
			events: []string{"wait", "lock", "render", "activate", "deactivate none", "unlock", "state exited 69"}},
		{name: "license unreachable", fail: "license", err: fmt.Errorf("activate: %w", license.ErrRetryable), want: 75,
			events: []string{"wait", "lock", "render", "activate", "deactivate none", "unlock", "state exited 75"}},
		{name: "license refused", fail: "license", err: fmt.Errorf("activate: %w", license.ErrPermanent), want: 78,
			events: []string{"wait", "lock", "render", "activate", "deactivate none", "unlock", "state exited 78"}},
		{name: "license file not written, seat kept", fail: "license", err: errors.New("write the license: read-only file system"), held: true, want: 75,
			events: []string{"wait", "lock", "render", "activate", "deactivate none", "unlock", "state exited 75 seat held"}},
		{name: "program not found", fail: "start", err: &startError{program: "x", code: 127, err: errors.New("not found")}, want: 127,
			events: []string{"wait", "lock", "render", "activate", "start fd=7", "deactivate none", "unlock", "state exited 127"}},
		{name: "program not executable", fail: "start", err: &startError{program: "x", code: 126, err: errors.New("permission denied")}, want: 126,
			events: []string{"wait", "lock", "render", "activate", "start fd=7", "deactivate none", "unlock", "state exited 126"}},
		{name: "fork failed", fail: "start", err: unix.EAGAIN, want: 125,
			events: []string{"wait", "lock", "render", "activate", "start fd=7", "deactivate none", "unlock", "state exited 125"}},
		{name: "child crashed", exit: killedBy(unix.SIGSEGV), want: 139,
			events: []string{"wait", "lock", "render", "activate", "start fd=7", "lock names group 100", "state running 100", "clean-up none", "deactivate none", "unlock", "state exited 139"}},
		{name: "child failed, deactivation failed", exit: exitStatus(1), held: true, want: 1,
			events: []string{"wait", "lock", "render", "activate", "start fd=7", "lock names group 100", "state running 100", "clean-up none", "deactivate none", "unlock", "state exited 1 seat held"}},
		{name: "exit code remapped", exit: exitStatus(143), remap: "143:0", want: 0,
			events: []string{"wait", "lock", "render", "activate", "start fd=7", "lock names group 100", "state running 100", "clean-up none", "deactivate none", "unlock", "state exited 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "")
			h.fail[tc.fail] = tc.err
			h.license.held = tc.held
			if tc.remap != "" {
				h.life.RemapExit.Set(tc.remap)
			}
			code := h.run(func() {
				if tc.fail == "" {
					h.child.exit(tc.exit)
				}
			})
			if code != tc.want {
				t.Errorf("exit code %d, want %d", code, tc.want)
			}
			if got := h.events(); !slices.Equal(got, tc.events) {
				t.Errorf("steps did\n  %q\nwant\n  %q", got, tc.events)
			}
		})
	}
}

// The child is started only once every signal is subscribed to, so that none meant for it
// is lost; a stop signal while it waits ends the start-up.
func TestChildStartsOnceEverySignalIsSubscribed(t *testing.T) {
	t.Run("waits", func(t *testing.T) {
		h := newHarness(t, "")
		subscribed := make(chan struct{})
		h.sigs.subscribed = subscribed
		code := h.run(func() {
			h.sync()
			select {
			case <-h.child.started:
				t.Error("the child started before every signal was subscribed to")
			case <-time.After(20 * time.Millisecond):
			}
			close(subscribed)
			<-h.child.started
			h.signal(unix.SIGUSR2) // the first signal after the start reaches the child
			h.child.exit(exitStatus(0))
		})
		if code != 0 || !slices.Contains(h.events(), "kill 100 SIGUSR2") {
			t.Errorf("exit code %d, steps did %q", code, h.events())
		}
	})
	t.Run("stopped", func(t *testing.T) {
		h := newHarness(t, "license")
		h.sigs.subscribed = make(chan struct{})
		code := h.run(func() {
			h.waitPhase()
			h.proceed()
			h.signal(unix.SIGTERM)
		})
		want := []string{"wait", "lock", "render", "activate", "deactivate none", "unlock", "state exited 143"}
		if code != 143 || !slices.Equal(h.events(), want) {
			t.Errorf("exit code %d, steps did %q; want 143, %q", code, h.events(), want)
		}
	})
}

// A SIGCHLD runs a reap pass in every phase: before the child (a license command's exit),
// while it runs, and after.
func TestEverySIGCHLDReaps(t *testing.T) {
	h := newHarness(t, "license")
	code := h.run(func() {
		h.waitPhase()
		h.sync()
		h.proceed()
		<-h.child.started
		h.sync()
		h.child.exit(exitStatus(0))
	})
	if code != 0 {
		t.Errorf("exit code %d", code)
	}
	// One pass at the start, for exits before SIGCHLD was subscribed to, and one for each.
	if n := h.reaps.Load(); n < 3 {
		t.Errorf("%d reap passes, want at least 3", n)
	}
}

// act is one thing a test does while the life cycle is in a phase: send a signal, fire a
// timer the signal goroutine set, or have the child exit.
type act struct {
	sig  unix.Signal
	fire time.Duration
	exit *unix.WaitStatus
}

func sig(s unix.Signal) act                  { return act{sig: s} }
func fire(d time.Duration) act               { return act{fire: d} }
func exits(code int) act                     { ws := exitStatus(code); return act{exit: &ws} }
func acts(a ...act) []act                    { return a }
func exitStatus(code int) unix.WaitStatus    { return unix.WaitStatus(code << 8) }
func killedBy(s unix.Signal) unix.WaitStatus { return unix.WaitStatus(s) }

func rewrites(s string) signals.Rewrites {
	var r signals.Rewrites
	if err := r.Set(s); err != nil {
		panic(err)
	}
	return r
}

// harness runs a Life over fake steps. The step of phase (lock, render, license, clean-up)
// stops in it until proceed; the lock's and the license's also until their context ends.
type harness struct {
	t       *testing.T
	phase   string
	life    *Life
	sigs    *Signals
	signals chan os.Signal
	sigchld chan os.Signal
	clock   *fakeClock
	child   *fakeChild
	license *fakeLicense
	fail    map[string]error
	at      chan struct{} // a step reached phase
	running chan struct{} // the child's start is recorded
	goOn    chan struct{} // closed by proceed
	reaps   countReaps

	mu  sync.Mutex
	log []string
}

type countReaps struct {
	mu sync.Mutex
	n  int
}

func (c *countReaps) add()      { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *countReaps) Load() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

func newHarness(t *testing.T, phase string) *harness {
	h := &harness{
		t: t, phase: phase, fail: map[string]error{},
		signals: make(chan os.Signal), sigchld: make(chan os.Signal),
		clock: &fakeClock{timers: map[time.Duration]chan time.Time{}},
		at:    make(chan struct{}, 1), goOn: make(chan struct{}), running: make(chan struct{}),
	}
	h.child = &fakeChild{h: h, exited: make(chan unix.WaitStatus, 1), started: make(chan struct{})}
	h.license = &fakeLicense{h: h}
	h.sigs = OwnSignals(SignalSources{
		Signals: h.signals, SIGCHLD: h.sigchld, Reap: h.reaps.add, Log: zerolog.Nop(), After: h.clock.after,
	})
	h.life = &Life{
		Dependencies: fakeDependencies{h}, Readiness: fakeReadiness{h},
		Lock: fakeLock{h}, Templates: fakeTemplates{h}, License: h.license, Child: h.child,
		CleanUp: fakeCleanUp{h}, Record: fakeRecorder{h}, Signals: h.sigs,
		RemapExit: config.ExitCodes{}, Log: zerolog.Nop(),
	}
	return h
}

// run runs the life cycle while drive does what the test does, and returns the exit code.
func (h *harness) run(drive func()) int {
	h.t.Helper()
	defer h.sigs.Close()
	result := make(chan int, 1)
	go func() { result <- h.life.Run() }()
	driven := make(chan struct{})
	go func() {
		defer close(driven)
		drive()
	}()
	select {
	case code := <-result:
		select {
		case <-driven:
		case <-time.After(10 * time.Second):
			h.t.Fatal("the test's actions never finished")
		}
		return code
	case <-time.After(10 * time.Second):
		h.t.Fatalf("the life cycle never ended; steps did %q", h.events())
		return 0
	}
}

func (h *harness) record(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = append(h.log, fmt.Sprintf(format, args...))
}

func (h *harness) events() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.log)
}

// inPhase stops a step in the test's phase until proceed, or until ctx ends.
func (h *harness) inPhase(name string, ctx context.Context) error {
	if name != h.phase {
		return nil
	}
	h.at <- struct{}{}
	select {
	case <-h.goOn:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitPhase returns once the life cycle is in the test's phase: running once the child's
// start is recorded.
func (h *harness) waitPhase() {
	at := h.at
	if h.phase == "running" {
		at = h.running
	}
	select {
	case <-at:
	case <-time.After(10 * time.Second):
		h.t.Errorf("phase %s never reached", h.phase)
	}
}

func (h *harness) proceed() { close(h.goOn) }

func (h *harness) do(a act) {
	switch {
	case a.sig != 0:
		h.signal(a.sig)
	case a.fire != 0:
		h.clock.fire(h.t, a.fire)
		h.sync()
	case a.exit != nil:
		h.child.exit(*a.exit)
	}
}

// signal sends sig as the kernel would, and returns once the goroutine has acted on it.
func (h *harness) signal(sig unix.Signal) {
	h.signals <- sig
	h.sync()
}

// sync returns once the signal goroutine has done what it was handed before: it takes one
// thing at a time, and this SIGCHLD only after them.
func (h *harness) sync() { h.sigchld <- unix.SIGCHLD }

// step is a fake step that can wait: it records what it was asked, fails when the test
// says (fail[phase]), else stops in the test's phase until proceed or until ctx ends.
func (h *harness) step(event, phase string, ctx context.Context) error {
	h.record("%s", event)
	if err := h.fail[phase]; err != nil {
		return err
	}
	return h.inPhase(phase, ctx)
}

type fakeDependencies struct{ h *harness }

func (d fakeDependencies) Wait(ctx context.Context) error { return d.h.step("wait", "wait", ctx) }

// fakeReadiness watches until its context ends, and says nothing: its goroutine's
// records would race the signal goroutine's (TestReadinessRunsWhileTheChildRuns looks at it).
type fakeReadiness struct{ h *harness }

func (r fakeReadiness) Watch(ctx context.Context) { <-ctx.Done() }

type fakeLock struct{ h *harness }

func (l fakeLock) Take(ctx context.Context) error { return l.h.step("lock", "lock", ctx) }
func (l fakeLock) FD() int                        { return fakeLockFD }
func (l fakeLock) ChildStarted(pid int)           { l.h.record("lock names group %d", pid) }
func (l fakeLock) Release()                       { l.h.record("unlock") }

type fakeTemplates struct{ h *harness }

func (r fakeTemplates) Write() error {
	return r.h.step("render", "render", context.Background()) // waits on nothing but the test
}

type fakeLicense struct {
	h    *harness
	held bool
}

func (l *fakeLicense) Activate(ctx context.Context) error {
	return l.h.step("activate", "license", ctx)
}
func (l *fakeLicense) Deactivate(deadline time.Time) {
	l.h.record("deactivate %s", deadlineOf(deadline))
}
func (l *fakeLicense) Held() bool { return l.held }

func deadlineOf(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return "set"
}

// fakeChild exits when a signal in exitOn reaches it, or SIGKILL, or when the test says.
type fakeChild struct {
	h       *harness
	exitOn  map[unix.Signal]unix.WaitStatus
	exited  chan unix.WaitStatus
	started chan struct{}
	once    sync.Once
}

func (c *fakeChild) Start(lockFD int) (int, <-chan unix.WaitStatus, error) {
	c.h.record("start fd=%d", lockFD)
	if err := c.h.fail["start"]; err != nil {
		return 0, nil, err
	}
	close(c.started)
	return fakePID, c.exited, nil
}

func (c *fakeChild) Signal(target int, sig unix.Signal) error {
	c.h.record("kill %d %s", target, signals.Name(sig))
	if ws, ok := c.exitOn[sig]; ok {
		c.exit(ws)
	} else if sig == unix.SIGKILL {
		c.exit(killedBy(unix.SIGKILL))
	}
	return nil
}

func (c *fakeChild) exit(ws unix.WaitStatus) { c.once.Do(func() { c.exited <- ws }) }
func (c *fakeChild) Release()                {}

type fakeCleanUp struct{ h *harness }

func (c fakeCleanUp) Run(deadline time.Time) {
	c.h.record("clean-up %s", deadlineOf(deadline))
	c.h.inPhase("clean-up", context.Background())
}

type fakeRecorder struct{ h *harness }

func (r fakeRecorder) Enter(phase string) { r.h.record("state %s", phase) }
func (r fakeRecorder) ChildStarted(pid int, _ time.Time) {
	r.h.record("state running %d", pid)
	close(r.h.running)
}
func (r fakeRecorder) Exited(code int, seatHeld bool) {
	if seatHeld {
		r.h.record("state exited %d seat held", code)
		return
	}
	r.h.record("state exited %d", code)
}

// fakeClock hands out timers that fire only when the test says.
type fakeClock struct {
	mu     sync.Mutex
	order  []time.Duration
	timers map[time.Duration]chan time.Time
}

func (c *fakeClock) after(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.order = append(c.order, d)
	c.timers[d] = ch
	return ch
}

func (c *fakeClock) fire(t *testing.T, d time.Duration) {
	c.mu.Lock()
	ch, ok := c.timers[d]
	c.mu.Unlock()
	if !ok {
		t.Errorf("no timer of %s was set", d)
		return
	}
	ch <- time.Now()
}

func (c *fakeClock) made() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.order)
}

// watchedReadiness tells when its watch starts and ends.
type watchedReadiness struct {
	started, ended chan struct{}
}

func (r watchedReadiness) Watch(ctx context.Context) {
	close(r.started)
	<-ctx.Done()
	close(r.ended)
}

// The readiness checks run only while the child runs: they start once its start is
// recorded, end when the stop begins (the phase stopping) with the child still running,
// and have ended before the clean-up whatever ended the child.
func TestReadinessRunsWhileTheChildRuns(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ended func(h *harness, r watchedReadiness) // ends the child, and the watch with it
		want  int
		clean string
	}{
		{"child exits", func(h *harness, r watchedReadiness) { h.child.exit(exitStatus(0)) }, 0, "clean-up none"},
		{"stop", func(h *harness, r watchedReadiness) {
			h.do(sig(unix.SIGTERM))
			h.do(fire(stoppingShown))
			waitClosed(h.t, r.ended, "the watch to end when the stop began")
			h.do(fire(fakeGrace))
		}, 137, "clean-up set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "running")
			h.life.Forward.Grace = fakeGrace
			r := watchedReadiness{started: make(chan struct{}), ended: make(chan struct{})}
			h.life.Readiness = r
			h.life.CleanUp = endedBefore{h, r.ended}
			code := h.run(func() {
				h.waitPhase()
				waitClosed(t, r.started, "the watch to start")
				tc.ended(h, r)
			})
			if code != tc.want || !slices.Contains(h.events(), tc.clean) {
				t.Errorf("exit code %d, steps did %q; want %d and %q", code, h.events(), tc.want, tc.clean)
			}
		})
	}
}

func waitClosed(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Errorf("waited too long for %s", what)
	}
}

// endedBefore is a clean-up that records whether the readiness watch had ended.
type endedBefore struct {
	h     *harness
	ended chan struct{}
}

func (c endedBefore) Run(deadline time.Time) {
	select {
	case <-c.ended:
		c.h.record("clean-up %s", deadlineOf(deadline))
	default:
		c.h.record("clean-up while the readiness checks still ran")
	}
}
