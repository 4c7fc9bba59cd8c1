// Package netcmd is svinit-net: it makes one of svinit's network calls per run and answers
// on stdout with one license.HelperReply, under the contract license.HelperName describes.
// It keeps no state between runs; svinit owns the journal, the deadlines and the retries.
package netcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/svinit/svinit/internal/buildinfo"
	"github.com/svinit/svinit/internal/k8s"
	"github.com/svinit/svinit/internal/license"
	"github.com/svinit/svinit/internal/remote"
)

// Run runs svinit-net with args (os.Args) and the environment lookup, and returns its exit
// code. svinit bounds every run with its own deadline, and kills the run when it passes.
func Run(args []string, lookup func(string) (string, bool), stdout, stderr io.Writer, version string) int {
	c := call{lookup: lookup, out: stdout, version: version, redact: license.NewRedactor()}
	if v, ok := lookup(license.EnvKey); ok {
		c.redact.Add(v)
	}
	// The secrets svinit learned from earlier answers (a relay's license_key): an error's
	// excerpt is cut here, and a cut secret would no longer be recognised by svinit.
	var learned []string
	json.Unmarshal([]byte(c.env(license.EnvNetRedact)), &learned)
	c.redact.Add(learned...)
	switch {
	case len(args) == 2 && (args[1] == "--version" || args[1] == "version"):
		fmt.Fprintln(stdout, buildinfo.Describe(license.HelperName, version))
		return 0
	case len(args) == 2 && args[1] == "check":
		return c.check()
	case len(args) == 3 && args[1] == "license":
		return c.license(args[2])
	case len(args) == 3 && args[1] == "ledger":
		return c.ledger(args[2])
	case len(args) == 2 && args[1] == "probe":
		return c.probe()
	}
	fmt.Fprintf(stderr, "usage: %s check | license activate|heartbeat|deactivate | ledger load|save|delete|others|put|remove | probe\n"+
		"%s makes svinit's network calls; svinit runs it, with its settings in the environment.\n", license.HelperName, license.HelperName)
	return license.ExitHelperUsage
}

// call is one run.
type call struct {
	lookup  func(string) (string, bool)
	out     io.Writer
	version string
	redact  *license.Redactor
}

func (c call) env(name string) string {
	v, _ := c.lookup(name)
	return v
}

// reply writes r and returns code.
func (c call) reply(r license.HelperReply, code int) int {
	if err := json.NewEncoder(c.out).Encode(r); err != nil {
		return license.ExitConfig
	}
	return code
}

// failed answers a license request's err, with the exit code of its class.
func (c call) failed(err error) int {
	r := license.HelperReply{Error: c.redact.Redact(err.Error()), Uncertain: errors.Is(err, license.ErrUncertain)}
	return c.reply(r, license.ExitCodeOf(err))
}

// ledgerFailed answers a ledger call's err: permanent (a permission the pod lacks) or to be
// tried again.
func (c call) ledgerFailed(err error) int {
	var p interface{ Permanent() bool }
	r := license.HelperReply{Error: c.redact.Redact(err.Error()), Permanent: errors.As(err, &p) && p.Permanent()}
	if r.Permanent {
		return c.reply(r, license.ExitConfig)
	}
	return c.reply(r, license.ExitTempFail)
}

// check reports every problem of the configuration it is given, and sends nothing.
func (c call) check() int {
	var problems []string
	add := func(err error) {
		var me *multierror.Error
		if errors.As(err, &me) {
			for _, e := range me.Errors {
				problems = append(problems, c.redact.Redact(e.Error()))
			}
		} else if err != nil {
			problems = append(problems, c.redact.Redact(err.Error()))
		}
	}
	if c.env(license.EnvNetProvider) != "" {
		_, err := c.provider()
		add(err)
	}
	if c.env(license.EnvNetLedger) != "" {
		_, err := c.newLedger()
		add(err)
	}
	code := 0
	if len(problems) > 0 {
		code = license.ExitHelperUsage
	}
	return c.reply(license.HelperReply{Protocol: license.HelperProtocol, Version: c.version, Problems: problems}, code)
}

// provider is the license provider the environment configures.
func (c call) provider() (license.Provider, error) {
	cfg := license.Config{
		Provider: c.env(license.EnvNetProvider),
		URL:      c.env(license.EnvURL),
		Key:      c.env(license.EnvKey),
		Pool:     c.env(license.EnvNetPool),
		Redactor: c.redact,
	}
	if raw := c.env(license.EnvNetHTTPConfig); raw != "" {
		if err := decodeStrict(raw, &cfg.HTTP); err != nil {
			return nil, fmt.Errorf("--license-http-config: %w", err)
		}
	}
	return remote.New(cfg, nil)
}

// license makes one license request.
func (c call) license(action string) int {
	p, err := c.provider()
	if err != nil {
		return c.failed(fmt.Errorf("%w: %w", license.ErrPermanent, err))
	}
	ctx := context.Background()
	instance := c.env(license.EnvInstanceID)
	old := license.Lease{ID: c.env(license.EnvActivationID)}
	if ttl := c.env(license.EnvNetTTL); ttl != "" {
		if old.TTL, err = time.ParseDuration(ttl); err != nil {
			return c.failed(fmt.Errorf("%w: %s %q: %v", license.ErrPermanent, license.EnvNetTTL, ttl, err))
		}
	}
	var l license.Lease
	switch action {
	case "activate":
		l, err = p.Activate(ctx, instance)
	case "heartbeat":
		l, err = p.Heartbeat(ctx, instance, old)
	case "deactivate":
		err = p.Deactivate(ctx, instance, old)
	default:
		return c.failed(fmt.Errorf("%w: license action %q unknown", license.ErrPermanent, action))
	}
	if err != nil {
		return c.failed(err)
	}
	b, err := license.LeaseJSON(l)
	if err != nil { // the server may hold the seat all the same
		return c.failed(fmt.Errorf("%s %s: %w: %w: %w", action, instance, license.ErrPermanent, license.ErrUncertain, err))
	}
	return c.reply(license.HelperReply{Lease: b}, 0)
}

// newLedger is the pod's ledger the environment names.
func (c call) newLedger() (*k8s.Ledger, error) {
	secret, pod, uid := c.env(license.EnvNetLedger), c.env(license.EnvNetPodName), c.env(license.EnvNetPodUID)
	if secret == "" || pod == "" || uid == "" {
		return nil, fmt.Errorf("%s, %s and %s must all be set", license.EnvNetLedger, license.EnvNetPodName, license.EnvNetPodUID)
	}
	client, err := k8s.InCluster(c.lookup)
	if err != nil {
		return nil, fmt.Errorf("--license-state k8s-secret:%s: %w", secret, err)
	}
	return k8s.NewLedger(client, secret, pod, uid), nil
}

// ledger makes one ledger call.
func (c call) ledger(action string) int {
	l, err := c.newLedger()
	if err != nil {
		return c.ledgerFailed(&permanentError{err})
	}
	ctx, cancel, err := c.deadline()
	if err != nil {
		return c.ledgerFailed(&permanentError{err})
	}
	defer cancel()
	var r license.HelperReply
	switch action {
	case "load":
		rec, found, err := l.Load(ctx)
		if err != nil {
			return c.ledgerFailed(err)
		}
		if found {
			r.Record = &rec
		}
	case "save":
		var rec license.Record
		if err := decodeStrict(c.env(license.EnvNetRecord), &rec); err != nil {
			return c.ledgerFailed(&permanentError{err})
		}
		err = l.Save(ctx, rec)
	case "delete":
		err = l.Delete(ctx)
	case "others":
		r.Others, r.Partial, err = l.Others(ctx)
	case "put":
		var e license.LedgerEntry
		if err := decodeStrict(c.env(license.EnvNetRecord), &e); err != nil {
			return c.ledgerFailed(&permanentError{err})
		}
		err = l.Put(ctx, e)
	case "remove":
		err = l.Remove(ctx, c.env(license.EnvNetEntryKey))
	default:
		err = &permanentError{fmt.Errorf("ledger action %q unknown", action)}
	}
	if err != nil {
		return c.ledgerFailed(err)
	}
	return c.reply(r, 0)
}

// deadline is the context of a call svinit bounds with SVINIT_NET_DEADLINE: svinit kills
// the run at its own deadline, so the call answers before.
func (c call) deadline() (context.Context, context.CancelFunc, error) {
	ms := c.env(license.EnvNetDeadline)
	if ms == "" {
		return context.Background(), func() {}, nil
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %q: %v", license.EnvNetDeadline, ms, err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.UnixMilli(n))
	return ctx, cancel, nil
}

// permanentError is a ledger call that cannot succeed as asked.
type permanentError struct{ error }

func (e *permanentError) Permanent() bool { return true }
func (e *permanentError) Unwrap() error   { return e.error }

// decodeStrict decodes JSON, refusing fields it does not know: a typo must not pass.
func decodeStrict(raw string, v any) error {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
