package license

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/svinit/svinit/internal/lease"
)

// LeaseAPI is the lease.API of --lock k8s-lease:NAME: svinit-net makes each call, so that PID
// 1 links no Kubernetes client. It lives beside the Ledger, the other svinit-net client.
type LeaseAPI struct {
	h   helper
	env []string
}

// NewLeaseAPI returns the calls on the Lease name of the pod's namespace, once svinit-net check
// found the pod's Kubernetes environment usable (a token, the CA, the API's address).
func NewLeaseAPI(name string, hc HelperConfig, redact *Redactor) (*LeaseAPI, error) {
	a := &LeaseAPI{h: helper{cfg: hc, redact: redact}, env: []string{EnvNetLease + "=" + name}}
	if err := a.h.check(a.env); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *LeaseAPI) call(ctx context.Context, action string, r *lease.Record) (lease.Record, error) {
	env := a.env
	if r != nil {
		b, err := json.Marshal(r)
		if err != nil {
			return lease.Record{}, err
		}
		env = append(env[:len(env):len(env)], EnvNetRecord+"="+string(b))
	}
	reply, err := a.h.call(ctx, env, "lease", action)
	switch {
	case err != nil && reply.Status == statusNotFound:
		return lease.Record{}, fmt.Errorf("%w: %w", lease.ErrNotFound, err)
	case err != nil && reply.Status == statusConflict:
		return lease.Record{}, fmt.Errorf("%w: %w", lease.ErrConflict, err)
	case err != nil:
		return lease.Record{}, err
	case reply.K8sLease == nil:
		return lease.Record{}, fmt.Errorf("lease %s: %s answered without the Lease", action, HelperName)
	}
	return *reply.K8sLease, nil
}

func (a *LeaseAPI) Get(ctx context.Context) (lease.Record, error) { return a.call(ctx, "get", nil) }
func (a *LeaseAPI) Create(ctx context.Context, r lease.Record) (lease.Record, error) {
	return a.call(ctx, "create", &r)
}
func (a *LeaseAPI) Update(ctx context.Context, r lease.Record) (lease.Record, error) {
	return a.call(ctx, "update", &r)
}

// The API's answers the Lease's logic acts on (net/http stays out of PID 1).
const (
	statusNotFound = 404
	statusConflict = 409
)
