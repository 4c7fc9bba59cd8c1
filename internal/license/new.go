package license

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/go-multierror"
)

// New returns the Provider cfg selects, after checking the whole configuration and
// reporting every problem at once. Provider "none" (or empty) returns a nil Provider, for
// which NewManager returns a Manager that does nothing.
func New(cfg Config) (Provider, error) {
	var errs *multierror.Error
	fail := func(format string, args ...any) { errs = multierror.Append(errs, fmt.Errorf(format, args...)) }
	client := cfg.Client
	if client == nil {
		client = &http.Client{}
	}
	redact := cfg.Redactor
	if redact == nil {
		redact = NewRedactor()
	}
	redact.Add(cfg.Key)
	caller := httpCaller{client: client, redact: redact}
	base := ""
	if cfg.URL != "" {
		var err error
		if base, err = parseBaseURL(cfg.URL); err != nil {
			fail("license URL %s: %v", caller.show(cfg.URL), err)
		}
	}
	needKey := func() {
		if cfg.Key == "" {
			fail("license provider %s needs a key: set %s or %s, or --license-key-file", cfg.Provider, EnvKey, EnvVendorKey)
		}
	}
	needURL := func(example string) {
		if cfg.URL == "" {
			fail("license provider %s needs --license-url, e.g. %s", cfg.Provider, example)
		}
	}

	if cfg.Pool != "" && cfg.Provider != ProviderKeygenRelay {
		fail("--license-pool %q: only the keygen-relay provider has pools; drop it or use --license-provider keygen-relay", cfg.Pool)
	}
	if strings.ContainsFunc(cfg.Pool, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		fail("--license-pool %q: a pool name cannot hold control characters (it is sent as the Relay-Pool header)", cfg.Pool)
	}

	var p Provider
	switch cfg.Provider {
	case "", ProviderNone:
		return nil, nil
	case ProviderOPSWAT:
		needKey()
		if cfg.URL == "" {
			base = OPSWATActivationURL
		}
		p = &opswat{http: caller, base: base, key: cfg.Key}
	case ProviderKeygenRelay:
		needURL("http://relay.example.internal:6349")
		p = &keygenRelay{http: caller, base: base, pool: cfg.Pool}
	case ProviderHTTP:
		needURL("https://licenses.example.com")
		g, err := newGenericHTTP(cfg.HTTP, base, cfg.Key, caller)
		if err != nil {
			errs = multierror.Append(errs, err)
		}
		p = g
	case ProviderExec:
		if len(cfg.Exec.Activate) == 0 || cfg.Exec.Activate[0] == "" {
			fail("license provider exec needs --license-activate-cmd")
		}
		if len(cfg.Exec.Deactivate) == 0 || cfg.Exec.Deactivate[0] == "" {
			fail("license provider exec needs --license-deactivate-cmd, or every activation would leak a seat")
		}
		if len(cfg.Exec.Heartbeat) > 0 && cfg.Exec.Heartbeat[0] == "" {
			fail("license heartbeat command has an empty program name")
		}
		if cfg.Exec.Runner == nil {
			fail("license provider exec needs a Runner")
		}
		p = &execProvider{cfg: cfg.Exec, key: cfg.Key, url: base, log: cfg.Log, redact: caller.redact}
	default:
		fail("license provider %q unknown: want %s, %s, %s, %s or %s", cfg.Provider,
			ProviderNone, ProviderExec, ProviderHTTP, ProviderOPSWAT, ProviderKeygenRelay)
	}
	if err := errs.ErrorOrNil(); err != nil {
		return nil, err
	}
	return p, nil
}
