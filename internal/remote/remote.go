// Package remote holds the license providers that talk HTTP to a license server: the opswat
// and keygen-relay presets and the generic http provider. It runs in svinit-net, never in
// PID 1 (see license.HelperName); license.New has checked the configuration it is given.
package remote

import (
	"fmt"
	"net/http"

	"github.com/svinit/svinit/internal/license"
)

// New returns the provider cfg names, sending its requests with client (nil: a client of
// its own). Only the http provider's templates can be wrong here.
func New(cfg license.Config, client *http.Client) (license.Provider, error) {
	if client == nil {
		client = &http.Client{}
	}
	redact := cfg.Redactor
	if redact == nil {
		redact = license.NewRedactor()
	}
	redact.Add(cfg.Key)
	caller := httpCaller{client: client, redact: redact}
	base := ""
	if cfg.URL != "" {
		var err error
		if base, err = license.ParseBaseURL(cfg.URL); err != nil {
			return nil, err
		}
	}
	switch cfg.Provider {
	case license.ProviderOPSWAT:
		if base == "" {
			base = OPSWATActivationURL
		}
		return &opswat{http: caller, base: base, key: cfg.Key}, nil
	case license.ProviderKeygenRelay:
		return &keygenRelay{http: caller, base: base, pool: cfg.Pool}, nil
	case license.ProviderHTTP:
		return newGenericHTTP(cfg.HTTP, base, cfg.Key, caller)
	}
	return nil, fmt.Errorf("license provider %q does not talk HTTP", cfg.Provider)
}
