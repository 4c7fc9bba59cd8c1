// Package lease holds a Kubernetes Lease (--lock k8s-lease:NAME) the way client-go's leader
// election does, so that one svinit across nodes runs the program: the wait, the renewals and
// the expiry, all timed on the local monotonic clock. Each API call is one call of an API.
package lease

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/svinit/svinit/internal/lock"
)

// Record is a Lease's spec (coordination.k8s.io/v1) and the version of the object it was
// read from.
type Record struct {
	HolderIdentity       string    `json:"holderIdentity,omitempty"`
	LeaseDurationSeconds int       `json:"leaseDurationSeconds,omitempty"`
	AcquireTime          time.Time `json:"acquireTime,omitzero"`
	RenewTime            time.Time `json:"renewTime,omitzero"`
	LeaseTransitions     int       `json:"leaseTransitions,omitempty"`
	// ResourceVersion is the version read: an update carries it and fails with ErrConflict
	// when someone wrote in between, so that of two contenders exactly one wins.
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

// same reports whether a and b are the same observation of the Lease.
func same(a, b Record) bool {
	return a.ResourceVersion == b.ResourceVersion && a.HolderIdentity == b.HolderIdentity &&
		a.LeaseDurationSeconds == b.LeaseDurationSeconds && a.LeaseTransitions == b.LeaseTransitions &&
		a.AcquireTime.Equal(b.AcquireTime) && a.RenewTime.Equal(b.RenewTime)
}

// Error classes of the API's answers.
var (
	ErrNotFound = errors.New("the Lease does not exist")
	ErrConflict = errors.New("the Lease exists already or changed since it was read")
	// ErrRefused: the API refused the Lease for good (a permission the pod lacks), and the
	// wait ended.
	ErrRefused = errors.New("the API refused the Lease")
)

// API makes one call on the Lease each.
type API interface {
	Get(ctx context.Context) (Record, error)
	// Create makes the Lease; ErrConflict when it exists.
	Create(ctx context.Context, r Record) (Record, error)
	// Update writes r over the version r.ResourceVersion names; ErrConflict when that is not
	// the current one, ErrNotFound when the Lease is gone.
	Update(ctx context.Context, r Record) (Record, error)
}

// Clock is the local clock; tests move it by hand.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configures a Lease.
type Options struct {
	Name     string // for the log
	Identity string // this svinit run's, unique: two runs never both believe they hold it
	// Duration is how long others wait for a Lease nobody renews (whole seconds);
	// RenewDeadline how long renewals may fail before the Lease counts as lost; RetryPeriod
	// how often the holder renews and a waiter looks again.
	Duration, RenewDeadline, RetryPeriod time.Duration
	// Timeout and OnTimeout are --lock-timeout and --lock-on-timeout: Fail gives up with
	// lock.ErrTimeout, Takeover waits on, since a live holder is never broken.
	Timeout   time.Duration
	OnTimeout lock.Policy
	Log       zerolog.Logger
	Clock     Clock // nil: the real one
}

// Lease is one svinit run's hold on the Lease.
type Lease struct {
	api  API
	opts Options
	log  zerolog.Logger

	// The Lease as this run last saw it, and when: on the local clock, never the renewTime
	// another node's clock wrote.
	observed   Record
	observedAt time.Time
	// Once taken: the record last written, and when the write that succeeded last was sent.
	// Acquire sets them, then the renewing goroutine owns them until Release stops it.
	held      *Record
	lastRenew time.Time
	// uncertain: a write while waiting failed without saying why, and may have taken effect.
	uncertain bool

	lost atomic.Bool
	stop context.CancelFunc
	done chan struct{}
}

// New returns a Lease not yet taken.
func New(api API, opts Options) *Lease {
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	return &Lease{api: api, opts: opts, log: opts.Log.With().Str("lease", opts.Name).Logger()}
}

// takenError says that another holder has the Lease.
type takenError struct{ holder string }

func (e *takenError) Error() string { return "taken by " + e.holder }

// permanent reports an error that retrying cannot help (a permission the pod lacks).
func permanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// Acquire waits until this run holds the Lease, looking again every retry period. It gives
// up when ctx ends, when the API refuses for good, or with lock.ErrTimeout when the wait
// outlasts the timeout and the policy is Fail.
func (l *Lease) Acquire(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			l.giveUp(ctx)
		}
	}()
	c := l.opts.Clock
	began := c.Now()
	timedOut := false
	var lastErr, lastHolder string
	for {
		holder, err := l.tryAcquire(ctx)
		if err == nil && holder != "" && holder != lastHolder {
			lastHolder = holder
			l.log.Info().Str("holder", holder).Msg("lease is held; waiting")
		}
		switch {
		case err == nil && holder == "":
			l.log.Info().Str("holder", l.opts.Identity).Int("transitions", l.held.LeaseTransitions).Dur("waited_ms", c.Now().Sub(began)).Msg("lease taken")
			return nil
		case err != nil && permanent(err):
			return fmt.Errorf("lease %s: %w: %w", l.opts.Name, ErrRefused, err)
		case err != nil && err.Error() != lastErr:
			lastErr = err.Error()
			l.log.Warn().Err(err).Msg("cannot read or take the lease; trying again")
		}
		if !timedOut && c.Now().Sub(began) >= l.opts.Timeout {
			timedOut = true
			if l.opts.OnTimeout == lock.Fail {
				return fmt.Errorf("lease %s held by %q: %w", l.opts.Name, holder, lock.ErrTimeout)
			}
			l.log.Warn().Str("holder", holder).Dur("timeout_ms", l.opts.Timeout).Msg("lock timeout passed: waiting on, a holder that renews is never broken")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.After(l.opts.RetryPeriod):
		}
	}
}

// tryAcquire makes one attempt: holder is "" once this run holds the Lease, else whoever
// holds it (unknown when the API failed).
func (l *Lease) tryAcquire(ctx context.Context) (holder string, err error) {
	ctx, cancel := context.WithTimeout(ctx, l.opts.RenewDeadline)
	defer cancel()
	now := l.opts.Clock.Now()
	cur, err := l.api.Get(ctx)
	if errors.Is(err, ErrNotFound) {
		// Deleted under a holder this run saw: it may still run the program, and it makes the
		// Lease again at its next renewal.
		if h := l.observed.HolderIdentity; h != "" && h != l.opts.Identity && !l.expired(now) {
			return h + ", whose Lease was deleted", nil
		}
		created, err := l.api.Create(ctx, l.claim(Record{}, now))
		if errors.Is(err, ErrConflict) {
			return "someone who created it first", nil
		}
		if err == nil {
			l.taken(created, now)
		}
		l.uncertain = err != nil && !permanent(err)
		return "", err
	}
	if err != nil {
		return "", err
	}
	l.uncertain = false // what a lost write did, this read shows
	if !same(cur, l.observed) {
		// When the answer came, not when it was asked for: it may show a renewal sent in between.
		l.observed, l.observedAt = cur, l.opts.Clock.Now()
	}
	// Its holder is this run when an update took effect though its answer was lost.
	if cur.HolderIdentity != "" && cur.HolderIdentity != l.opts.Identity && !l.expired(now) {
		return cur.HolderIdentity, nil
	}
	written, err := l.api.Update(ctx, l.claim(cur, now))
	if errors.Is(err, ErrConflict) {
		return cur.HolderIdentity + ", or someone who took it first", nil
	}
	if err == nil {
		l.taken(written, now)
	}
	l.uncertain = err != nil && !errors.Is(err, ErrNotFound) && !permanent(err)
	return "", err
}

// giveUp ends a wait whose last write may have taken effect unanswered (a stop cut it off):
// a Lease naming this run is cleared, or a successor would wait its whole duration for a
// program that never ran. One attempt, bounded as a take is.
func (l *Lease) giveUp(ctx context.Context) {
	if !l.uncertain {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.opts.RenewDeadline)
	defer cancel()
	cur, err := l.api.Get(ctx)
	switch {
	case err != nil:
		l.log.Warn().Err(err).Dur("lease_duration_ms", l.opts.Duration).Msg("cannot tell whether the lease was taken; if it was, it expires for the others after its duration")
	case cur.HolderIdentity == l.opts.Identity:
		l.held = &cur
		l.Release(ctx)
	}
}

// expired reports that the Lease observed has not changed for its duration, measured from
// when this run first saw it as it is.
func (l *Lease) expired(now time.Time) bool {
	d := time.Duration(l.observed.LeaseDurationSeconds) * time.Second
	if d <= 0 {
		d = l.opts.Duration
	}
	return now.Sub(l.observedAt) >= d
}

// claim is old taken over by this run at now.
func (l *Lease) claim(old Record, now time.Time) Record {
	r := Record{
		HolderIdentity:       l.opts.Identity,
		LeaseDurationSeconds: int(l.opts.Duration / time.Second),
		AcquireTime:          now.UTC(),
		RenewTime:            now.UTC(),
		LeaseTransitions:     old.LeaseTransitions,
		ResourceVersion:      old.ResourceVersion,
	}
	if old.HolderIdentity == l.opts.Identity {
		r.AcquireTime = old.AcquireTime
	} else if old.ResourceVersion != "" {
		r.LeaseTransitions++
	}
	return r
}

func (l *Lease) taken(r Record, sent time.Time) {
	l.held, l.lastRenew = &r, sent
	l.observed, l.observedAt = r, sent
}

// Hold renews the Lease every retry period until Release. When no renewal has succeeded for
// the renew deadline, or someone else holds it, the Lease is lost: Hold logs it and calls
// lost, once, from its own goroutine; expired when the last renewal is a duration old (svinit
// was paused), so that another may hold it already.
func (l *Lease) Hold(lost func(expired bool)) {
	if l.held == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.stop, l.done = cancel, make(chan struct{})
	go l.keep(ctx, lost)
}

// Lost reports that the Lease was lost while held.
func (l *Lease) Lost() bool { return l.lost.Load() }

func (l *Lease) keep(ctx context.Context, lost func(expired bool)) {
	defer close(l.done)
	c := l.opts.Clock
	var lastErr string
	for {
		// The next try comes no later than the deadline, so that a loss is acted on at once.
		wait := min(l.opts.RetryPeriod, l.lastRenew.Add(l.opts.RenewDeadline).Sub(c.Now()))
		select {
		case <-ctx.Done():
			return
		case <-c.After(max(wait, 0)):
		}
		err := l.renew(ctx)
		if err == nil {
			lastErr = ""
			continue
		}
		if ctx.Err() != nil {
			return // released during the try
		}
		var taken *takenError
		since := c.Now().Sub(l.lastRenew)
		if errors.As(err, &taken) || since >= l.opts.RenewDeadline {
			l.lost.Store(true)
			if since >= l.opts.Duration {
				l.log.Error().Err(err).Dur("since_renewal_ms", since).Dur("lease_duration_ms", l.opts.Duration).
					Msg("lease lost and expired: another may hold it, killing the program at once")
				lost(true)
				return
			}
			l.log.Error().Err(err).Dur("since_renewal_ms", since).Dur("renew_deadline_ms", l.opts.RenewDeadline).
				Msg("lease lost: stopping the program before anyone else may take the lease")
			lost(false)
			return
		}
		if err.Error() != lastErr {
			lastErr = err.Error()
			l.log.Warn().Err(err).Dur("since_renewal_ms", since).Msg("lease renewal failed; trying again")
		}
	}
}

// errDeadline is a renewal not tried: the deadline has passed.
var errDeadline = errors.New("no renewal succeeded within the renew deadline")

// renew makes one renewal, bounded by what is left of the renew deadline.
func (l *Lease) renew(ctx context.Context) error {
	now := l.opts.Clock.Now()
	left := l.lastRenew.Add(l.opts.RenewDeadline).Sub(now)
	if left <= 0 {
		return errDeadline
	}
	ctx, cancel := context.WithTimeout(ctx, left)
	defer cancel()
	next := *l.held
	next.RenewTime = now.UTC()
	written, err := l.api.Update(ctx, next)
	switch {
	case errors.Is(err, ErrConflict):
		// Someone wrote it: another holder, or an edit that left this run the holder.
		cur, gerr := l.api.Get(ctx)
		if gerr != nil {
			return gerr
		}
		if cur.HolderIdentity != l.opts.Identity {
			return &takenError{holder: cur.HolderIdentity}
		}
		next.ResourceVersion = cur.ResourceVersion
		written, err = l.api.Update(ctx, next)
	case errors.Is(err, ErrNotFound):
		// Deleted under it: made again, unless another run was quicker.
		next.ResourceVersion = ""
		written, err = l.api.Create(ctx, next)
	}
	if err != nil {
		return err
	}
	l.held, l.lastRenew = &written, now
	return nil
}

// Release stops the renewals and clears the holder, so that a successor takes the Lease at
// once; ctx bounds the clearing. A Lease someone else holds by now is left alone. Should the
// clearing fail, the Lease expires for the others after its duration.
func (l *Lease) Release(ctx context.Context) {
	if l.stop != nil { // the renewals first: until they have stopped, held is theirs
		l.stop()
		<-l.done
	}
	if l.held == nil {
		return
	}
	now := l.opts.Clock.Now()
	next := *l.held
	// As client-go: whoever reads the record next needs to wait no longer.
	next.HolderIdentity, next.LeaseDurationSeconds, next.AcquireTime, next.RenewTime = "", 1, now.UTC(), now.UTC()
	_, err := l.api.Update(ctx, next)
	if errors.Is(err, ErrConflict) {
		var cur Record
		if cur, err = l.api.Get(ctx); err == nil {
			if cur.HolderIdentity != l.opts.Identity {
				l.log.Info().Str("holder", cur.HolderIdentity).Msg("lease not cleared: another holder has it already")
				return
			}
			next.ResourceVersion = cur.ResourceVersion
			_, err = l.api.Update(ctx, next)
		}
	}
	if err != nil {
		l.log.Warn().Err(err).Dur("lease_duration_ms", l.opts.Duration).Msg("cannot clear the lease holder; it expires for the others after its duration")
		return
	}
	l.log.Info().Msg("lease released")
}
