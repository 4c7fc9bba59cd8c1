package lease

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/svinit/svinit/internal/lock"
)

const (
	duration = 30 * time.Second
	deadline = 15 * time.Second
	retry    = 2 * time.Second
)

// fakeAPI is one Lease as the API server keeps it: a version that every write bumps, and a
// write over another version refused. before, when set, runs first in every call and may
// change the Lease (another contender) or fail the call.
type fakeAPI struct {
	mu     sync.Mutex
	exists bool
	rec    Record
	rv     int
	calls  []string
	before func(call string, f *fakeAPI) error
}

func (f *fakeAPI) hook(call string) error {
	f.calls = append(f.calls, call)
	if f.before != nil {
		return f.before(call, f)
	}
	return nil
}

// put writes r as another contender would, bumping the version.
func (f *fakeAPI) put(r Record) {
	f.rv++
	r.ResourceVersion = strconv.Itoa(f.rv)
	f.rec, f.exists = r, true
}

func (f *fakeAPI) Get(ctx context.Context) (Record, error) {
	return f.call("get", func() error {
		if !f.exists {
			return ErrNotFound
		}
		return nil
	})
}

func (f *fakeAPI) Create(ctx context.Context, r Record) (Record, error) {
	return f.call("create", func() error {
		if f.exists {
			return ErrConflict
		}
		f.put(r)
		return nil
	})
}

func (f *fakeAPI) Update(ctx context.Context, r Record) (Record, error) {
	return f.call("update", func() error {
		switch {
		case !f.exists:
			return ErrNotFound
		case r.ResourceVersion != f.rec.ResourceVersion:
			return ErrConflict
		}
		f.put(r)
		return nil
	})
}

// call runs one call, do, after the hook, and answers with the Lease as it is then.
func (f *fakeAPI) call(name string, do func() error) (Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.hook(name); err != nil {
		return Record{}, err
	}
	if err := do(); err != nil {
		return Record{}, err
	}
	return f.rec, nil
}

func (f *fakeAPI) current() Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rec
}

// fakeClock moves only when the test says: After tells the test how long the code wants to
// wait (sleeps), and the test moves the clock on.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
	sleeps chan time.Duration
	// pending are waits the test has seen (idle) and not yet let pass (tick).
	pending []time.Duration
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), sleeps: make(chan time.Duration, 1000)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), ch: ch})
	c.mu.Unlock()
	c.sleeps <- d
	return ch
}

// advance moves the clock by d and fires the timers due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.ch <- c.now
	}
	c.timers = kept
}

func newLease(api API, c *fakeClock, id string) *Lease {
	return New(api, Options{Name: "web", Identity: id, Duration: duration, RenewDeadline: deadline, RetryPeriod: retry,
		Timeout: time.Hour, OnTimeout: lock.Takeover, Log: zerolog.Nop(), Clock: c})
}

// acquire runs Acquire, moving the clock on each time it waits, after each() (which plays
// the other contenders); it returns Acquire's error and how long the clock moved.
func acquire(t *testing.T, l *Lease, c *fakeClock, each func()) (error, time.Duration) {
	t.Helper()
	began := c.Now()
	result := make(chan error, 1)
	go func() { result <- l.Acquire(context.Background()) }()
	for {
		select {
		case err := <-result:
			return err, c.Now().Sub(began)
		case d := <-c.sleeps:
			if each != nil {
				each()
			}
			c.advance(d)
		case <-time.After(10 * time.Second):
			t.Fatal("Acquire neither returned nor waited")
		}
	}
}

func TestAbsentLeaseIsCreatedAtOnce(t *testing.T) {
	api, c := &fakeAPI{}, newClock()
	l := newLease(api, c, "web-0_0a1b2c3d")
	err, waited := acquire(t, l, c, nil)
	got := api.current()
	if err != nil || waited != 0 || got.HolderIdentity != "web-0_0a1b2c3d" || got.LeaseDurationSeconds != 30 || got.LeaseTransitions != 0 || got.RenewTime.IsZero() {
		t.Errorf("Acquire = %v after %s; Lease %+v", err, waited, got)
	}
}

func TestClearedLeaseIsTakenAtOnce(t *testing.T) {
	api, c := &fakeAPI{}, newClock()
	api.put(Record{LeaseDurationSeconds: 1, LeaseTransitions: 4})
	err, waited := acquire(t, newLease(api, c, "me"), c, nil)
	if got := api.current(); err != nil || waited != 0 || got.HolderIdentity != "me" || got.LeaseTransitions != 5 {
		t.Errorf("Acquire = %v after %s; Lease %+v, want it taken at once, transitions 5", err, waited, got)
	}
}

// A holder that stops renewing loses the Lease after its duration counted from when this
// run first saw the record as it is, on the local clock: its renewTime, from another node's
// clock, counts for nothing, however old or new it claims to be.
func TestDeadHoldersLeaseIsTakenAfterItsDurationOnTheLocalClock(t *testing.T) {
	for _, renewed := range []time.Duration{-time.Hour, time.Hour} {
		api, c := &fakeAPI{}, newClock()
		api.put(Record{HolderIdentity: "web-1_deadbeef", LeaseDurationSeconds: 20, RenewTime: c.Now().Add(renewed)})
		err, waited := acquire(t, newLease(api, c, "me"), c, nil)
		if got := api.current(); err != nil || got.HolderIdentity != "me" || got.LeaseTransitions != 1 {
			t.Fatalf("Acquire = %v; Lease %+v", err, got)
		}
		if waited < 20*time.Second || waited >= 20*time.Second+retry {
			t.Errorf("renewTime %s from now: taken after %s, want the Lease's own 20s (plus less than a retry period)", renewed, waited)
		}
	}
}

// The Lease's duration counts from when this run saw the record, not from when it asked for
// it: a read answered late may show a renewal sent after the read was, and the holder that
// sent it may run its program until that renewal's sending plus the duration.
func TestSlowReadDoesNotShortenTheWait(t *testing.T) {
	api, c := &fakeAPI{}, newClock()
	api.put(Record{HolderIdentity: "other", LeaseDurationSeconds: 20})
	asked := c.Now()
	slow := true
	api.before = func(call string, f *fakeAPI) error {
		if call == "get" && slow {
			slow = false
			c.advance(5 * time.Second)
			f.put(f.rec) // the holder's last renewal, sent while the read is on its way
			c.advance(5 * time.Second)
		}
		return nil
	}
	err, _ := acquire(t, newLease(api, c, "me"), c, nil)
	if err != nil || api.current().HolderIdentity != "me" {
		t.Fatalf("Acquire = %v; Lease %+v", err, api.current())
	}
	if renewed, taken := asked.Add(5*time.Second), c.Now(); taken.Sub(renewed) < 20*time.Second {
		t.Errorf("taken %s after the holder's last renewal was sent, want its 20s at least", taken.Sub(renewed))
	}
}

// A Lease deleted while someone held it (kubectl delete) is not created anew at once by a
// waiter that saw it held: its holder may still run the program, and recreates it at its next
// renewal; the waiter creates it once the holder's duration has passed since it saw it.
func TestDeletedLeaseIsNotTakenWhileItsHolderMayRun(t *testing.T) {
	api, c := &fakeAPI{}, newClock()
	api.put(Record{HolderIdentity: "other", LeaseDurationSeconds: 20})
	seen := c.Now()
	deleted := false
	err, _ := acquire(t, newLease(api, c, "me"), c, func() {
		if !deleted {
			deleted = true
			api.mu.Lock()
			api.exists = false
			api.mu.Unlock()
		}
	})
	if err != nil || api.current().HolderIdentity != "me" {
		t.Fatalf("Acquire = %v; Lease %+v", err, api.current())
	}
	if waited := c.Now().Sub(seen); waited < 20*time.Second {
		t.Errorf("created %s after the holder was seen, want its 20s at least", waited)
	}
}

// A holder that renews is never broken: with takeover the wait goes on past the timeout,
// with fail it ends in lock.ErrTimeout; the Lease is untouched either way.
func TestLiveHolderIsNeverBroken(t *testing.T) {
	renewing := func(api *fakeAPI) func() {
		return func() {
			api.mu.Lock()
			r := api.rec
			r.RenewTime = r.RenewTime.Add(retry)
			api.put(r)
			api.mu.Unlock()
		}
	}
	t.Run("fail", func(t *testing.T) {
		api, c := &fakeAPI{}, newClock()
		api.put(Record{HolderIdentity: "other", LeaseDurationSeconds: 10})
		l := newLease(api, c, "me")
		l.opts.Timeout, l.opts.OnTimeout = 60*time.Second, lock.Fail
		err, waited := acquire(t, l, c, renewing(api))
		if !errors.Is(err, lock.ErrTimeout) || waited < 60*time.Second || waited > 62*time.Second || api.current().HolderIdentity != "other" {
			t.Errorf("Acquire = %v after %s, holder %q; want lock.ErrTimeout after 60s, the holder kept", err, waited, api.current().HolderIdentity)
		}
	})
	t.Run("takeover", func(t *testing.T) {
		api, c := &fakeAPI{}, newClock()
		api.put(Record{HolderIdentity: "other", LeaseDurationSeconds: 10})
		l := newLease(api, c, "me")
		l.opts.Timeout = 5 * time.Second
		rounds := 0
		alive := renewing(api)
		err, waited := acquire(t, l, c, func() {
			if rounds++; rounds <= 100 { // 200 s of renewals, then the holder dies
				alive()
			}
		})
		if err != nil || waited < 200*time.Second+10*time.Second || api.current().HolderIdentity != "me" {
			t.Errorf("Acquire = %v after %s; want the Lease only once the holder stopped renewing, 10s after", err, waited)
		}
	})
	t.Run("fail with no wait", func(t *testing.T) {
		api, c := &fakeAPI{}, newClock()
		api.put(Record{HolderIdentity: "other", LeaseDurationSeconds: 10})
		l := newLease(api, c, "me")
		l.opts.Timeout, l.opts.OnTimeout = 0, lock.Fail
		if err, _ := acquire(t, l, c, nil); !errors.Is(err, lock.ErrTimeout) {
			t.Errorf("Acquire = %v, want lock.ErrTimeout at once", err)
		}
	})
}

// Of two contenders exactly one wins: the update carries the version read, and a 409 means
// someone else got there first; the loser waits on.
func TestConflictMeansSomeoneElseWon(t *testing.T) {
	for _, absent := range []bool{false, true} {
		api, c := &fakeAPI{}, newClock()
		if !absent {
			api.put(Record{LeaseDurationSeconds: 1})
		}
		raced := false
		api.before = func(call string, f *fakeAPI) error {
			if !raced && (call == "update" || call == "create") {
				raced = true
				f.put(Record{HolderIdentity: "rival", LeaseDurationSeconds: 30})
			}
			return nil
		}
		l := newLease(api, c, "me")
		l.opts.Timeout, l.opts.OnTimeout = 10*time.Second, lock.Fail
		err, _ := acquire(t, l, c, func() {
			api.mu.Lock()
			api.put(api.rec) // the rival renews
			api.mu.Unlock()
		})
		if !errors.Is(err, lock.ErrTimeout) || api.current().HolderIdentity != "rival" {
			t.Errorf("absent %v: Acquire = %v, holder %q; want the rival kept and a timeout", absent, err, api.current().HolderIdentity)
		}
	}
}

// An update that took effect but whose answer was lost leaves this run the holder: the next
// look finds its own identity and keeps the Lease.
func TestOwnIdentityFoundIsHeld(t *testing.T) {
	api, c := &fakeAPI{}, newClock()
	api.put(Record{LeaseDurationSeconds: 1})
	lost := false
	api.before = func(call string, f *fakeAPI) error {
		if call == "update" && !lost {
			lost = true
			f.put(Record{HolderIdentity: "me", LeaseDurationSeconds: 30, LeaseTransitions: 1})
			return errors.New("context deadline exceeded")
		}
		return nil
	}
	err, waited := acquire(t, newLease(api, c, "me"), c, nil)
	if got := api.current(); err != nil || waited != retry || got.HolderIdentity != "me" || got.LeaseTransitions != 1 {
		t.Errorf("Acquire = %v after %s; Lease %+v", err, waited, got)
	}
}

// A stop that comes while the Lease is being written leaves no Lease naming this run: the
// write may have taken effect though the stop cut its answer off, and a successor would wait
// the whole duration for a holder that never ran its program.
func TestStopDuringTheTakeLeavesNoHolder(t *testing.T) {
	for _, absent := range []bool{false, true} {
		api, c := &fakeAPI{}, newClock()
		if !absent {
			api.put(Record{LeaseDurationSeconds: 1})
		}
		ctx, stop := context.WithCancel(context.Background())
		api.before = func(call string, f *fakeAPI) error {
			if call == "update" || call == "create" {
				if ctx.Err() == nil {
					f.put(Record{HolderIdentity: "me", LeaseDurationSeconds: 30})
					stop() // SIGTERM, while svinit-net's answer is on its way
					return ctx.Err()
				}
			}
			return nil
		}
		l := newLease(api, c, "me")
		if err := l.Acquire(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("absent %v: Acquire = %v, want it cancelled", absent, err)
		}
		if got := api.current(); got.HolderIdentity != "" {
			t.Errorf("absent %v: after the stop %+v, want no holder", absent, got)
		}
	}
}

type forbidden struct{}

func (forbidden) Error() string   { return "403 Forbidden: add update on leases" }
func (forbidden) Permanent() bool { return true }

func TestPermanentRefusalEndsTheWait(t *testing.T) {
	api, c := &fakeAPI{}, newClock()
	api.before = func(string, *fakeAPI) error { return forbidden{} }
	if err, waited := acquire(t, newLease(api, c, "me"), c, nil); !errors.As(err, new(forbidden)) || !errors.Is(err, ErrRefused) || waited != 0 {
		t.Errorf("Acquire = %v after %s, want the 403 at once", err, waited)
	}
}

// holding takes the Lease and starts renewing; lost counts the calls of the loss callback.
func holding(t *testing.T, api *fakeAPI, c *fakeClock) (*Lease, *lostCalls) {
	t.Helper()
	l := newLease(api, c, "me")
	if err, _ := acquire(t, l, c, nil); err != nil {
		t.Fatal(err)
	}
	lost := &lostCalls{ch: make(chan struct{}, 10)}
	l.Hold(lost.call)
	return l, lost
}

type lostCalls struct {
	ch      chan struct{}
	expired atomic.Bool // the last call said the Lease may have expired for others
}

// lostYet reports a loss, waiting a little for the renewal the last tick set off.
func lostYet(l *lostCalls) bool {
	select {
	case <-l.ch:
		return true
	case <-time.After(20 * time.Millisecond):
		return false
	}
}

func (l *lostCalls) call(expired bool) {
	l.expired.Store(expired)
	l.ch <- struct{}{}
}
func (l *lostCalls) n() int { return len(l.ch) }
func (l *lostCalls) wait() bool {
	select {
	case <-l.ch:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

// tick lets the renewing goroutine wait once and moves the clock by what it asked for.
func tick(t *testing.T, c *fakeClock) time.Duration {
	t.Helper()
	d := waiting(t, c)
	c.advance(d)
	return d
}

// idle returns once the renewing goroutine waits again: what the last tick set off is done.
func idle(t *testing.T, c *fakeClock) {
	t.Helper()
	c.pending = append(c.pending, waiting(t, c))
}

func waiting(t *testing.T, c *fakeClock) time.Duration {
	t.Helper()
	if len(c.pending) > 0 {
		d := c.pending[0]
		c.pending = c.pending[1:]
		return d
	}
	select {
	case d := <-c.sleeps:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("the renewals stopped waiting")
		return 0
	}
}

func TestHolderRenewsEveryRetryPeriod(t *testing.T) {
	api, c := &fakeAPI{}, newClock()
	l, lost := holding(t, api, c)
	first := api.current()
	for range 5 {
		if d := tick(t, c); d != retry {
			t.Fatalf("renewal after %s, want every %s", d, retry)
		}
	}
	idle(t, c)
	got := api.current()
	if got.HolderIdentity != "me" || !got.RenewTime.After(first.RenewTime) || !got.AcquireTime.Equal(first.AcquireTime) || got.LeaseTransitions != first.LeaseTransitions {
		t.Errorf("after renewals %+v, first %+v", got, first)
	}
	releaseKept(t, l, lost)
}

// releaseKept releases l, which must not have been lost.
func releaseKept(t *testing.T, l *Lease, lost *lostCalls) {
	t.Helper()
	l.Release(context.Background())
	if lost.n() != 0 || l.Lost() {
		t.Error("lost while the API answered")
	}
}

// Renewals failing for less than the renew deadline are tried again; for the deadline, the
// Lease is lost at the deadline exactly, counted from the last renewal that succeeded.
func TestRenewalFailingForTheDeadlineLosesTheLease(t *testing.T) {
	api, c := &fakeAPI{}, newClock()
	_, lost := holding(t, api, c)
	tick(t, c) // one renewal that succeeds
	idle(t, c)
	lastOK := c.Now()
	api.mu.Lock()
	api.before = func(string, *fakeAPI) error { return errors.New("503 Service Unavailable") }
	api.mu.Unlock()
	tick(t, c) // the wait idle saw
	for {
		select {
		case <-lost.ch:
			if since := c.Now().Sub(lastOK); since != deadline {
				t.Errorf("lost %s after the last renewal, want at the deadline %s", since, deadline)
			}
			if lost.expired.Load() {
				t.Error("lost at the renew deadline as if the Lease may be another's: the program loses its grace")
			}
			return
		case d := <-c.sleeps:
			if c.Now().Sub(lastOK) >= deadline {
				t.Fatalf("still renewing %s after the last renewal, past the %s deadline", c.Now().Sub(lastOK), deadline)
			}
			c.advance(d)
		case <-time.After(10 * time.Second):
			t.Fatal("neither lost nor renewing")
		}
	}
}

func TestRenewalRecoversWithinTheDeadline(t *testing.T) {
	api, c := &fakeAPI{}, newClock()
	l, lost := holding(t, api, c)
	fails := 5 // 10 s of a 15 s deadline
	api.mu.Lock()
	api.before = func(call string, _ *fakeAPI) error {
		if call == "update" && fails > 0 {
			fails--
			return errors.New("connection refused")
		}
		return nil
	}
	api.mu.Unlock()
	for range 20 {
		tick(t, c)
	}
	idle(t, c)
	l.Release(context.Background())
	if lost.n() != 0 || api.current().HolderIdentity != "" {
		t.Errorf("lost %d times; Lease %+v", lost.n(), api.current())
	}
}

// Someone else holding the Lease ends the hold at once: waiting for the deadline could not
// win it back, and two programs must not run.
func TestAnotherHolderLosesTheLeaseAtOnce(t *testing.T) {
	api, c := &fakeAPI{}, newClock()
	l, lost := holding(t, api, c)
	api.mu.Lock()
	api.put(Record{HolderIdentity: "thief", LeaseDurationSeconds: 30})
	api.mu.Unlock()
	tick(t, c)
	if !lost.wait() || !l.Lost() {
		t.Fatal("not lost")
	}
	releaseLeaves(t, l, api, "thief")
}

// A holder paused (SIGSTOP, a frozen cgroup) past the Lease's duration, while a successor
// took it, stops its program the moment it wakes: without a call that could renew, and
// whatever the API would answer.
func TestPausedHolderStopsOnWaking(t *testing.T) {
	api, c := &fakeAPI{}, newClock()
	l, lost := holding(t, api, c)
	tick(t, c)
	idle(t, c)
	api.mu.Lock()
	api.put(Record{HolderIdentity: "successor", LeaseDurationSeconds: 30})
	calls := len(api.calls)
	api.mu.Unlock()
	waiting(t, c)
	c.advance(duration + time.Minute) // the pause: every timer is due at once
	if !lost.wait() || !l.Lost() {
		t.Fatal("not lost after the pause")
	}
	if !lost.expired.Load() {
		t.Error("lost after a pause past the duration without saying the Lease may be another's: the program gets the grace while a successor runs")
	}
	api.mu.Lock()
	after := api.calls[calls:]
	api.mu.Unlock()
	if len(after) != 0 {
		t.Errorf("calls after waking %q, want none before the loss", after)
	}
	releaseLeaves(t, l, api, "successor")
}

// releaseLeaves releases l and checks the holder it leaves in the Lease.
func releaseLeaves(t *testing.T, l *Lease, api *fakeAPI, holder string) {
	t.Helper()
	l.Release(context.Background())
	if got := api.current(); got.HolderIdentity != holder {
		t.Errorf("after Release %+v, want holder %q", got, holder)
	}
}

// An edit that leaves this run the holder (a label) makes the renewal read the Lease again
// and go on.
func TestForeignEditKeepsTheLease(t *testing.T) {
	api, c := &fakeAPI{}, newClock()
	l, lost := holding(t, api, c)
	api.mu.Lock()
	api.put(api.rec)
	api.mu.Unlock()
	tick(t, c)
	tick(t, c)
	idle(t, c)
	releaseKept(t, l, lost)
}

// Release clears the holder, as the last step of a clean stop, so that a waiter takes the
// Lease at once; the renewals have stopped first.
func TestReleaseClearsTheHolder(t *testing.T) {
	api, c := &fakeAPI{}, newClock()
	l, _ := holding(t, api, c)
	tick(t, c)
	l.Release(context.Background())
	got := api.current()
	if got.HolderIdentity != "" || got.LeaseDurationSeconds != 1 || got.LeaseTransitions != 0 {
		t.Errorf("after Release %+v, want no holder, duration 1", got)
	}
	select {
	case <-l.done:
	default:
		t.Error("the renewals go on after Release")
	}
	for len(c.sleeps) > 0 {
		<-c.sleeps // the wait the renewals were in when Release stopped them
	}
	// A waiter takes it at once.
	if err, waited := acquire(t, newLease(api, c, "next"), c, nil); err != nil || waited != 0 {
		t.Errorf("successor: %v after %s", err, waited)
	}
}

// After a loss by the deadline (the API was away), Release still tries to clear a Lease
// whose holder is this run.
func TestReleaseAfterOutageClears(t *testing.T) {
	api, c := &fakeAPI{}, newClock()
	l, lost := holding(t, api, c)
	api.mu.Lock()
	api.before = func(string, *fakeAPI) error { return errors.New("503") }
	api.mu.Unlock()
	for !lostYet(lost) {
		tick(t, c)
	}
	api.mu.Lock()
	api.before = nil
	api.mu.Unlock()
	releaseLeaves(t, l, api, "")
}

// Release while a renewal is in flight waits for it, then clears the Lease with the version
// that renewal wrote (go test -race).
func TestReleaseDuringARenewal(t *testing.T) {
	api, c := &fakeAPI{}, newClock()
	l, lost := holding(t, api, c)
	entered, goOn := make(chan struct{}), make(chan struct{})
	blocked := false
	api.mu.Lock()
	api.before = func(call string, _ *fakeAPI) error {
		if call == "update" && !blocked {
			blocked = true
			entered <- struct{}{}
			<-goOn
		}
		return nil
	}
	api.mu.Unlock()
	tick(t, c)
	<-entered
	released := make(chan struct{})
	go func() { defer close(released); releaseKept(t, l, lost) }()
	close(goOn)
	<-released
	if got := api.current(); got.HolderIdentity != "" {
		t.Errorf("after Release %+v, want it cleared", got)
	}
}
