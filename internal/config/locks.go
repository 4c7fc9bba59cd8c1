package config

import (
	"fmt"
	"strings"
)

// LeasePrefix marks a --lock as a Kubernetes Lease of the pod's namespace: k8s-lease:NAME.
const LeasePrefix = "k8s-lease:"

// Locks is --lock, parsed once: at most one lock file and at most one Lease, which svinit
// takes in that order.
type Locks struct {
	File  string // absolute once validated
	Lease string // NAME of k8s-lease:NAME
}

// Set adds one lock, or several from the variable's comma list.
func (l *Locks) Set(v string) error {
	for _, one := range strings.Split(v, ",") {
		if one = strings.TrimSpace(one); one == "" {
			continue // a trailing comma, as --template's list allows
		}
		if err := l.add(one); err != nil {
			return err
		}
	}
	return nil
}

func (l *Locks) add(v string) error {
	if name, ok := strings.CutPrefix(v, LeasePrefix); ok {
		if err := checkDNSSubdomain("Lease", name); err != nil {
			return fmt.Errorf("%s%w", LeasePrefix, err)
		}
		if l.Lease != "" && l.Lease != name {
			return fmt.Errorf("at most one k8s-lease:NAME, got %s%s and %s%s: keep one", LeasePrefix, l.Lease, LeasePrefix, name)
		}
		l.Lease = name
		return nil
	}
	// A mistyped k8s-lease: must not become a file on the container's own disk, which every
	// pod would hold at once.
	if first, _, _ := strings.Cut(v, "/"); strings.Contains(first, ":") {
		return fmt.Errorf("%q is neither %sNAME nor a lock file: write %sNAME for a Lease, an absolute path for a file", v, LeasePrefix, LeasePrefix)
	}
	if l.File != "" && l.File != v {
		return fmt.Errorf("at most one lock file, got %s and %s: keep one, and add k8s-lease:NAME for a lock across nodes", l.File, v)
	}
	l.File = v
	return nil
}

// Reset empties the list: the first --lock replaces what SVINIT_LOCK set.
func (l *Locks) Reset() { *l = Locks{} }

func (l *Locks) String() string {
	var s []string
	if l.File != "" {
		s = append(s, l.File)
	}
	if l.Lease != "" {
		s = append(s, LeasePrefix+l.Lease)
	}
	return strings.Join(s, ",")
}
