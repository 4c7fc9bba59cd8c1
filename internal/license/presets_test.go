package license

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/svinit/svinit/internal/license/licensetest"
)

func TestOPSWATWireFormat(t *testing.T) {
	for _, yamlErrors := range []bool{false, true} {
		name := "json-errors"
		if yamlErrors {
			name = "yaml-errors"
		}
		t.Run(name, func(t *testing.T) {
			srv := licensetest.Start(t, licensetest.Options{Seats: 1, Keys: []string{testKey}, OPSWATYAMLErrors: yamlErrors})
			p := newProvider(t, Config{Provider: ProviderOPSWAT, URL: srv.URL + "/", Key: testKey})
			ctx := context.Background()

			lease, err := p.Activate(ctx, "0b5e6a1c-uid")
			if err != nil {
				t.Fatalf("Activate: %v", err)
			}
			if lease.ID != "0b5e6a1c-uid" || lease.TTL != 0 || !strings.Contains(string(lease.File), "deployment: 0b5e6a1c-uid") {
				t.Errorf("lease = %+v; want the deployment id, no TTL, the license file", lease)
			}
			req := srv.Requests()[0]
			if req.Method != "GET" || req.Path != "/activation" || req.Query.Get("key") != testKey ||
				req.Query.Get("deployment") != "0b5e6a1c-uid" || req.Query.Get("quantity") != "1" || len(req.Query) != 3 {
				t.Errorf("activation request = %s %s %v; want GET /activation?key=&deployment=&quantity=1", req.Method, req.Path, req.Query)
			}

			_, err = p.Activate(ctx, "other")
			if !errors.Is(err, ErrNoSeats) {
				t.Errorf("Activate with no seat free = %v; want ErrNoSeats", err)
			}

			if err := p.Deactivate(ctx, "0b5e6a1c-uid", lease); err != nil {
				t.Fatalf("Deactivate: %v", err)
			}
			req = srv.Requests()[2]
			if req.Method != "GET" || req.Path != "/deactivation" || req.Query.Get("key") != testKey || req.Query.Get("deployment") != "0b5e6a1c-uid" || len(req.Query) != 2 {
				t.Errorf("deactivation request = %s %s %v; want GET /deactivation?key=&deployment=", req.Method, req.Path, req.Query)
			}
			if err := p.Deactivate(ctx, "0b5e6a1c-uid", lease); !errors.Is(err, ErrNotFound) {
				t.Errorf("second Deactivate = %v; want ErrNotFound", err)
			}

			wrong := newProvider(t, Config{Provider: ProviderOPSWAT, URL: srv.URL, Key: "wrong-key"})
			_, err = wrong.Activate(ctx, "0b5e6a1c-uid")
			if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "Activation Key you provided is invalid") {
				t.Errorf("Activate with a wrong key = %v; want ErrPermanent quoting the server", err)
			}
			if strings.Contains(err.Error(), "wrong-key") {
				t.Errorf("error shows the key: %v", err)
			}
			noLeak(t, srv)
		})
	}
}

func TestKeygenRelayWireFormat(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1, TTL: 90 * time.Second})
	p := newProvider(t, Config{Provider: ProviderKeygenRelay, URL: srv.URL})
	ctx := context.Background()
	const fp = "ns.pod-1" // an instance id of the documented charset, sent as is

	lease, err := p.Activate(ctx, fp)
	if err != nil {
		t.Fatalf("Activate: %v", err)
	}
	if lease.ID != fp || lease.TTL != 90*time.Second || !strings.Contains(string(lease.File), "BEGIN LICENSE FILE") || lease.FileKey == "" {
		t.Errorf("lease = %+v; want TTL 90s from expires_in, the decoded file and its key", lease)
	}
	if !srv.Holds(fp) {
		t.Error("server holds no lease for the fingerprint")
	}
	if _, err := p.Heartbeat(ctx, fp, lease); err != nil {
		t.Errorf("Heartbeat: %v", err)
	}
	if n := srv.Count("PUT", "/v1/nodes/"+fp); n != 2 {
		t.Errorf("%d PUTs to /v1/nodes/{fingerprint}; want 2", n)
	}
	if srv.Activations() != 1 {
		t.Errorf("the heartbeat made a new activation instead of extending (202)")
	}
	if _, err := p.Activate(ctx, "other"); !errors.Is(err, ErrNoSeats) {
		t.Errorf("Activate with no license free = %v; want ErrNoSeats (410)", err)
	}
	if err := p.Deactivate(ctx, fp, lease); err != nil {
		t.Errorf("Deactivate: %v", err)
	}
	if err := p.Deactivate(ctx, fp, lease); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Deactivate = %v; want ErrNotFound (404)", err)
	}
	srv.SetUnavailable(true)
	if _, err := p.Activate(ctx, fp); !errors.Is(err, ErrRetryable) {
		t.Errorf("Activate against a 503 = %v; want ErrRetryable", err)
	}
	srv.SetUnavailable(false)
	noLeak(t, srv)
}

// With --no-heartbeats the relay answers a repeated claim with 409: the first claim stands
// and needs no renewal.
func TestKeygenRelayConflict(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "License claim conflict, heartbeat disabled", http.StatusConflict)
	}))
	defer ts.Close()
	p := newProvider(t, Config{Provider: ProviderKeygenRelay, URL: ts.URL})
	l, err := p.Heartbeat(context.Background(), "web-0", Lease{ID: "web-0", TTL: time.Minute, File: []byte("f")})
	if err != nil || l.TTL != 0 || string(l.File) != "f" {
		t.Errorf("Heartbeat on 409 = %+v, %v; want the lease kept with TTL 0", l, err)
	}
	if _, err := p.Activate(context.Background(), "web-0"); !errors.Is(err, ErrPermanent) {
		t.Errorf("Activate on 409 = %v; want ErrPermanent", err)
	}
}

func TestRequestTimeoutIsRetryable(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1})
	srv.SetActivationDelay(time.Minute)
	p := newProvider(t, Config{Provider: ProviderKeygenRelay, URL: srv.URL})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := p.Activate(ctx, "web-0")
	if !errors.Is(err, ErrRetryable) || !errors.Is(err, ErrUncertain) {
		t.Errorf("Activate that timed out = %v; want ErrRetryable, outcome unknown", err)
	}
	srv.Down()
	_, err = p.Activate(context.Background(), "web-0")
	if !errors.Is(err, ErrRetryable) || errors.Is(err, ErrUncertain) {
		t.Errorf("Activate refused = %v; want ErrRetryable, known not sent", err)
	}
}
