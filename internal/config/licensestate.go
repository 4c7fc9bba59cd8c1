package config

import (
	"fmt"
	"strings"
)

// SecretPrefix marks --license-state as a ledger in a Secret: k8s-secret:NAME.
const SecretPrefix = "k8s-secret:"

// LicenseState is --license-state, parsed once: the journal file, or the Secret of the
// ledger; neither when unset.
type LicenseState struct {
	Path   string // absolute
	Secret string
}

// Set parses a journal path or k8s-secret:NAME. A relative path is made absolute now, so
// that svinit can chdir("/") after starting the child and still find it.
func (s *LicenseState) Set(v string) error {
	*s = LicenseState{}
	if name, ok := strings.CutPrefix(v, SecretPrefix); ok {
		if err := checkDNSSubdomain("Secret", name); err != nil {
			return err
		}
		s.Secret = name
		return nil
	}
	s.Path = absPath(v)
	return nil
}

func (s *LicenseState) String() string {
	if s.Secret != "" {
		return SecretPrefix + s.Secret
	}
	return s.Path
}

// IsSet reports whether a journal or a ledger is configured.
func (s LicenseState) IsSet() bool { return s.Path != "" || s.Secret != "" }

// checkDNSSubdomain reports whether name can name an object of kind (a Secret, a Lease): a
// DNS-1123 subdomain.
func checkDNSSubdomain(kind, name string) error {
	if name == "" || len(name) > 253 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-.") != "" ||
		!isAlnum(name[0]) || !isAlnum(name[len(name)-1]) {
		return fmt.Errorf("%q is not a %s name: lower-case letters, digits, '-' and '.', at most 253, starting and ending with a letter or digit", name, kind)
	}
	return nil
}

func isAlnum(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }
