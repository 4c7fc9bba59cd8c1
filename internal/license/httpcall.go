package license

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"unicode"
)

// maxResponse bounds what is read of a response: license files are a few kilobytes.
const maxResponse = 4 << 20

// httpCaller sends one request to a license server and turns transport failures into
// classified errors. Everything it puts in an error goes through redact, as URLs carry the
// key in their query string and *url.Error would print them whole.
type httpCaller struct {
	client *http.Client
	redact *Redactor
}

// do sends the request and returns the status and body. Only transport failures are
// errors here; what a status means is up to the provider.
func (c *httpCaller) do(ctx context.Context, method, rawURL string, header http.Header, body []byte) (int, []byte, error) {
	shown := method + " " + c.show(rawURL)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		// Only a template can produce an unusable URL; the cause would quote it whole.
		return 0, nil, fmt.Errorf("%w: %s: cannot build the request; check the URL template", ErrPermanent, shown)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, c.transportError(ctx, shown, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return 0, nil, c.transportError(ctx, shown, err)
	}
	if len(data) > maxResponse {
		return 0, nil, fmt.Errorf("%w: %s: response larger than %d bytes", ErrPermanent, shown, maxResponse)
	}
	return resp.StatusCode, data, nil
}

func (c *httpCaller) transportError(ctx context.Context, shown string, err error) error {
	// A request that never left (refused, unresolvable) cannot have activated anything;
	// one that left and got no answer may have.
	var opErr *net.OpError
	var dnsErr *net.DNSError
	notSent := (errors.As(err, &opErr) && opErr.Op == "dial") || errors.As(err, &dnsErr)
	var cause string
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		cause = "timed out"
	case errors.Is(ctx.Err(), context.Canceled):
		cause = "cancelled"
	default:
		cause = c.redact.Redact(transportCause(err))
	}
	if notSent {
		return fmt.Errorf("%w: %s: %s", ErrRetryable, shown, cause)
	}
	return fmt.Errorf("%w: %w: %s: %s", ErrRetryable, errUncertain, shown, cause)
}

// transportCause is the error text without the URL that *url.Error prefixes.
func transportCause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// show is rawURL fit for an error message or a log line.
func (c *httpCaller) show(rawURL string) string {
	return c.redact.Redact(redactURL(rawURL))
}

// redactURL hides a password in the URL's user info; the key is taken care of by value.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// statusClass says what a status that the provider does not handle itself means.
func statusClass(status int) error {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly,
		status == http.StatusTooManyRequests, status >= 500:
		return ErrRetryable
	default:
		return ErrPermanent
	}
}

// excerpt is a short printable excerpt of a response body for an error message. The secrets
// go first: replacing a non-printable character or cutting the text before that would leave
// a key with a tab, or the part of a key before the cut, for anyone to read.
func (r *Redactor) excerpt(body []byte) string {
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

// parseBaseURL checks a server's base URL and returns it without a trailing slash.
func parseBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("want an absolute http:// or https:// URL, e.g. https://licenses.example.com")
	}
	return strings.TrimRight(raw, "/"), nil
}
