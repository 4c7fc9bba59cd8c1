package license

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/rs/zerolog"
)

// Ledger keeps the license journal of every pod of a workload in one Secret of their
// namespace, an entry per pod keyed by its name and UID, so that an activation outlives a
// pod deleted for good or rescheduled, and the zombie sweeper of another pod can give it
// back. It is the Store of one pod; svinit-net makes its API calls.
type Ledger struct {
	h   helper
	env []string
	log zerolog.Logger
}

// NewLedger returns the ledger in the Secret secret for the pod (name, UID), once svinit-net
// check found the pod's Kubernetes environment usable (a token, the CA, the API's address).
func NewLedger(secret, pod, uid string, hc HelperConfig, redact *Redactor, log zerolog.Logger) (*Ledger, error) {
	l := &Ledger{
		h:   helper{cfg: hc, redact: redact},
		env: []string{EnvNetLedger + "=" + secret, EnvNetPodName + "=" + pod, EnvNetPodUID + "=" + uid},
		log: log.With().Str("component", "ledger").Str("secret", secret).Logger(),
	}
	if err := l.h.check(l.env); err != nil {
		return nil, err
	}
	return l, nil
}

// call runs svinit-net ledger action with extra on top of the ledger's environment.
func (l *Ledger) call(ctx context.Context, action string, extra ...string) (HelperReply, error) {
	env := slices.Concat(l.env, extra, deadlineEnv(ctx))
	r, code, err := l.h.run(ctx, env, "ledger", action)
	what := "ledger " + action
	switch {
	case ctx.Err() != nil:
		return r, &helperError{msg: fmt.Sprintf("%s: no answer from the Kubernetes API in time: %v", what, ctx.Err()), class: ErrRetryable}
	case err != nil:
		return r, fmt.Errorf("%s: %w", what, err)
	case code != 0:
		class := ErrPermanent
		if code == execTempFail {
			class = ErrRetryable
		}
		return r, l.h.replyError(what, class, code, r)
	}
	return r, nil
}

// Load implements Store: this pod's entry.
func (l *Ledger) Load(ctx context.Context) (Record, bool, error) {
	r, err := l.call(ctx, "load")
	if err != nil || r.Record == nil {
		return Record{}, false, err
	}
	return *r.Record, true, nil
}

// Save implements Store: this pod's entry becomes rec; the first pod creates the Secret.
func (l *Ledger) Save(ctx context.Context, rec Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = l.call(ctx, "save", EnvNetRecord+"="+string(b))
	return err
}

// Delete implements Store: this pod's entry goes.
func (l *Ledger) Delete(ctx context.Context) error {
	_, err := l.call(ctx, "delete")
	return err
}

// Releaser gives back every activation another instance's record names, and returns what
// it could not give back: Manager.Release.
type Releaser interface {
	Release(ctx context.Context, rec Record) (left Record, err error)
}

// SweepResult counts what a sweep did.
type SweepResult struct {
	Swept, Alive, Failed int
}

// Sweep is the zombie sweeper: it gives back, with r, the activation of every other pod that
// died without deactivating, and deletes its entry. Entries of pods that exist, Terminating
// ones included, are left alone, as are entries of another provider. Sweep stops when ctx
// ends; what is left waits for the next start.
func (l *Ledger) Sweep(ctx context.Context, provider string, r Releaser) (SweepResult, error) {
	var res SweepResult
	// The look-up gets half the time at most: the other half gives back what it found.
	octx, cancel := ctx, context.CancelFunc(func() {})
	if deadline, ok := ctx.Deadline(); ok {
		octx, cancel = context.WithTimeout(ctx, time.Until(deadline)/2)
	}
	reply, err := l.call(octx, "others")
	cancel()
	if err != nil {
		return res, err
	}
	if reply.Partial {
		l.log.Warn().Int("looked_up", len(reply.Others)).Msg("zombie sweep: not every pod was looked up in time; the next start goes on")
	}
	for _, e := range reply.Others {
		if e.Foreign {
			l.log.Warn().Str("entry", e.Key).Msg("ledger entry is not svinit's; left alone")
			continue
		}
		if e.Alive {
			res.Alive++
			continue
		}
		log := l.log.With().Str("pod", e.Pod).Str("pod_uid", e.PodUID).Str("activation_id", e.Record.ActivationID).
			Strs("earlier_activation_ids", e.Record.Earlier).Bool("by_instance", e.Record.ByInstance).Int("pending", len(e.Record.Pending)).
			Str("state", e.Record.State).Logger()
		if e.Record.Provider != provider {
			log.Warn().Str("entry_provider", e.Record.Provider).Msg("a dead pod's activation was made with another license provider; left for a person to deactivate")
			res.Failed++
			continue
		}
		left, err := r.Release(ctx, e.Record)
		if err != nil {
			log.Error().Err(err).Msg("cannot deactivate a dead pod's activation; the next start tries again")
			res.Failed++
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			// The entry keeps exactly what is left; should that fail, all of it.
			e.Record = left
			if err := l.put(ctx, e); err != nil {
				log.Warn().Err(err).Msg("cannot narrow the entry to what is left; it keeps naming everything")
			}
			continue
		}
		if _, err := l.call(ctx, "remove", EnvNetEntryKey+"="+e.Key); err != nil {
			return res, err
		}
		res.Swept++
		log.Info().Msg("deactivated the activation of a pod that died without giving it back")
	}
	return res, nil
}

// put replaces another pod's entry with e.
func (l *Ledger) put(ctx context.Context, e LedgerEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = l.call(ctx, "put", EnvNetRecord+"="+string(b))
	return err
}

// SweepFor runs Sweep bounded by d, logging the outcome; it never fails the start.
func (l *Ledger) SweepFor(ctx context.Context, d time.Duration, provider string, r Releaser) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	began := time.Now()
	res, err := l.Sweep(ctx, provider, r)
	ev := l.log.Info()
	if err != nil {
		ev = l.log.Warn().Err(err)
	}
	ev.Int("swept", res.Swept).Int("alive", res.Alive).Int("failed", res.Failed).Dur("elapsed_ms", time.Since(began)).
		Msg("zombie sweep done")
}
