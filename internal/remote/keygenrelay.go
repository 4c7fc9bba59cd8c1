package remote

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/svinit/svinit/internal/license"
	"net/http"
	"net/url"
	"time"
)

// keygenRelay follows the app-facing API of Keygen Relay (github.com/keygen-sh/keygen-relay,
// README "API" and "Pools", internal/server/handler.go; keygen.sh/docs/relay):
//
//	PUT /v1/nodes/{fingerprint}    claim: 201 Created with {"license_file": "<base64>",
//	                               "license_key": "...", "expires_in": <seconds>} for a new
//	                               lease; 202 Accepted with only the expiry when the node
//	                               already holds one, which the relay's --ttl extends; 410
//	                               Gone when no license is free; 409 Conflict when the relay
//	                               runs with --no-heartbeats and the node already has a lease,
//	                               or the node holds a license in another pool.
//	DELETE /v1/nodes/{fingerprint} release: 204 No Content, 404 Not Found when no lease.
//
// Both carry the Relay-Pool header with --license-pool: without it the relay claims and
// releases in its global pool only. Repeating the PUT is the heartbeat. The fingerprint is
// the instance id; the relay needs no key of ours (it hands one out with the license file).
type keygenRelay struct {
	http httpCaller
	base string
	pool string
}

type relayClaim struct {
	LicenseFile string `json:"license_file"`
	LicenseKey  string `json:"license_key"`
	ExpiresIn   *int64 `json:"expires_in"`
}

func (k *keygenRelay) nodeURL(instance string) string {
	return k.base + "/v1/nodes/" + url.PathEscape(instance)
}

func (k *keygenRelay) header() http.Header {
	if k.pool == "" {
		return nil
	}
	return http.Header{"Relay-Pool": {k.pool}}
}

func (k *keygenRelay) Activate(ctx context.Context, instance string) (license.Lease, error) {
	l, status, err := k.claim(ctx, instance)
	if err == nil && status == http.StatusAccepted {
		// The node already holds a license: a run that left no journal, or a second start
		// with the same id. An extension comes without the file, so give the license back
		// and claim afresh, which comes with the file and its key.
		if err = k.release(ctx, instance); err == nil || errors.Is(err, license.ErrNotFound) {
			l, status, err = k.claim(ctx, instance)
		}
		if err == nil && status == http.StatusAccepted {
			err = fmt.Errorf("%w: the relay still held the node right after releasing it: another node is using the fingerprint; give each instance its own --instance-id", license.ErrPermanent)
		}
	}
	if err != nil {
		return license.Lease{}, fmt.Errorf("keygen-relay activate %s: %w", instance, err)
	}
	if status == http.StatusConflict {
		return license.Lease{}, fmt.Errorf("keygen-relay activate %s: %w: 409 Conflict: the node already holds a lease and the relay runs with --no-heartbeats, or it holds one in another pool", instance, license.ErrPermanent)
	}
	return l, nil
}

func (k *keygenRelay) Heartbeat(ctx context.Context, instance string, old license.Lease) (license.Lease, error) {
	l, status, err := k.claim(ctx, instance)
	if err != nil {
		return license.Lease{}, fmt.Errorf("keygen-relay heartbeat %s: %w", instance, err)
	}
	switch status {
	case http.StatusConflict:
		// With --no-heartbeats the relay never culls a lease and refuses extensions: the
		// lease we hold is still ours and needs no further heartbeat.
		old.TTL = 0
		return old, nil
	case http.StatusAccepted:
		// Extended: the same license, whose file the answer does not repeat.
		if l.TTL > 0 {
			old.TTL = l.TTL
		}
		return old, nil
	}
	// A 201 here means the relay had culled the node and has just leased it a license,
	// perhaps another one: the caller gets its file and key.
	return l, nil
}

// claim sends the PUT; a 409 comes back as a status for the caller to interpret.
func (k *keygenRelay) claim(ctx context.Context, instance string) (license.Lease, int, error) {
	u := k.nodeURL(instance)
	status, body, err := k.http.do(ctx, http.MethodPut, u, k.header(), nil)
	if err != nil {
		return license.Lease{}, 0, err
	}
	switch status {
	case http.StatusCreated, http.StatusAccepted:
	case http.StatusConflict:
		return license.Lease{}, status, nil
	case http.StatusGone:
		return license.Lease{}, status, fmt.Errorf("%w: 410 Gone: every license of the relay is leased", license.ErrNoSeats)
	default:
		return license.Lease{}, status, k.refused(http.MethodPut, u, status, body)
	}
	var c relayClaim
	if err := json.Unmarshal(body, &c); err != nil {
		return license.Lease{}, status, fmt.Errorf("%w: PUT %s: status %d with a body that is not the relay's JSON", license.ErrPermanent, k.http.show(u), status)
	}
	// A secret from here on: no log line or error may show it.
	k.http.redact.Add(c.LicenseKey)
	l := license.Lease{ID: instance, FileKey: c.LicenseKey}
	if c.ExpiresIn != nil && *c.ExpiresIn > 0 {
		l.TTL = time.Duration(*c.ExpiresIn) * time.Second
	}
	if c.LicenseFile != "" {
		// The relay base64-encodes the file (Go's []byte JSON encoding).
		if l.File, err = base64.StdEncoding.DecodeString(c.LicenseFile); err != nil {
			return license.Lease{}, status, fmt.Errorf("%w: PUT %s: license_file is not base64", license.ErrPermanent, k.http.show(u))
		}
	}
	return l, status, nil
}

func (k *keygenRelay) Deactivate(ctx context.Context, instance string, _ license.Lease) error {
	if err := k.release(ctx, instance); err != nil {
		return fmt.Errorf("keygen-relay deactivate %s: %w", instance, err)
	}
	return nil
}

// release sends the DELETE.
func (k *keygenRelay) release(ctx context.Context, instance string) error {
	u := k.nodeURL(instance)
	status, body, err := k.http.do(ctx, http.MethodDelete, u, k.header(), nil)
	if err != nil {
		return err
	}
	switch status {
	case http.StatusNoContent, http.StatusOK:
		return nil
	case http.StatusNotFound:
		return fmt.Errorf("%w: 404: the relay holds no lease for the node", license.ErrNotFound)
	default:
		return k.refused(http.MethodDelete, u, status, body)
	}
}

// refused describes an answer the relay's API does not list.
func (k *keygenRelay) refused(method, u string, status int, body []byte) error {
	hint := ""
	if status == http.StatusBadRequest && k.pool != "" {
		hint = fmt.Sprintf(" (is there a pool %q, and does the relay serve it?)", k.pool)
	}
	return fmt.Errorf("%w: %s %s: status %d: %s%s", statusClass(status), method, k.http.show(u), status, k.http.redact.Excerpt(body), hint)
}
