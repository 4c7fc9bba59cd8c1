package license

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/svinit/svinit/internal/k8s/fakeapi"
	"github.com/svinit/svinit/internal/lease"
)

// The Lease calls go through svinit-net, and its answers reach the Lease's logic as the
// classes it acts on: ErrNotFound, ErrConflict, and a 403 that is permanent.
func TestLeaseAPIThroughSvinitNet(t *testing.T) {
	api := fakeapi.Start(t)
	hc := testHelper()
	hc.Env = api.Env()
	a, err := NewLeaseAPI("web", hc, NewRedactor())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := a.Get(ctx); !errors.Is(err, lease.ErrNotFound) {
		t.Fatalf("get: %v, want lease.ErrNotFound", err)
	}
	created, err := a.Create(ctx, lease.Record{HolderIdentity: "me", LeaseDurationSeconds: 30})
	if err != nil || created.HolderIdentity != "me" {
		t.Fatalf("create: %+v, %v", created, err)
	}
	if _, err := a.Create(ctx, created); !errors.Is(err, lease.ErrConflict) {
		t.Errorf("second create: %v, want lease.ErrConflict", err)
	}
	if _, err := a.Update(ctx, created); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Update(ctx, created); !errors.Is(err, lease.ErrConflict) {
		t.Errorf("stale update: %v, want lease.ErrConflict", err)
	}
	api.Deny("update")
	_, err = a.Update(ctx, created)
	var p interface{ Permanent() bool }
	if !errors.As(err, &p) || !p.Permanent() || !strings.Contains(err.Error(), "update") {
		t.Errorf("refused update: %v, want a permanent error naming the permission", err)
	}
}

// Outside a pod the start is refused before anything is taken, with what to set.
func TestLeaseAPIOutsideAPodIsRefused(t *testing.T) {
	hc := testHelper()
	hc.Env = []string{"PATH=/usr/bin"}
	if _, err := NewLeaseAPI("web", hc, NewRedactor()); err == nil || !strings.Contains(err.Error(), "k8s-lease:web") || !strings.Contains(err.Error(), "KUBERNETES_SERVICE_HOST") {
		t.Errorf("NewLeaseAPI outside a pod: %v", err)
	}
}
