package license

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// ManagerOptions tunes a Manager; zero fields take the defaults.
type ManagerOptions struct {
	// Provider is the provider's name. It goes into the journal, so that a record is never
	// handed to a different provider after a configuration change.
	Provider string
	// Timeout bounds Start as a whole, reclaim and retries included (--license-timeout), and
	// Stop when its context has no deadline. Default 60s.
	Timeout time.Duration
	// RequestTimeout bounds one request or command. Default 10s.
	RequestTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts, which doubles from
	// MinBackoff, with jitter. Defaults 500ms and 10s. No wait runs past a deadline (see
	// retry).
	MinBackoff, MaxBackoff time.Duration
	// OnLease, when set, is called with each lease taken or renewed (for svinit's state
	// file and a changed license file), from the goroutine that took it: the next heartbeat
	// waits for it, so it writes a few small files at most and never waits on the network.
	OnLease func(Lease)
}

func (o ManagerOptions) withDefaults() ManagerOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Timeout, 60*time.Second)
	def(&o.RequestTimeout, 10*time.Second)
	def(&o.MinBackoff, 500*time.Millisecond)
	def(&o.MaxBackoff, 10*time.Second)
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	return o
}

// Manager brackets the child's life with one activation. Start: reclaim what a previous run
// left in the journal, journal the intent, activate with retries, journal the activation id,
// heartbeat at a third of the lease's TTL (re-activating, intent journaled first, when the
// lease is gone). Stop: give back every activation the journal names within the time left,
// then remove the record. A Manager for a nil Provider does nothing.
type Manager struct {
	p        Provider
	store    Store
	instance string
	log      zerolog.Logger
	opts     ManagerOptions

	mu       sync.Mutex
	started  bool
	held     bool // an activation is held: Start succeeded and Stop has not released it
	lease    Lease
	rec      Record // what the server may hold for us, as journaled (or being journaled)
	pending  []Seat // what reclaim could not give back, kept in every record until it goes
	reKeys   bool   // the provider's heartbeat may answer with a new activation id
	stopBeat context.CancelFunc
	beatDone chan struct{}
}

// NewManager returns a Manager that activates p for instance and journals in store. A nil
// store keeps no journal: a crash then leaks the seat until the server expires it.
func NewManager(p Provider, store Store, instance string, log zerolog.Logger, opts ManagerOptions) *Manager {
	if store == nil {
		store = noStore{}
	}
	opts = opts.withDefaults()
	rk, ok := p.(reKeyer)
	return &Manager{
		p: p, store: store, instance: instance, opts: opts, reKeys: ok && rk.mayReKey(),
		log: log.With().Str("component", "license").Str("provider", opts.Provider).Str("instance", instance).Logger(),
	}
}

// Lease returns the lease held now; heartbeats may have renewed or replaced the one Start
// returned.
func (m *Manager) Lease() Lease {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lease
}

// Release gives back what another instance recorded and left behind: the zombie sweeper's
// call, for a pod that died without deactivating. An activation the server no longer knows
// counts as released. When some seat could not be given back, left names exactly those.
func (m *Manager) Release(ctx context.Context, rec Record) (left Record, err error) {
	return m.giveBack(ctx, "sweep", rec)
}

// reKeyer is a Provider whose heartbeat may answer with a new activation id: the server
// then holds the lease under an id the journal learns only afterwards.
type reKeyer interface{ mayReKey() bool }

// Held reports whether an activation is held: Start succeeded and Stop has not given it
// back (a failed deactivation keeps it, and the journal with it).
func (m *Manager) Held() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.held
}

// Start activates, within ManagerOptions.Timeout. When it fails, nothing is held: an
// activation that may have happened is deactivated, or left in the journal for the next
// start when that fails too. Cancelling ctx (SIGTERM) cancels the activation likewise.
// ExitCode says what the error means for svinit's exit code.
func (m *Manager) Start(ctx context.Context) (Lease, error) {
	if m.p == nil {
		return Lease{}, nil
	}
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return Lease{}, errors.New("license: Start called twice")
	}
	m.started = true
	m.mu.Unlock()

	began := time.Now()
	sctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	if _, isNoStore := m.store.(noStore); isNoStore {
		m.log.Warn().Msg("no license state file: a crash will leak the seat until the server expires it; set --license-state")
	}
	if err := m.reclaim(sctx); err != nil {
		return Lease{}, err
	}
	if err := m.journal(sctx, m.activating()); err != nil {
		return Lease{}, fmt.Errorf("license: journal the activation before making it: %w", err)
	}

	var lease Lease
	attempts, uncertain, err := m.retry(sctx, "activate", func(rctx context.Context) error {
		l, err := m.p.Activate(rctx, m.instance)
		if err == nil {
			lease = l
		}
		return err
	})
	if err != nil {
		m.log.Error().Err(err).Int("attempts", attempts).Dur("elapsed_ms", time.Since(began)).Msg("activation failed")
		m.abortStart(ctx, uncertain)
		return Lease{}, fmt.Errorf("license: %w", err)
	}
	if err := m.journal(sctx, m.activated(m.holding(), lease, uncertain)); err != nil {
		// The journal may still say "activating" only: give the seat back while we know it.
		m.log.Error().Err(err).Str("activation_id", lease.ID).Msg("cannot journal the activation; deactivating it")
		m.abortStart(ctx, true)
		return Lease{}, fmt.Errorf("license: journal activation %s: %w", lease.ID, err)
	}
	m.mu.Lock()
	m.lease, m.held = lease, true
	m.mu.Unlock()
	m.published(lease)
	m.log.Info().Str("activation_id", lease.ID).Dur("ttl_ms", lease.TTL).Int("attempts", attempts).
		Dur("elapsed_ms", time.Since(began)).Bool("license_file", len(lease.File) > 0).Msg("license activated")
	if lease.TTL > 0 {
		m.startHeartbeat(ctx)
	}
	return lease, nil
}

// Stop deactivates within ctx, which carries what is left of the stop budget, and removes
// the journal record. When deactivation fails the record stays, so that the next start
// reclaims the seat, and Stop returns the error; svinit's exit code stays the child's.
func (m *Manager) Stop(ctx context.Context) error {
	if m.p == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.opts.Timeout)
		defer cancel()
	}
	m.stopHeartbeat(ctx)
	m.mu.Lock()
	held, lease, rec := m.held, m.lease, m.rec
	m.mu.Unlock()
	if !held {
		return nil
	}
	began := time.Now()
	if left, err := m.giveBack(ctx, "deactivate", rec); err != nil {
		m.log.Error().Err(err).Str("activation_id", lease.ID).Stringers("pending", seatList(left.seats())).
			Dur("elapsed_ms", time.Since(began)).Msg("deactivation failed; the journal keeps the activation for the next start to reclaim")
		m.keep(ctx, left)
		return fmt.Errorf("license: %w", err)
	}
	m.mu.Lock()
	m.held = false
	m.mu.Unlock()
	if err := m.store.Delete(ctx); err != nil {
		m.log.Error().Err(err).Msg("deactivated, but cannot remove the journal record; the next start will deactivate again")
		return fmt.Errorf("license: %w", err)
	}
	m.log.Info().Str("activation_id", lease.ID).Dur("elapsed_ms", time.Since(began)).Msg("license deactivated")
	return nil
}

// activating returns the record of an activation about to be requested.
func (m *Manager) activating() Record {
	return Record{Instance: m.instance, Provider: m.opts.Provider, State: StateActivating, Pending: m.pending, Updated: time.Now().UTC()}
}

// activated returns rec once l is held: l's id, the ids rec named kept as earlier ones (the
// server may hold them too), and the by-instance mark kept, or set when an attempt's answer
// was lost (uncertain) or a heartbeat may move l to a new id. The mark is journaled here,
// with the id, so that it is on disk before any heartbeat is sent; it costs one more
// deactivation, by instance, at every give-back.
func (m *Manager) activated(rec Record, l Lease, uncertain bool) Record {
	rec.Earlier = slices.DeleteFunc(rec.ids(), func(id string) bool { return id == l.ID })
	rec.State, rec.ActivationID, rec.Updated = StateActive, l.ID, time.Now().UTC()
	rec.ByInstance = rec.ByInstance || uncertain || l.TTL > 0 && m.reKeys
	return rec
}

// journal makes rec what the server may hold for us: in memory first, so that Stop gives
// back all of it even when the Save fails, then in the store.
func (m *Manager) journal(ctx context.Context, rec Record) error {
	m.mu.Lock()
	m.rec = rec
	m.mu.Unlock()
	return m.store.Save(ctx, rec)
}

func (m *Manager) holding() Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rec
}

// keep journals left, what a give-back could not give back, in place of the record it
// started from. Should that fail, the whole record stays, which names more but nothing less.
func (m *Manager) keep(ctx context.Context, left Record) {
	if err := m.journal(ctx, left); err != nil {
		m.log.Warn().Err(err).Msg("cannot narrow the journal record to what is left; it keeps naming everything")
	}
}

// giveBack deactivates every seat rec names (Record.seats), the one held now first, and goes
// on past failures. Each seat gets an equal share of the time ctx has left, unused time
// passing to the next, so that a dead id cannot eat the others' budget. left names exactly
// the seats that failed, for the next try.
func (m *Manager) giveBack(ctx context.Context, op string, rec Record) (left Record, err error) {
	seats := rec.seats()
	var failed []Seat
	var errs []error
	for i, s := range seats {
		if ctx.Err() != nil {
			failed = append(failed, seats[i:]...)
			errs = append(errs, fmt.Errorf("%s: %d not attempted: %w", op, len(seats)-i, ctx.Err()))
			break
		}
		sctx, cancel := share(ctx, len(seats)-i)
		err := m.deactivate(sctx, op, s.Instance, Lease{ID: s.ID})
		cancel()
		if err != nil {
			failed = append(failed, s)
			errs = append(errs, err)
		}
	}
	return rec.only(failed), errors.Join(errs...)
}

// share bounds ctx to an n-th of the time it has left.
func share(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok || n <= 1 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Until(deadline)/time.Duration(n))
}

func seatList(seats []Seat) []fmt.Stringer {
	list := make([]fmt.Stringer, len(seats))
	for i, s := range seats {
		list[i] = s
	}
	return list
}

// reclaim deactivates what the journal says a previous run left behind: that run was
// SIGKILLed, or its node died, before it could deactivate. The record may name another
// instance id (a StatefulSet pod keeps its volume but gets a new UID); the journal is this
// pod's alone, so its seat is ours to give back.
func (m *Manager) reclaim(ctx context.Context) error {
	rec, found, err := m.store.Load(ctx)
	if err != nil {
		return fmt.Errorf("license: %w: %w", ErrPermanent, err)
	}
	if !found {
		return nil
	}
	log := m.log.With().Str("stale_instance", rec.Instance).Str("activation_id", rec.ActivationID).
		Strs("earlier_activation_ids", rec.Earlier).Bool("by_instance", rec.ByInstance).Stringers("pending", seatList(rec.Pending)).
		Str("state", rec.State).Time("recorded", rec.Updated).Logger()
	if rec.Provider != m.opts.Provider {
		log.Error().Str("stale_provider", rec.Provider).
			Msg("the journal names an activation made with another license provider; deactivate it by hand")
		if err := m.store.Delete(ctx); err != nil {
			return fmt.Errorf("license: %w", err)
		}
		return nil
	}
	log.Warn().Msg("reclaiming the activation a previous run left behind")
	left, err := m.giveBack(ctx, "reclaim", rec)
	switch {
	case err == nil:
		log.Info().Msg("reclaimed the activation a previous run left behind")
	case errors.Is(err, ErrRetryable) || ctx.Err() != nil:
		m.keep(ctx, left)
		return fmt.Errorf("license: reclaim the activation a previous run left for %s: %w", rec.Instance, err)
	default:
		// Retrying now cannot help and must not keep the program from starting forever; the
		// seats stay in every record of this run, so that the stop and the next start try
		// again, until the server lets them go or a person frees them.
		log.Error().Err(err).Stringers("pending", seatList(left.seats())).
			Msg("cannot deactivate the activation a previous run left behind; it may hold a seat until removed by hand")
		m.pending = left.seats()
		return nil // the activation's record, journaled next, replaces this one
	}
	if err := m.store.Delete(ctx); err != nil {
		return fmt.Errorf("license: %w", err)
	}
	return nil
}

// abortStart cleans up after a failed Start. When an attempt may have activated (it timed
// out, was cancelled, or succeeded but could not be journaled), give back what the journal
// names, within one request timeout of ctx's values but not its cancellation: a SIGTERM
// during activation must still give the seat back. The record stays when that fails.
func (m *Manager) abortStart(ctx context.Context, uncertain bool) {
	if !uncertain {
		if len(m.pending) > 0 {
			// Nothing was taken, but what reclaim could not give back stays for the next try.
			m.keep(ctx, Record{Instance: m.instance, Provider: m.opts.Provider, State: StateActive, Pending: m.pending, Updated: time.Now().UTC()})
			return
		}
		if err := m.store.Delete(ctx); err != nil {
			m.log.Error().Err(err).Msg("cannot remove the journal record")
		}
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opts.RequestTimeout)
	defer cancel()
	m.log.Warn().Msg("an activation attempt may have taken a seat; deactivating")
	if left, err := m.giveBack(cctx, "deactivate", m.holding()); err != nil {
		m.log.Error().Err(err).Stringers("pending", seatList(left.seats())).
			Msg("cannot deactivate; the journal keeps the activation for the next start to reclaim")
		m.keep(cctx, left)
		return
	}
	if err := m.store.Delete(cctx); err != nil {
		m.log.Error().Err(err).Msg("cannot remove the journal record")
	}
}

// deactivate retries Provider.Deactivate until ctx ends; an activation the server does not
// know counts as deactivated.
func (m *Manager) deactivate(ctx context.Context, op, instance string, l Lease) error {
	_, _, err := m.retry(ctx, op, func(rctx context.Context) error {
		err := m.p.Deactivate(rctx, instance, l)
		if errors.Is(err, ErrNotFound) {
			m.log.Info().Str("activation_id", l.ID).Str("reason", err.Error()).Msg("activation already gone")
			return nil
		}
		return err
	})
	return err
}

// retry calls fn, each call bounded by the request timeout, until it succeeds, fails with
// anything but ErrRetryable, or ctx ends. Waits between calls double from MinBackoff up to
// MaxBackoff, with jitter so that a fleet restarted together does not retry in step. No wait
// runs past ctx's deadline: the last call starts as late as leaves it twice the time the one
// before took (at least finalCallRoom), and gets whatever time is left. The room is there
// because a call the deadline cuts short counts as uncertain, and an uncertain activation
// costs a give-back after the deadline. It reports whether a failed call may have taken
// effect anyway.
func (m *Manager) retry(ctx context.Context, op string, fn func(context.Context) error) (attempts int, uncertain bool, err error) {
	began := time.Now()
	backoff := m.opts.MinBackoff
	var last error
	for final := false; ctx.Err() == nil; {
		attempts++
		rctx, cancel := context.WithTimeout(ctx, m.opts.RequestTimeout)
		sent := time.Now()
		err := fn(rctx)
		took := time.Since(sent)
		cancel()
		if err == nil {
			return attempts, uncertain, nil
		}
		last = err
		uncertain = uncertain || errors.Is(err, ErrUncertain)
		if !errors.Is(err, ErrRetryable) {
			return attempts, uncertain, fmt.Errorf("%s: %w", op, err)
		}
		if ctx.Err() != nil || final {
			break
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		if deadline, ok := ctx.Deadline(); ok {
			if left := time.Until(deadline) - min(max(2*took, finalCallRoom), m.opts.RequestTimeout); wait >= left {
				wait, final = max(left, 0), true
			}
		}
		m.log.Warn().Err(err).Str("op", op).Int("attempt", attempts).Dur("retry_in_ms", wait).Msg("license request failed; retrying")
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
		case <-timer.C:
		}
		backoff = min(2*backoff, m.opts.MaxBackoff)
	}
	switch {
	case last == nil:
		return attempts, uncertain, fmt.Errorf("%s: not attempted: %w", op, ctx.Err())
	case errors.Is(ctx.Err(), context.Canceled):
		return attempts, uncertain, fmt.Errorf("%s: cancelled after %d attempt(s): %w (last error: %v)", op, attempts, context.Canceled, last)
	default:
		return attempts, uncertain, fmt.Errorf("%s: gave up after %s and %d attempt(s): %w", op, time.Since(began).Round(time.Millisecond), attempts, last)
	}
}

// finalCallRoom is the least time retry leaves the last call: enough for a call that fails
// fast (connection refused) to fail on its own, with scheduling noise, rather than be cut.
const finalCallRoom = 100 * time.Millisecond

// startHeartbeat renews the lease in the background until Stop. Its context keeps ctx's
// values but not its cancellation: the start-up context ends long before the child does.
func (m *Manager) startHeartbeat(ctx context.Context) {
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	m.mu.Lock()
	m.stopBeat, m.beatDone = cancel, done
	m.mu.Unlock()
	go m.heartbeat(hctx, done)
}

// stopHeartbeat ends the heartbeat and waits for it, at most until ctx ends.
func (m *Manager) stopHeartbeat(ctx context.Context) {
	m.mu.Lock()
	cancel, done := m.stopBeat, m.beatDone
	m.stopBeat, m.beatDone = nil, nil
	m.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// heartbeat renews the lease every TTL/3, so that two heartbeats can fail before it lapses;
// after a failure it tries again sooner. When the server reports the lease gone, or gone
// and no seat free, it re-activates, and keeps trying for as long as the child runs: the
// child is not stopped for a lost lease, enforcing the license is the program's business.
func (m *Manager) heartbeat(ctx context.Context, done chan struct{}) {
	defer close(done)
	failures := 0
	lost := false
	for {
		l := m.Lease()
		if l.TTL <= 0 && !lost {
			m.log.Info().Msg("the lease needs no more heartbeats")
			return
		}
		wait := l.TTL / 3
		if wait <= 0 {
			wait = m.opts.MaxBackoff
		}
		if failures > 0 {
			wait = min(wait, m.opts.MinBackoff<<min(failures-1, 10))
		}
		wait = max(wait, 10*time.Millisecond)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		var ok bool
		if lost {
			ok = m.reactivate(ctx, "")
		} else {
			var gone error
			ok, gone = m.beat(ctx, l)
			if lost = gone != nil; lost {
				forget := "" // no seat free: the server may still hold this one
				if errors.Is(gone, ErrNotFound) {
					forget = l.ID
				}
				ok = m.reactivate(ctx, forget)
			}
		}
		if ctx.Err() != nil {
			return
		}
		if ok {
			failures, lost = 0, false
		} else {
			failures++
		}
	}
}

// beat sends one heartbeat and reports whether it renewed the lease, or why it is gone.
func (m *Manager) beat(ctx context.Context, l Lease) (ok bool, gone error) {
	rctx, cancel := context.WithTimeout(ctx, m.opts.RequestTimeout)
	defer cancel()
	began := time.Now()
	nl, err := m.p.Heartbeat(rctx, m.instance, l)
	switch {
	case err == nil:
		m.renewed(ctx, nl, l.ID)
		m.log.Debug().Str("activation_id", nl.ID).Dur("ttl_ms", nl.TTL).Dur("elapsed_ms", time.Since(began)).Msg("license heartbeat")
		return true, nil
	case ctx.Err() != nil:
		return false, nil
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrNoSeats):
		m.log.Warn().Err(err).Str("activation_id", l.ID).Msg("the lease is gone; re-activating")
		return false, err
	default:
		m.log.Warn().Err(err).Str("activation_id", l.ID).Msg("license heartbeat failed; trying again")
		return false, nil
	}
}

// reactivate takes a new activation after the lease was lost, journaling the intent first
// as Start does: a kill before the new id is journaled must not leak the seat it took. The
// journal forgets the id forget, which the server said it does not know.
func (m *Manager) reactivate(ctx context.Context, forget string) bool {
	rec := m.holding()
	if forget != "" {
		rec.Earlier = slices.DeleteFunc(slices.Clone(rec.Earlier), func(id string) bool { return id == forget })
		if rec.ActivationID == forget {
			rec.ActivationID = ""
		}
	}
	rec.State, rec.Updated = StateActivating, time.Now().UTC()
	if err := m.journal(ctx, rec); err != nil {
		m.log.Error().Err(err).Msg("cannot journal the re-activation; trying again")
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, m.opts.RequestTimeout)
	defer cancel()
	nl, err := m.p.Activate(rctx, m.instance)
	if err != nil {
		if errors.Is(err, ErrUncertain) {
			// The journal says "activating" until a retry succeeds; that record keeps the mark.
			m.mu.Lock()
			m.rec.ByInstance = true
			m.mu.Unlock()
		}
		if ctx.Err() == nil {
			m.log.Error().Err(err).Msg("re-activation failed; trying again")
		}
		return false
	}
	if err := m.journal(ctx, m.activated(m.holding(), nl, false)); err != nil {
		m.log.Error().Err(err).Str("activation_id", nl.ID).Msg("cannot journal the new activation id")
	}
	m.setLease(nl)
	m.log.Warn().Str("activation_id", nl.ID).Dur("ttl_ms", nl.TTL).Msg("license re-activated")
	return true
}

// renewed makes the lease a heartbeat returned the one held. A new id is journaled with the
// old one kept: the server may hold both. Until it is, the by-instance mark (see activated)
// covers it.
func (m *Manager) renewed(ctx context.Context, l Lease, oldID string) {
	if l.ID != oldID {
		if err := m.journal(ctx, m.activated(m.holding(), l, false)); err != nil {
			m.log.Error().Err(err).Str("activation_id", l.ID).Msg("cannot journal the new activation id")
		}
	}
	m.setLease(l)
}

func (m *Manager) setLease(l Lease) {
	m.mu.Lock()
	m.lease = l
	m.mu.Unlock()
	m.published(l)
}

func (m *Manager) published(l Lease) {
	if m.opts.OnLease != nil {
		m.opts.OnLease(l)
	}
}

// abandon stops the heartbeat and forgets the lease without deactivating: what a SIGKILL
// does. For tests.
func (m *Manager) abandon() {
	m.stopHeartbeat(context.Background())
	m.mu.Lock()
	m.held = false
	m.mu.Unlock()
}

// noStore is the Store of a Manager without a journal.
type noStore struct{}

func (noStore) Load(context.Context) (Record, bool, error) { return Record{}, false, nil }
func (noStore) Save(context.Context, Record) error         { return nil }
func (noStore) Delete(context.Context) error               { return nil }
