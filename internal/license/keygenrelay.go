package license

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// keygenRelay follows the app-facing API of Keygen Relay (github.com/keygen-sh/keygen-relay,
// README "API" and SPEC.md; keygen.sh/docs/relay):
//
//	PUT /v1/nodes/{fingerprint}    claim a lease: 201 Created for a new lease, 202 Accepted
//	                               when an existing one was extended by the relay's --ttl;
//	                               410 Gone when no license is free; 409 Conflict when the
//	                               relay runs with --no-heartbeats and the node already has
//	                               a lease. Body: {"license_file": "<base64>",
//	                               "license_key": "...", "expires_in": <seconds>}
//	DELETE /v1/nodes/{fingerprint} release: 204 No Content, 404 Not Found when no lease.
//
// Repeating the PUT is the heartbeat. The fingerprint is the instance id; the relay needs no
// key of ours (it hands one out with the license file).
type keygenRelay struct {
	http httpCaller
	base string
}

type relayClaim struct {
	LicenseFile string `json:"license_file"`
	LicenseKey  string `json:"license_key"`
	ExpiresIn   *int64 `json:"expires_in"`
}

func (k *keygenRelay) nodeURL(instance string) string {
	return k.base + "/v1/nodes/" + url.PathEscape(instance)
}

func (k *keygenRelay) Activate(ctx context.Context, instance string) (Lease, error) {
	l, status, err := k.claim(ctx, instance)
	if err != nil {
		return Lease{}, fmt.Errorf("keygen-relay activate %s: %w", instance, err)
	}
	if status == http.StatusConflict {
		return Lease{}, fmt.Errorf("keygen-relay activate %s: %w: 409 Conflict: the node already holds a lease and the relay runs with --no-heartbeats (or the fingerprint is used in another pool)", instance, ErrPermanent)
	}
	return l, nil
}

func (k *keygenRelay) Heartbeat(ctx context.Context, instance string, old Lease) (Lease, error) {
	l, status, err := k.claim(ctx, instance)
	if err != nil {
		return Lease{}, fmt.Errorf("keygen-relay heartbeat %s: %w", instance, err)
	}
	if status == http.StatusConflict {
		// With --no-heartbeats the relay never culls a lease and refuses extensions: the
		// lease we hold is still ours and needs no further heartbeat.
		old.TTL = 0
		return old, nil
	}
	// A 201 here means the relay had culled our lease and has just leased us another
	// license: the caller gets the new file with it.
	return l, nil
}

// claim sends the PUT; a 409 comes back as a status for the caller to interpret.
func (k *keygenRelay) claim(ctx context.Context, instance string) (Lease, int, error) {
	u := k.nodeURL(instance)
	status, body, err := k.http.do(ctx, http.MethodPut, u, nil, nil)
	if err != nil {
		return Lease{}, 0, err
	}
	switch status {
	case http.StatusCreated, http.StatusAccepted:
	case http.StatusConflict:
		return Lease{}, status, nil
	case http.StatusGone:
		return Lease{}, status, fmt.Errorf("%w: 410 Gone: every license of the relay is leased", ErrNoSeats)
	default:
		return Lease{}, status, fmt.Errorf("%w: PUT %s: status %d: %s", statusClass(status), k.http.show(u), status, k.http.redact.excerpt(body))
	}
	var c relayClaim
	if err := json.Unmarshal(body, &c); err != nil {
		return Lease{}, status, fmt.Errorf("%w: PUT %s: status %d with a body that is not the relay's JSON", ErrPermanent, k.http.show(u), status)
	}
	l := Lease{ID: instance, FileKey: c.LicenseKey}
	if c.ExpiresIn != nil && *c.ExpiresIn > 0 {
		l.TTL = time.Duration(*c.ExpiresIn) * time.Second
	}
	if c.LicenseFile != "" {
		// The relay base64-encodes the file (Go's []byte JSON encoding).
		if l.File, err = base64.StdEncoding.DecodeString(c.LicenseFile); err != nil {
			return Lease{}, status, fmt.Errorf("%w: PUT %s: license_file is not base64", ErrPermanent, k.http.show(u))
		}
	}
	return l, status, nil
}

func (k *keygenRelay) Deactivate(ctx context.Context, instance string, _ Lease) error {
	u := k.nodeURL(instance)
	status, body, err := k.http.do(ctx, http.MethodDelete, u, nil, nil)
	if err != nil {
		return fmt.Errorf("keygen-relay deactivate %s: %w", instance, err)
	}
	switch status {
	case http.StatusNoContent, http.StatusOK:
		return nil
	case http.StatusNotFound:
		return fmt.Errorf("keygen-relay deactivate %s: %w: 404: the relay holds no lease for the node", instance, ErrNotFound)
	default:
		return fmt.Errorf("keygen-relay deactivate %s: %w: DELETE %s: status %d: %s", instance, statusClass(status), k.http.show(u), status, k.http.redact.excerpt(body))
	}
}
