package config

import (
	"strings"
	"testing"
	"time"
)

// --lock is repeatable: at most one file and one k8s-lease:NAME, from flags or from the
// variable's comma list, and a flag replaces what the variable set.
func TestLockTakesOneFileAndOneLease(t *testing.T) {
	dir := t.TempDir()
	cfg, err := Parse([]string{"--lock", dir + "/lock", "--lock", "k8s-lease:web-primary", "prog"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Lock.File != dir+"/lock" || cfg.Lock.Lease != "web-primary" {
		t.Errorf("Lock = %+v", cfg.Lock)
	}

	t.Setenv("SVINIT_LOCK", dir+"/lock,k8s-lease:db")
	if cfg, err = Parse([]string{"prog"}); err != nil || cfg.Lock.File != dir+"/lock" || cfg.Lock.Lease != "db" {
		t.Errorf("from SVINIT_LOCK: %+v, %v", cfg.Lock, err)
	}
	// Empty items, as --template's list skips them.
	t.Setenv("SVINIT_LOCK", " "+dir+"/lock, ,k8s-lease:db,")
	if cfg, err = Parse([]string{"prog"}); err != nil || cfg.Lock.File != dir+"/lock" || cfg.Lock.Lease != "db" {
		t.Errorf("from SVINIT_LOCK with empty items: %+v, %v", cfg.Lock, err)
	}
	if cfg, err = Parse([]string{"--lock", "k8s-lease:web", "prog"}); err != nil || cfg.Lock.File != "" || cfg.Lock.Lease != "web" {
		t.Errorf("a flag must replace the variable's list: %+v, %v", cfg.Lock, err)
	}
}

func TestLockRefusesTwoOfAKindAndBadLeaseNames(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--lock", dir + "/a", "--lock", dir + "/b"}, "at most one lock file"},
		{[]string{"--lock", "k8s-lease:a", "--lock", "k8s-lease:b"}, "at most one k8s-lease:NAME"},
		{[]string{"--lock", "k8s-lease:Web_1"}, "not a Lease name"},
		{[]string{"--lock", "k8s-lease:"}, "not a Lease name"},
		{[]string{"--lock", "k8s-lease:-web"}, "not a Lease name"},
	} {
		_, err := Parse(append(tc.args, "prog"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}

// A mistyped k8s-lease: is refused, never taken for a lock file in the working directory: a
// file on the container's own disk would let every pod run the program at once.
func TestMistypedLeaseIsNotALockFile(t *testing.T) {
	for _, v := range []string{"K8S-LEASE:web", "k8s-leases:web", "lease:web", "k8s-secret:web", " K8s-Lease:web"} {
		_, err := Parse([]string{"--lock", v, "prog"})
		if err == nil || !strings.Contains(err.Error(), "k8s-lease:NAME") || !strings.Contains(err.Error(), "absolute") {
			t.Errorf("--lock %q: %v, want it refused, naming k8s-lease:NAME and an absolute path", v, err)
		}
	}
	dir := t.TempDir()
	if cfg, err := Parse([]string{"--lock", dir + "/a:b", "prog"}); err != nil || cfg.Lock.File != dir+"/a:b" {
		t.Errorf("an absolute path with a colon: %+v, %v", cfg.Lock, err)
	}
}

// The timings of the Lease must keep the program dead before anyone else may take the Lease:
// duration > renew deadline + grace, retry < renew deadline, all positive. Checked only with
// a k8s-lease lock, and every problem names the numbers.
func TestLeaseTimingsMustKeepOneHolder(t *testing.T) {
	lease := []string{"--lock", "k8s-lease:web"}
	for _, tc := range []struct {
		args []string
		want string // "" : accepted
	}{
		{nil, ""},
		{[]string{"--lease-duration", "21s", "--lease-renew-deadline", "15s", "--grace", "5s"}, ""},
		{[]string{"--lease-duration", "20s", "--lease-renew-deadline", "15s", "--grace", "5s"}, "--lease-duration 20s must be longer than --lease-renew-deadline 15s + --grace 5s = 20s"},
		{[]string{"--lease-duration", "30s", "--grace", "20s"}, "use --lease-duration 36s or more"},
		{[]string{"--lease-retry-period", "15s"}, "--lease-retry-period 15s must be shorter than --lease-renew-deadline 15s"},
		{[]string{"--lease-duration", "0s"}, "--lease-duration 0s: must be positive"},
		{[]string{"--lease-renew-deadline", "-1s"}, "--lease-renew-deadline -1s: must be positive"},
		{[]string{"--lease-retry-period", "0s"}, "--lease-retry-period 0s: must be positive"},
		{[]string{"--lease-duration", "30.5s"}, "whole seconds"},
		{[]string{"--lease-duration", "soon"}, "want a duration"},
		{[]string{"--lease-duration", "1000000h"}, "at most 2147483647s"}, // the API's int32
	} {
		_, err := Parse(append(append(append([]string(nil), lease...), tc.args...), "prog"))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v, want it accepted", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
	// Without a Lease the timings are not used, and not checked.
	if _, err := Parse([]string{"--lease-duration", "1s", "prog"}); err != nil {
		t.Errorf("lease timings checked without a k8s-lease lock: %v", err)
	}
	cfg, _ := Parse([]string{"prog"})
	if cfg.LeaseDuration != 30*time.Second || cfg.LeaseRenewDeadline != 15*time.Second || cfg.LeaseRetryPeriod != 2*time.Second {
		t.Errorf("defaults %s %s %s, want 30s 15s 2s", cfg.LeaseDuration, cfg.LeaseRenewDeadline, cfg.LeaseRetryPeriod)
	}
}
