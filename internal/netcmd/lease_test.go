package netcmd

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/svinit/svinit/internal/k8s/fakeapi"
	"github.com/svinit/svinit/internal/lease"
	"github.com/svinit/svinit/internal/license"
)

// svinit-net lease makes one call per run and answers with the Lease, or with the API's
// status for svinit to act on: 404 (create it), 409 (someone else won), 403 (permanent).
func TestLeaseCallsAnswerWithTheLeaseOrTheStatus(t *testing.T) {
	api := fakeapi.Start(t)
	run := func(action string, rec *lease.Record) (int, license.HelperReply) {
		t.Helper()
		env := map[string]string{license.EnvNetLease: "web"}
		for _, kv := range api.Env() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		if rec != nil {
			b, _ := json.Marshal(rec)
			env[license.EnvNetRecord] = string(b)
		}
		lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
		var stdout, stderr bytes.Buffer
		code := Run([]string{"svinit-net", "lease", action}, lookup, &stdout, &stderr, "dev")
		var r license.HelperReply
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatalf("lease %s: exit %d, reply %q: %v", action, code, stdout.String(), err)
		}
		return code, r
	}
	if code, r := run("get", nil); code != license.ExitTempFail || r.Status != 404 {
		t.Errorf("get of an absent Lease: exit %d, %+v", code, r)
	}
	code, r := run("create", &lease.Record{HolderIdentity: "me", LeaseDurationSeconds: 30})
	if code != 0 || r.K8sLease == nil || r.K8sLease.HolderIdentity != "me" || r.K8sLease.ResourceVersion == "" {
		t.Fatalf("create: exit %d, %+v", code, r)
	}
	stale := *r.K8sLease
	if code, r := run("update", &stale); code != 0 || r.K8sLease.ResourceVersion == stale.ResourceVersion {
		t.Fatalf("update: exit %d, %+v", code, r)
	}
	if code, r := run("update", &stale); code != license.ExitTempFail || r.Status != 409 || r.Permanent {
		t.Errorf("update with a stale version: exit %d, %+v; want status 409", code, r)
	}
	api.Deny("get")
	if code, r := run("get", nil); code != license.ExitConfig || r.Status != 403 || !r.Permanent {
		t.Errorf("get refused: exit %d, %+v; want permanent 403", code, r)
	}
}
