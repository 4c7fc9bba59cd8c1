package check

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// ErrTimeout means --wait-timeout passed with checks still failing.
var ErrTimeout = errors.New("--wait-timeout passed")

// Attempt runs one attempt of a check (Runner.Run): nil when it passes.
type Attempt func(ctx context.Context, c Check) error

// Defaults of the loops' pacing.
const (
	defaultRetry    = time.Second     // a failed check is tried again after this
	defaultProgress = 5 * time.Second // between the wait's progress lines
)

// WaitOptions pace Wait.
type WaitOptions struct {
	Attempt  Attempt
	Timeout  time.Duration // --wait-timeout; 0: for ever
	Retry    time.Duration // 0: a second
	Progress time.Duration // 0: 5 s
	// Missing, when set, is handed what still fails after each round that changed it; the
	// last call, once everything passed, hands nothing.
	Missing func([]Missing)
	Log     zerolog.Logger
}

// Missing is a dependency that still fails, and why.
type Missing struct {
	Check string `json:"check"`
	Error string `json:"error"`
}

// Wait returns once every check has passed once. A failing check is tried again every
// Retry, all of them at the same time; one that passed is not tried again. Every Progress
// it logs what is still missing, its last error and for how long. It returns ctx's error
// at once when ctx ends (the checks running are cancelled), and one wrapping ErrTimeout,
// naming what still fails and why, when Timeout passes.
func Wait(ctx context.Context, checks []Check, o WaitOptions) error {
	if o.Retry <= 0 {
		o.Retry = defaultRetry
	}
	if o.Progress <= 0 {
		o.Progress = defaultProgress
	}
	started := time.Now()
	wctx := ctx
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	pending := checks
	last := make([]error, len(checks)) // aligned with pending
	for i := range last {
		last[i] = errors.New("no attempt finished yet")
	}
	nextProgress := started.Add(o.Progress)
	var reported []Missing
	for {
		errs := attemptAll(wctx, pending, o.Attempt)
		if wctx.Err() != nil {
			break // cut short: the errors are the cancellation's, not the checks'
		}
		var still []Check
		var stillErr []error
		for i, err := range errs {
			if err != nil {
				still, stillErr = append(still, pending[i]), append(stillErr, err)
				continue
			}
			o.Log.Info().Str("check", pending[i].String()).Dur("waited_ms", time.Since(started)).Msg("dependency ready")
		}
		pending, last = still, stillErr
		if o.Missing != nil {
			missing := make([]Missing, len(pending))
			for i, c := range pending {
				missing[i] = Missing{Check: c.String(), Error: last[i].Error()}
			}
			if reported == nil || !slices.Equal(missing, reported) {
				o.Missing(missing)
				reported = missing
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if now := time.Now(); !now.Before(nextProgress) {
			for i, c := range pending {
				o.Log.Info().Str("check", c.String()).Str("error", last[i].Error()).Dur("waited_ms", now.Sub(started)).Msg("waiting for dependency")
			}
			nextProgress = now.Add(o.Progress)
		}
		retry := time.NewTimer(o.Retry)
		select {
		case <-wctx.Done():
		case <-retry.C:
		}
		retry.Stop()
		if wctx.Err() != nil {
			break
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	reasons := make([]string, len(pending))
	for i, c := range pending {
		reasons[i] = c.String() + ": " + last[i].Error()
	}
	return fmt.Errorf("%w (%s): still failing: %s", ErrTimeout, o.Timeout, strings.Join(reasons, "; "))
}

// Result is one round of the readiness checks.
type Result struct {
	Ready   bool
	Reason  string // the first failing check and its error
	Checked time.Time
}

// WatchOptions pace Watch.
type WatchOptions struct {
	Attempt  Attempt
	Interval time.Duration // --ready-interval
	// Report is handed every round's result.
	Report func(Result)
	Log    zerolog.Logger
}

// Watch runs every check each Interval, the first round at once, and reports each round,
// until ctx ends; a round that ctx cut short is not reported. It logs each change between
// ready and not ready once.
func Watch(ctx context.Context, checks []Check, o WatchOptions) {
	var was *bool
	for {
		errs := attemptAll(ctx, checks, o.Attempt)
		if ctx.Err() != nil {
			return
		}
		r := Result{Ready: true, Checked: time.Now()}
		for i, err := range errs {
			if err != nil {
				r.Ready, r.Reason = false, checks[i].String()+": "+err.Error()
				break
			}
		}
		switch {
		case was != nil && *was == r.Ready:
		case r.Ready:
			o.Log.Info().Msg("ready")
		default:
			o.Log.Warn().Str("reason", r.Reason).Msg("not ready")
		}
		was = &r.Ready
		o.Report(r)
		next := time.NewTimer(o.Interval)
		select {
		case <-ctx.Done():
			next.Stop()
			return
		case <-next.C:
		}
	}
}

// abandonAfter bounds the wait for the attempts still running once ctx has ended: each
// is killed at once (a command, svinit-net) and returns, but a process stuck in the kernel
// (a hung NFS mount) must not hold back the start-up's end or the stop.
const abandonAfter = time.Second

// attemptAll runs one attempt of every check at the same time, and returns their errors in
// order. Once ctx ends it gives the attempts still running abandonAfter to return, and
// returns nil: the round was cut short.
func attemptAll(ctx context.Context, checks []Check, attempt Attempt) []error {
	type result struct {
		i   int
		err error
	}
	results := make(chan result, len(checks))
	for i, c := range checks {
		go func() { results <- result{i, attempt(ctx, c)} }()
	}
	errs := make([]error, len(checks))
	var abandon <-chan time.Time
	done := ctx.Done()
	for n := 0; n < len(checks); {
		select {
		case r := <-results:
			errs[r.i] = r.err
			n++
		case <-done:
			done, abandon = nil, time.After(abandonAfter)
		case <-abandon:
			return nil
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return errs
}
