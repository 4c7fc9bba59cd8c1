package netcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/svinit/svinit/internal/check"
	"github.com/svinit/svinit/internal/license"
)

// maxProbeBody bounds what is read of a check's answer, which is never shown: enough for
// the connection to be reused by nobody, and no more.
const maxProbeBody = 64 << 10

// probe runs one attempt of the network check svinit hands over.
func (c call) probe() int {
	chk, err := check.Parse(c.env(license.EnvNetCheck))
	if err == nil && chk.Kind != check.TCP && chk.Kind != check.HTTP {
		err = fmt.Errorf("check %s: only tcp:// and http(s):// checks are probed by %s", chk, license.HelperName)
	}
	if err != nil {
		return c.reply(license.HelperReply{Error: c.redact.Redact(err.Error())}, license.ExitHelperUsage)
	}
	ctx, cancel, err := c.deadline()
	if err != nil {
		return c.reply(license.HelperReply{Error: err.Error()}, license.ExitHelperUsage)
	}
	defer cancel()
	if chk.Kind == check.TCP {
		err = probeTCP(ctx, chk)
	} else {
		err = probeHTTP(ctx, chk)
	}
	if err != nil {
		return c.reply(license.HelperReply{Error: c.redact.Redact(err.Error())}, license.ExitProbeFailed)
	}
	return c.reply(license.HelperReply{}, 0)
}

func probeTCP(ctx context.Context, chk check.Check) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", chk.Target)
	if err != nil {
		return err
	}
	return conn.Close()
}

// probeHTTP passes on a 2xx answer to a GET; the answer's body is neither kept nor shown.
func probeHTTP(ctx context.Context, chk check.Check) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, chk.Raw(), nil)
	if err != nil {
		return fmt.Errorf("GET: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text quotes the URL as given
		}
		return fmt.Errorf("GET: %w", err) // the caller names the check
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeBody))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}
