package k8s_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/svinit/svinit/internal/k8s"
	"github.com/svinit/svinit/internal/k8s/fakeapi"
	"github.com/svinit/svinit/internal/lease"
)

func client(t *testing.T, api *fakeapi.Server) *k8s.Client {
	t.Helper()
	c, err := k8s.InCluster(api.Lookup)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The Lease calls speak the API: 404 then create, the version read carried by the update,
// 409 on a stale one, and the spec's fields in the API's own names and formats.
func TestLeaseCallsAgainstTheAPI(t *testing.T) {
	api := fakeapi.Start(t)
	c := client(t, api)
	ctx := context.Background()
	if _, err := c.GetLease(ctx, "web"); !errors.Is(err, k8s.ErrNotFound) {
		t.Fatalf("get of an absent Lease: %v, want ErrNotFound", err)
	}
	now := time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC)
	created, err := c.CreateLease(ctx, "web", lease.Record{HolderIdentity: "web-0_0a1b2c3d", LeaseDurationSeconds: 30, AcquireTime: now, RenewTime: now})
	if err != nil || created.ResourceVersion == "" || created.HolderIdentity != "web-0_0a1b2c3d" {
		t.Fatalf("create: %+v, %v", created, err)
	}
	if _, err := c.CreateLease(ctx, "web", lease.Record{HolderIdentity: "rival"}); !errors.Is(err, k8s.ErrConflict) {
		t.Errorf("second create: %v, want ErrConflict", err)
	}
	spec := api.Spec("web")
	if spec["renewTime"] != "2026-12-02T10:00:00.123456Z" || spec["leaseDurationSeconds"] != float64(30) || spec["holderIdentity"] != "web-0_0a1b2c3d" {
		t.Errorf("spec as stored: %v; want MicroTime and the API's field names", spec)
	}

	got, err := c.GetLease(ctx, "web")
	if err != nil || got.ResourceVersion != created.ResourceVersion || !got.RenewTime.Equal(now.Truncate(time.Microsecond)) || got.LeaseDurationSeconds != 30 {
		t.Fatalf("get: %+v, %v", got, err)
	}
	next := got
	next.RenewTime, next.LeaseTransitions = now.Add(time.Second), 2
	updated, err := c.UpdateLease(ctx, "web", next)
	if err != nil || updated.ResourceVersion == got.ResourceVersion || updated.LeaseTransitions != 2 {
		t.Fatalf("update: %+v, %v", updated, err)
	}
	if _, err := c.UpdateLease(ctx, "web", next); !errors.Is(err, k8s.ErrConflict) {
		t.Errorf("update with the stale version %s: %v, want ErrConflict", next.ResourceVersion, err)
	}
	cleared := updated
	cleared.HolderIdentity = ""
	if _, err := c.UpdateLease(ctx, "web", cleared); err != nil {
		t.Fatal(err)
	}
	if h, _ := api.Holder("web"); h != "" {
		t.Errorf("holder %q after clearing", h)
	}
	if _, err := c.UpdateLease(ctx, "gone", cleared); !errors.Is(err, k8s.ErrNotFound) {
		t.Errorf("update of an absent Lease: %v, want ErrNotFound", err)
	}
}

// A 403 says which permission the Role lacks, with the Lease's name where RBAC can narrow it
// and without where it cannot (create), and is permanent.
func TestLeaseForbiddenNamesThePermission(t *testing.T) {
	api := fakeapi.Start(t)
	c := client(t, api)
	api.Deny("update")
	api.Deny("create")
	_, err := c.UpdateLease(context.Background(), "web", lease.Record{ResourceVersion: "1"})
	var ae *k8s.APIError
	if !errors.As(err, &ae) || !ae.Permanent() || !errors.Is(err, k8s.ErrForbidden) ||
		!strings.Contains(err.Error(), `"update" on leases (resourceNames: [web])`) || !strings.Contains(err.Error(), "examples/k8s/lease") {
		t.Errorf("update refused: %v", err)
	}
	_, err = c.CreateLease(context.Background(), "web", lease.Record{})
	if err == nil || strings.Contains(err.Error(), "resourceNames") || !strings.Contains(err.Error(), `"create" on leases`) {
		t.Errorf("create refused: %v", err)
	}
}
