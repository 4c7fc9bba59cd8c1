package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/svinit/svinit/internal/license"
	"io"
	"net"
	"net/http"
	"net/url"
)

// httpCaller sends one request to a license server and turns transport failures into
// classified errors. Everything it puts in an error goes through redact, as URLs carry the
// key in their query string and *url.Error would print them whole.
type httpCaller struct {
	client *http.Client
	redact *license.Redactor
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
		return 0, nil, fmt.Errorf("%w: %s: cannot build the request; check the URL template", license.ErrPermanent, shown)
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
	data, err := io.ReadAll(io.LimitReader(resp.Body, license.MaxResponse+1))
	if err != nil {
		return 0, nil, c.transportError(ctx, shown, err)
	}
	if len(data) > license.MaxResponse {
		return 0, nil, fmt.Errorf("%w: %s: response larger than %d bytes", license.ErrPermanent, shown, license.MaxResponse)
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
		return fmt.Errorf("%w: %s: %s", license.ErrRetryable, shown, cause)
	}
	return fmt.Errorf("%w: %w: %s: %s", license.ErrRetryable, license.ErrUncertain, shown, cause)
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
	return c.redact.Redact(license.RedactURL(rawURL))
}

// statusClass says what a status that the provider does not handle itself means.
func statusClass(status int) error {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly,
		status == http.StatusTooManyRequests, status >= 500:
		return license.ErrRetryable
	default:
		return license.ErrPermanent
	}
}
