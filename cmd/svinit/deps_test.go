package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// PID 1 links no network code: the license servers' requests and the Kubernetes ledger run
// in svinit-net, so that every container pays for neither their package inits nor their
// pages. Nor crypto/rand, whose DRBG costs 300 KB: getrandom(2) gives PID 1 its few random
// bytes. The configuration, parsed first, imports neither the license nor the Kubernetes
// code.
func TestPID1LinksNoNetworkCode(t *testing.T) {
	for pkg, banned := range map[string][]string{
		".": {"net/http", "crypto/tls", "crypto/x509", "crypto/rand", "github.com/svinit/svinit/internal/k8s", "github.com/svinit/svinit/internal/remote"},
		"github.com/svinit/svinit/internal/config": {"github.com/svinit/svinit/internal/license", "github.com/svinit/svinit/internal/k8s"},
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		for _, b := range banned {
			if slices.Contains(deps, b) {
				t.Errorf("%s links %s", pkg, b)
			}
		}
	}
}
