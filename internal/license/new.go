package license

import (
	"fmt"
	"strings"

	"github.com/hashicorp/go-multierror"
)

// New returns the Provider cfg selects, after checking the whole configuration and
// reporting every problem at once. Provider "none" (or empty) returns a nil Provider, for
// which NewManager returns a Manager that does nothing.
func New(cfg Config) (Provider, error) {
	var errs *multierror.Error
	fail := func(format string, args ...any) { errs = multierror.Append(errs, fmt.Errorf(format, args...)) }
	redact := cfg.Redactor
	if redact == nil {
		redact = NewRedactor()
	}
	redact.Add(cfg.Key)
	base := ""
	if cfg.URL != "" {
		var err error
		if base, err = ParseBaseURL(cfg.URL); err != nil {
			fail("license URL %s: %v", redact.Redact(RedactURL(cfg.URL)), err)
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
	case ProviderKeygenRelay:
		needURL("http://relay.example.internal:6349")
	case ProviderHTTP:
		needURL("https://licenses.example.com")
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
		p = &execProvider{cfg: cfg.Exec, key: cfg.Key, url: base, log: cfg.Log, redact: redact}
	default:
		fail("license provider %q unknown: want %s, %s, %s, %s or %s", cfg.Provider,
			ProviderNone, ProviderExec, ProviderHTTP, ProviderOPSWAT, ProviderKeygenRelay)
	}
	if err := errs.ErrorOrNil(); err != nil {
		return nil, err
	}
	if Networked(cfg.Provider) {
		return newNetProvider(cfg, base, redact)
	}
	return p, nil
}
