package license

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// MaxResponse bounds what is read of a license server's answer or a command's output:
// license files are a few kilobytes.
const MaxResponse = 4 << 20

// HTTPConfig configures the generic http provider, for a license server that has no preset.
// Method, URL, header values and body are Go text/templates over
//
//	{{.URL}}       the base URL (--license-url)
//	{{.Key}}       the license key
//	{{.Instance}}  the instance id
//	{{.ID}}        the activation id (empty when activating)
//
// with the functions query, path and json, which escape a value for a query string, a path
// segment or the inside of a JSON string: {{.URL}}/activate?key={{query .Key}}.
type HTTPConfig struct {
	Activate HTTPRequest
	// Heartbeat is optional: without it, a lease with a TTL is renewed by repeating Activate.
	Heartbeat  HTTPRequest
	Deactivate HTTPRequest
	// SuccessStatus lists the statuses that mean success; empty means any 2xx.
	SuccessStatus []int
	// ErrorField names a JSON field that, when present and not empty in a successful
	// response, means the request failed: for servers that report errors with a 200.
	ErrorField string
	// Fields of the activation (and heartbeat) response, as dotted paths into its JSON
	// (data.attributes.expiry): the activation id (default: the instance id), the lease TTL
	// in seconds or as a Go duration, the license's expiry (RFC 3339 or Unix seconds), and
	// the license file as a string ("." takes the whole body, which then is not JSON).
	IDField, TTLField, ExpiresField, FileField string
	// NoSeatsStatus lists the statuses of an activation that mean no seat is free (e.g. 409
	// or 410). NoSeatsMatch is a regular expression: an error message it matches means the
	// same.
	NoSeatsStatus []int
	NoSeatsMatch  string
}

// HTTPRequest is one templated request.
type HTTPRequest struct {
	// Method defaults to GET without a body and POST with one.
	Method string
	URL    string
	Header map[string]string
	Body   string
}

// Empty reports whether r is not configured at all.
func (r HTTPRequest) Empty() bool {
	return r.URL == "" && r.Method == "" && r.Body == "" && len(r.Header) == 0
}

// ParseTTL reads a lease TTL: seconds ("60", "1.5") or a Go duration ("1m").
func ParseTTL(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 {
			return 0, fmt.Errorf("negative TTL %q", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("TTL %q is neither seconds nor a duration like 1m30s", s)
	}
	return d, nil
}

// ParseExpires reads a license expiry: RFC 3339 or Unix seconds.
func ParseExpires(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("expiry %q is neither RFC 3339 nor Unix seconds", s)
	}
	return t, nil
}

// Excerpt is a short printable excerpt of a response body for an error message. The secrets
// go first: replacing a non-printable character or cutting the text before that would leave
// a key with a tab, or the part of a key before the cut, for anyone to read.
func (r *Redactor) Excerpt(body []byte) string {
	s := strings.TrimSpace(r.Redact(string(body)))
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i] + " ..."
	}
	const max = 200
	if len(s) > max {
		s = s[:max] + " ..."
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
}

// ParseBaseURL checks a server's base URL and returns it without a trailing slash.
func ParseBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("want an absolute http:// or https:// URL, e.g. https://licenses.example.com")
	}
	return strings.TrimRight(raw, "/"), nil
}

// RedactURL hides a password in the URL's user info; the key is taken care of by value.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
