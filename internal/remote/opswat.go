package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/svinit/svinit/internal/license"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// OPSWATActivationURL is OPSWAT's public activation server, the opswat preset's default URL.
const OPSWATActivationURL = "https://activation.dl.opswat.com"

// opswat follows the MetaDefender activation server API that OPSWAT documents for scripted
// license management ("Scripted license management" in the MetaDefender Core docs, and
// "How do I activate/deactivate a MetaDefender Core deployment via API calls?"):
//
//	GET /activation?key=<activation key>&deployment=<deployment id>&quantity=1
//	GET /deactivation?key=<activation key>&deployment=<deployment id>
//
// Success is 200 with the license file (a .yml) as the body. Failures are 200 too, with an
// error message in the body: the documented table shows `error: '<message>'`; a JSON
// {"error": "..."} body is read the same way. The deployment id is the instance id, so an
// activation is addressed by instance and needs no heartbeat.
type opswat struct {
	http httpCaller
	base string
	key  string
}

func (o *opswat) Activate(ctx context.Context, instance string) (license.Lease, error) {
	u := fmt.Sprintf("%s/activation?key=%s&deployment=%s&quantity=1", o.base, url.QueryEscape(o.key), url.QueryEscape(instance))
	body, msg, err := o.get(ctx, u)
	if err != nil {
		return license.Lease{}, fmt.Errorf("opswat activate %s: %w", instance, err)
	}
	if msg != "" {
		return license.Lease{}, fmt.Errorf("opswat activate %s: %w: server said %q", instance, opswatActivateClass(msg), msg)
	}
	return license.Lease{ID: instance, File: body}, nil
}

// Heartbeat has nothing to renew: an OPSWAT activation lasts until it is deactivated.
func (o *opswat) Heartbeat(_ context.Context, _ string, l license.Lease) (license.Lease, error) {
	return l, nil
}

func (o *opswat) Deactivate(ctx context.Context, instance string, _ license.Lease) error {
	u := fmt.Sprintf("%s/deactivation?key=%s&deployment=%s", o.base, url.QueryEscape(o.key), url.QueryEscape(instance))
	_, msg, err := o.get(ctx, u)
	if err != nil {
		return fmt.Errorf("opswat deactivate %s: %w", instance, err)
	}
	if msg != "" {
		class := license.ErrPermanent
		if opswatNotFound().MatchString(msg) {
			class = license.ErrNotFound
		}
		return fmt.Errorf("opswat deactivate %s: %w: server said %q", instance, class, msg)
	}
	return nil
}

// get sends a GET and returns the body, or the server's error message when the 200 carries
// one.
func (o *opswat) get(ctx context.Context, u string) (body []byte, errMsg string, err error) {
	status, body, err := o.http.do(ctx, http.MethodGet, u, nil, nil)
	if err != nil {
		return nil, "", err
	}
	if status != http.StatusOK {
		return nil, "", fmt.Errorf("%w: GET %s: status %d: %s", statusClass(status), o.http.show(u), status, o.http.redact.Excerpt(body))
	}
	return body, o.http.redact.Redact(opswatError(body)), nil
}

// opswatError returns the error message of a 200 that reports a failure, or "" for a
// license file.
func opswatError(body []byte) string {
	var j struct {
		Error any `json:"error"`
	}
	if json.Unmarshal(body, &j) == nil && j.Error != nil {
		if s, ok := j.Error.(string); ok {
			return nonEmpty(s)
		}
		b, _ := json.Marshal(j.Error)
		return string(b)
	}
	// The documented form, `error: '<message>'`, is a YAML mapping like the license file
	// itself; a license file has no top-level error key.
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || line == "---" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "error:"); ok {
			return nonEmpty(strings.Trim(strings.TrimSpace(rest), `'"`))
		}
		return ""
	}
	return ""
}

func nonEmpty(s string) string {
	if strings.TrimSpace(s) == "" {
		return "(empty error message)"
	}
	return s
}

// OPSWAT documents only the "invalid key/deployment/quantity" messages; which words a
// refusal for lack of seats uses is not published, so these patterns are a best guess and
// anything unrecognised counts as a permanent refusal (the pod restarts either way).
// They are compiled on first use, not at start-up: most runs have no license provider.
var (
	opswatNoSeats = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)no (more |available |free )?(activations?|seats?|licen[cs]es?)|maximum|exceed|limit (is )?reached|all .*(used|consumed|in use)|insufficient`)
	})
	opswatNotFound = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)not (found|activated|exist)|does not exist|doesn't exist|no (such )?(activation|deployment)|already deactivated`)
	})
)

func opswatActivateClass(msg string) error {
	if opswatNoSeats().MatchString(msg) && !strings.Contains(strings.ToLower(msg), "invalid") {
		return license.ErrNoSeats
	}
	return license.ErrPermanent
}
