package license

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/svinit/svinit/internal/license/licensetest"
)

// A restart within the TTL, without the journal, finds the node still claimed: the relay
// answers 202 without a file. The provider must come back with a file and its key anyway.
func TestKeygenRelayRestartWithinTTLGetsALicenseFile(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1})
	ctx := context.Background()
	const fp = "ns.pod-1"
	if _, err := newProvider(t, Config{Provider: ProviderKeygenRelay, URL: srv.URL}).Activate(ctx, fp); err != nil {
		t.Fatalf("first run's Activate: %v", err)
	}
	// The first run died without releasing and without a journal; the second starts.
	lease, err := newProvider(t, Config{Provider: ProviderKeygenRelay, URL: srv.URL}).Activate(ctx, fp)
	if err != nil {
		t.Fatalf("Activate of a node the relay still holds: %v", err)
	}
	file, key, ok := srv.Claim(fp)
	if !ok {
		t.Fatal("the relay holds no license for the node after the second Activate")
	}
	if !bytes.Equal(lease.File, file) || lease.FileKey != key {
		t.Errorf("lease after a restart within the TTL: file %q key %q; want the relay's file and key", lease.File, lease.FileKey)
	}
	if n := srv.Live(); n != 1 {
		t.Errorf("%d licenses held; want 1", n)
	}
}

// A heartbeat the relay answers 202 (no file) keeps the license; after the relay culled the
// node, the next heartbeat's 201 carries another license, and the lease must carry it.
func TestKeygenRelayRenewalCarriesTheLicense(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 2})
	p := newProvider(t, Config{Provider: ProviderKeygenRelay, URL: srv.URL})
	ctx := context.Background()
	first, err := p.Activate(ctx, "web-0")
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := p.Heartbeat(ctx, "web-0", first)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(renewed.File, first.File) || renewed.FileKey != first.FileKey || renewed.TTL != first.TTL {
		t.Errorf("lease after a 202 heartbeat: file %q key %q ttl %s; want the license kept, file %q key %q ttl %s",
			renewed.File, renewed.FileKey, renewed.TTL, first.File, first.FileKey, first.TTL)
	}
	srv.Advance(licensetest.MinTTL * 2)                 // heartbeats missed: the relay culls the node
	if _, err := p.Activate(ctx, "web-1"); err != nil { // another node takes the freed license
		t.Fatal(err)
	}
	other, err := p.Heartbeat(ctx, "web-0", renewed)
	if err != nil {
		t.Fatal(err)
	}
	file, key, _ := srv.Claim("web-0")
	if key == first.FileKey {
		t.Fatalf("the double gave the culled node its old license back; the scenario needs another")
	}
	if !bytes.Equal(other.File, file) || other.FileKey != key {
		t.Errorf("lease after a heartbeat answered 201 with another license: file %q key %q; want %q and %q", other.File, other.FileKey, file, key)
	}
}

// The double refuses what the relay refuses, and a node is culled a TTL after its last
// heartbeat, not before.
func TestRelayDoubleTTL(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1, TTL: licensetest.MinTTL})
	p := newProvider(t, Config{Provider: ProviderKeygenRelay, URL: srv.URL})
	l, err := p.Activate(context.Background(), "web-0")
	if err != nil || l.TTL != licensetest.MinTTL {
		t.Fatalf("Activate = %+v, %v; want TTL %s", l, err, licensetest.MinTTL)
	}
	srv.Advance(licensetest.MinTTL - time.Second)
	if !srv.Holds("web-0") {
		t.Fatal("culled before the TTL passed")
	}
	srv.Advance(time.Second)
	if srv.Holds("web-0") || srv.Lapsed() != 1 {
		t.Fatal("not culled once the TTL passed without a heartbeat")
	}
}

// Licenses in a named pool are reached with the Relay-Pool header, on the claim and on the
// release: without it the relay looks in the global pool, and the release would leak.
func TestKeygenRelayPoolHeader(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Pools: map[string]int{"prod": 1}})
	p := newProvider(t, Config{Provider: ProviderKeygenRelay, URL: srv.URL, Pool: "prod"})
	ctx := context.Background()
	l, err := p.Activate(ctx, "web-0")
	if err != nil {
		t.Fatalf("Activate in pool prod: %v", err)
	}
	if _, err := p.Heartbeat(ctx, "web-0", l); err != nil {
		t.Fatalf("Heartbeat in pool prod: %v", err)
	}
	if err := p.Deactivate(ctx, "web-0", l); err != nil {
		t.Fatalf("Deactivate in pool prod: %v", err)
	}
	for _, r := range srv.Requests() {
		if got := r.Header.Get("Relay-Pool"); got != "prod" {
			t.Errorf("%s %s sent Relay-Pool %q; want prod", r.Method, r.Path, got)
		}
	}
	noLeak(t, srv)
}

// The relay's license key is a secret handed out at run time: from the moment the provider
// reads it, the redactor that guards svinit's log hides it.
func TestKeygenRelayLicenseKeyIsRedacted(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1})
	red := NewRedactor(testKey)
	p := newProvider(t, Config{Provider: ProviderKeygenRelay, URL: srv.URL, Redactor: red})
	l, err := p.Activate(context.Background(), "web-0")
	if err != nil {
		t.Fatal(err)
	}
	if l.FileKey == "" {
		t.Fatal("no license key in the lease")
	}
	if got := red.Redact("key=" + l.FileKey + " user=" + testKey); got != "key="+Redacted+" user="+Redacted {
		t.Errorf("redacted line = %q; want both keys hidden", got)
	}
}

// What the supervisor writes for the child comes through OnLease: a heartbeat's lease must
// keep the license file and key, and carry the new ones when the relay leased another.
func TestManagerPublishesTheRelaysLicense(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 2, TTL: time.Second, ShortTTL: true})
	log, _ := testLog(t)
	var (
		mu        sync.Mutex
		published []Lease
	)
	last := func() Lease {
		mu.Lock()
		defer mu.Unlock()
		return published[len(published)-1]
	}
	opts := fastOptions(ProviderKeygenRelay)
	opts.OnLease = func(l Lease) {
		mu.Lock()
		defer mu.Unlock()
		published = append(published, l)
	}
	p := newProvider(t, Config{Provider: ProviderKeygenRelay, URL: srv.URL})
	// web-1 holds the oldest license while web-0 starts, and gives it back later: once
	// culled, web-0's claim gets the oldest free license, another than its own.
	other, err := p.Activate(context.Background(), "web-1")
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(p, nil, "web-0", log, opts)
	first, err := m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop(context.Background())
	waitFor(t, "a heartbeat", 10*time.Second, func() bool { return srv.Count("PUT", "/v1/nodes/web-0") >= 2 })
	waitFor(t, "the heartbeat's lease", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(published) >= 2
	})
	if l := last(); !bytes.Equal(l.File, first.File) || l.FileKey != first.FileKey {
		t.Fatalf("lease published after a heartbeat: file %q key %q; want the license kept", l.File, l.FileKey)
	}
	// On a busy machine web-1's unrenewed lease may have lapsed already: free either way.
	if err := p.Deactivate(context.Background(), "web-1", other); err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	srv.Lapse("web-0")
	waitFor(t, "the new license to be published", 10*time.Second, func() bool {
		l := last()
		_, key, ok := srv.Claim("web-0")
		return ok && l.FileKey == key && key != first.FileKey && len(l.File) > 0
	})
}

// Every instance id the relay's router can route (no slash) reaches it as the fingerprint
// it is: the path segment is escaped and the relay decodes it.
func TestKeygenRelayFingerprintRoundTrips(t *testing.T) {
	for _, id := range []string{"ns.pod-1", "web-0_a~b", "pod 1", "50%", "ünï"} {
		srv := licensetest.Start(t, licensetest.Options{Seats: 1})
		p := newProvider(t, Config{Provider: ProviderKeygenRelay, URL: srv.URL})
		l, err := p.Activate(context.Background(), id)
		if err != nil {
			t.Errorf("Activate %q: %v", id, err)
			continue
		}
		if !srv.Holds(id) {
			t.Errorf("the relay holds no license for %q", id)
		}
		if err := p.Deactivate(context.Background(), id, l); err != nil {
			t.Errorf("Deactivate %q: %v", id, err)
		}
		noLeak(t, srv)
	}
}
