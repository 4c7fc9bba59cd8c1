package license

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// netProvider is a provider whose requests svinit-net sends: opswat, keygen-relay and http.
// Each call is one run of the helper.
type netProvider struct {
	h    helper
	name string
	env  []string // the provider's settings and the key, under the contract's names

	mu      sync.Mutex
	learned []string // file keys from earlier answers, for the helper to redact too
}

// newNetProvider checks cfg with svinit-net check and returns the provider.
func newNetProvider(cfg Config, base string, redact *Redactor) (*netProvider, error) {
	http, err := json.Marshal(cfg.HTTP)
	if err != nil {
		return nil, err
	}
	env := []string{EnvNetProvider + "=" + cfg.Provider, EnvNetHTTPConfig + "=" + string(http)}
	env = appendSet(env, EnvURL, base)
	env = appendSet(env, EnvKey, cfg.Key)
	env = appendSet(env, EnvNetPool, cfg.Pool)
	n := &netProvider{h: helper{cfg: cfg.Helper, redact: redact}, name: cfg.Provider, env: env}
	if err := n.h.check(env); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *netProvider) Activate(ctx context.Context, instance string) (Lease, error) {
	return n.call(ctx, "activate", instance, Lease{ID: instance})
}

func (n *netProvider) Heartbeat(ctx context.Context, instance string, l Lease) (Lease, error) {
	return n.call(ctx, "heartbeat", instance, l)
}

func (n *netProvider) Deactivate(ctx context.Context, instance string, l Lease) error {
	_, err := n.call(ctx, "deactivate", instance, l)
	return err
}

// call runs svinit-net license action and classifies its exit as the exec contract does.
func (n *netProvider) call(ctx context.Context, action, instance string, prev Lease) (Lease, error) {
	env := append(slices.Clip(n.env), EnvInstanceID+"="+instance)
	if action != "activate" {
		env = appendSet(env, EnvActivationID, prev.ID)
	}
	if action == "heartbeat" {
		env = append(env, EnvNetTTL+"="+prev.TTL.String())
	}
	n.mu.Lock()
	if len(n.learned) > 0 {
		b, _ := json.Marshal(n.learned)
		env = append(env, EnvNetRedact+"="+string(b))
	}
	n.mu.Unlock()
	what := fmt.Sprintf("%s %s %s", n.name, action, instance)
	started := time.Now()
	r, code, err := n.h.run(ctx, env, "license", action)
	switch {
	case ctx.Err() != nil:
		return Lease{}, cutShort(ctx, what, started)
	case errors.As(err, new(*helperError)):
		return Lease{}, fmt.Errorf("%s: %w", what, err)
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.ENOMEM): // out of processes or memory, for now
		return Lease{}, fmt.Errorf("%s: %w: cannot start %s: %s", what, ErrRetryable, HelperName, n.h.redact.Redact(err.Error()))
	case err != nil:
		return Lease{}, fmt.Errorf("%s: %w: cannot start %s: %s", what, ErrPermanent, HelperName, n.h.redact.Redact(err.Error()))
	case code == 0:
		l, err := parseLease(what, r.Lease, prev, n.h.redact)
		if err != nil { // the server answered, and may hold a seat svinit cannot account for
			return Lease{}, fmt.Errorf("%w: %w", ErrUncertain, err)
		}
		n.learn(l.FileKey)
		return l, nil
	}
	return Lease{}, n.h.replyError(what, exitClass(code), code, r)
}

// learn keeps a file key for the helper to redact in later calls.
func (n *netProvider) learn(key string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if key != "" && !slices.Contains(n.learned, key) {
		n.learned = append(n.learned, key)
	}
}

// exitClass is the error class of an exit code of the exec contract.
func exitClass(code int) error {
	switch code {
	case execTempFail:
		return ErrRetryable
	case execNoSeats:
		return ErrNoSeats
	case execNotFound:
		return ErrNotFound
	}
	return ErrPermanent
}

// ExitCodeOf is the exit code of the exec contract that says err's class: what svinit-net
// exits with after a failed call.
func ExitCodeOf(err error) int {
	switch {
	case errors.Is(err, ErrNoSeats):
		return execNoSeats
	case errors.Is(err, ErrNotFound):
		return execNotFound
	case errors.Is(err, ErrRetryable):
		return execTempFail
	}
	return ExitConfig
}
