package supervisor

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/svinit/svinit/internal/check"
	"github.com/svinit/svinit/internal/license"
	"github.com/svinit/svinit/internal/state"
)

// needsNet reports whether a check goes over the network, which svinit-net does.
func needsNet(lists ...check.List) bool {
	for _, l := range lists {
		for _, c := range l {
			if c.Kind == check.TCP || c.Kind == check.HTTP {
				return true
			}
		}
	}
	return false
}

// checkRunner runs one attempt of a check: a file in PID 1, a command through the reaper
// as svinit's user with the license commands' environment, the network through svinit-net.
func checkRunner(timeout time.Duration, runner reaperRunner, env []string, net *license.Helper) check.Runner {
	r := check.Runner{Exec: runner, Env: env, Timeout: timeout}
	if net != nil {
		r.Net = func(ctx context.Context, c check.Check) error { return net.Probe(ctx, c.Raw()) }
	}
	return r
}

// dependenciesStep is --wait-for; it does nothing without any.
type dependenciesStep struct {
	checks  check.List
	timeout time.Duration
	attempt check.Attempt
	state   *state.Tracker
	log     zerolog.Logger
}

func (d dependenciesStep) Wait(ctx context.Context) error {
	if len(d.checks) == 0 {
		return nil
	}
	d.state.Phase(state.WaitingForDependencies)
	started := time.Now()
	d.log.Info().Str("checks", d.checks.String()).Dur("timeout_ms", d.timeout).Msg("waiting for dependencies")
	err := check.Wait(ctx, d.checks, check.WaitOptions{Attempt: d.attempt, Timeout: d.timeout, Missing: d.record, Log: d.log})
	if err == nil {
		d.log.Info().Dur("waited_ms", time.Since(started)).Msg("dependencies ready")
	}
	return err
}

// record puts what is still missing in the state file, for svinit status.
func (d dependenciesStep) record(missing []check.Missing) {
	d.state.Update(func(st *state.State) {
		st.Waiting = nil
		for _, m := range missing {
			st.Waiting = append(st.Waiting, state.Dependency{Check: m.Check, Error: m.Error})
		}
	})
}

// readinessStep is --ready; it does nothing without any.
type readinessStep struct {
	checks   check.List
	interval time.Duration
	attempt  check.Attempt
	state    *state.Tracker
	log      zerolog.Logger
}

func (r readinessStep) Watch(ctx context.Context) {
	if len(r.checks) == 0 {
		return
	}
	check.Watch(ctx, r.checks, check.WatchOptions{Attempt: r.attempt, Interval: r.interval, Report: r.record, Log: r.log})
}

// record puts a round's result in the state file; since changes only with readiness.
func (r readinessStep) record(res check.Result) {
	r.state.Update(func(st *state.State) {
		since := res.Checked.UTC()
		if st.Ready != nil && st.Ready.Ready == res.Ready {
			since = st.Ready.Since
		}
		st.Ready = &state.Ready{Ready: res.Ready, Since: since, Checked: res.Checked.UTC(), Reason: res.Reason}
	})
}
