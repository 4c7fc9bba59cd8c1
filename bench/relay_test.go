package main

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/svinit/svinit/internal/license"
	"github.com/svinit/svinit/internal/remote"
)

// TestRelayServesTheProvider runs svinit-net's keygen-relay provider against the bench's
// relay: a lease's life must be a claim with the file, an extension and a release, else
// the helper figure would time other requests than the ones it names.
func TestRelayServesTheProvider(t *testing.T) {
	relay, err := startRelay(3 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.close()
	p, err := remote.New(license.Config{Provider: license.ProviderKeygenRelay, URL: relay.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := p.Activate(ctx, "bench")
	if err != nil {
		t.Fatalf("activate: %v", err)
	}
	if l.TTL != 3*time.Second || !bytes.Equal(l.File, relayLicenseFile) || l.FileKey != relayLicenseKey {
		t.Errorf("activate: lease %+v, want a TTL of 3s, the file and its key", l)
	}
	if l, err = p.Heartbeat(ctx, "bench", l); err != nil || l.TTL != 3*time.Second {
		t.Errorf("heartbeat: lease %+v, %v; want it extended by 3s", l, err)
	}
	if err := p.Deactivate(ctx, "bench", l); err != nil {
		t.Errorf("deactivate: %v", err)
	}
	if err := p.Deactivate(ctx, "bench", l); !errors.Is(err, license.ErrNotFound) {
		t.Errorf("deactivate again: %v, want not found", err)
	}
	if got, want := relay.counts(), (relayCounts{Claims: 1, Extensions: 1, Releases: 1, NotFound: 1}); got != want {
		t.Errorf("the relay answered %+v, want %+v", got, want)
	}
}
