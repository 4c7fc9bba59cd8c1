package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/svinit/svinit/internal/lease"
)

// microTime is the API's MicroTime format.
const microTime = "2006-01-02T15:04:05.000000Z07:00"

// leaseObject is a coordination.k8s.io/v1 Lease. An update replaces the whole object: svinit
// owns it, its labels included.
type leaseObject struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       leaseSpec  `json:"spec"`
}

type leaseSpec struct {
	HolderIdentity       string `json:"holderIdentity,omitempty"`
	LeaseDurationSeconds int    `json:"leaseDurationSeconds,omitempty"`
	AcquireTime          string `json:"acquireTime,omitempty"`
	RenewTime            string `json:"renewTime,omitempty"`
	LeaseTransitions     int    `json:"leaseTransitions,omitempty"`
}

func leaseBody(name string, r lease.Record) ([]byte, error) {
	format := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(microTime)
	}
	return json.Marshal(leaseObject{
		APIVersion: "coordination.k8s.io/v1", Kind: "Lease",
		Metadata: objectMeta{Name: name, ResourceVersion: r.ResourceVersion, Labels: map[string]string{"app.kubernetes.io/managed-by": "svinit"}},
		Spec: leaseSpec{HolderIdentity: r.HolderIdentity, LeaseDurationSeconds: r.LeaseDurationSeconds,
			AcquireTime: format(r.AcquireTime), RenewTime: format(r.RenewTime), LeaseTransitions: r.LeaseTransitions},
	})
}

func (o leaseObject) record() (lease.Record, error) {
	r := lease.Record{HolderIdentity: o.Spec.HolderIdentity, LeaseDurationSeconds: o.Spec.LeaseDurationSeconds,
		LeaseTransitions: o.Spec.LeaseTransitions, ResourceVersion: o.Metadata.ResourceVersion}
	for _, t := range []struct {
		field string
		in    string
		out   *time.Time
	}{{"acquireTime", o.Spec.AcquireTime, &r.AcquireTime}, {"renewTime", o.Spec.RenewTime, &r.RenewTime}} {
		if t.in == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339Nano, t.in)
		if err != nil {
			return r, fmt.Errorf("kubernetes: lease %s: %s %q: %w", o.Metadata.Name, t.field, t.in, err)
		}
		*t.out = v
	}
	return r, nil
}

// leaseCall sends one Lease request and decodes the Lease the API answers with.
func (c *Client) leaseCall(ctx context.Context, method, verb, resource string, body []byte) (lease.Record, error) {
	var obj leaseObject
	contentType := ""
	if body != nil {
		contentType = "application/json"
	}
	if err := c.call(ctx, method, verb, resource, contentType, body, &obj); err != nil {
		return lease.Record{}, err
	}
	return obj.record()
}

// GetLease reads the Lease name; ErrNotFound when there is none.
func (c *Client) GetLease(ctx context.Context, name string) (lease.Record, error) {
	return c.leaseCall(ctx, http.MethodGet, "get", "leases/"+name, nil)
}

// CreateLease creates the Lease name holding r; ErrConflict when it exists.
func (c *Client) CreateLease(ctx context.Context, name string, r lease.Record) (lease.Record, error) {
	r.ResourceVersion = ""
	body, err := leaseBody(name, r)
	if err != nil {
		return lease.Record{}, err
	}
	return c.leaseCall(ctx, http.MethodPost, "create", "leases", body)
}

// UpdateLease replaces the Lease name with r, if r.ResourceVersion is still its version:
// ErrConflict when someone wrote it since, ErrNotFound when it is gone.
func (c *Client) UpdateLease(ctx context.Context, name string, r lease.Record) (lease.Record, error) {
	body, err := leaseBody(name, r)
	if err != nil {
		return lease.Record{}, err
	}
	return c.leaseCall(ctx, http.MethodPut, "update", "leases/"+name, body)
}
