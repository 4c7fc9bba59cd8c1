package license

import (
	"fmt"
	"net/http"

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
	caller := httpCaller{client: client, redact: NewRedactor(cfg.Key)}
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
		p = &keygenRelay{http: caller, base: base}
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
