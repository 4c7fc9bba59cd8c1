package netcmd

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/svinit/svinit/internal/license"
)

// A secret svinit learned from an earlier answer (the relay's license_key) is redacted by
// svinit-net before it cuts an error's excerpt: cut first, a prefix of it would be shown.
func TestLearnedSecretIsRedactedBeforeTheCut(t *testing.T) {
	const relayKey = "RELAYKEY-0123456789"
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, strings.Repeat("x", 185)+" license "+relayKey+" is suspended", http.StatusInternalServerError)
	}))
	defer ts.Close()
	learned, _ := json.Marshal([]string{relayKey})
	env := map[string]string{
		license.EnvNetProvider: license.ProviderKeygenRelay, license.EnvURL: ts.URL, license.EnvInstanceID: "pod-a",
		license.EnvActivationID: "pod-a", license.EnvNetTTL: "1m", license.EnvNetRedact: string(learned),
	}
	lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	var stdout, stderr bytes.Buffer
	code := Run([]string{"svinit-net", "license", "heartbeat"}, lookup, &stdout, &stderr, "dev")
	var r license.HelperReply
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil || code != 75 || r.Error == "" {
		t.Fatalf("exit %d, reply %q (%v); want 75 and an error", code, stdout.String(), err)
	}
	if strings.Contains(r.Error, relayKey[:6]) {
		t.Errorf("the error shows the learned key, or a part of it: %s", r.Error)
	}
}

// The check answers with the protocol and the version, which svinit compares with its own,
// and every problem of the configuration at once.
func TestCheckReportsVersionAndProblems(t *testing.T) {
	env := map[string]string{
		license.EnvNetProvider: license.ProviderHTTP, license.EnvURL: "https://l.example.com",
		license.EnvNetHTTPConfig: `{"Activate":{"URL":"{{.URL}"},"Deactivate":{}}`,
	}
	lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	var stdout, stderr bytes.Buffer
	code := Run([]string{"svinit-net", "check"}, lookup, &stdout, &stderr, "v1.2.3")
	var r license.HelperReply
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil || code != license.ExitHelperUsage {
		t.Fatalf("exit %d, reply %q (%v)", code, stdout.String(), err)
	}
	if r.Protocol != license.HelperProtocol || r.Version != "v1.2.3" || len(r.Problems) != 2 {
		t.Errorf("reply %+v; want protocol %d, version v1.2.3 and two problems", r, license.HelperProtocol)
	}
}

// --version is for people and says which build; what svinit compares at start-up is the bare
// version in check's reply, which must stay exactly the stamped value.
func TestVersion(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	var out, errOut bytes.Buffer
	if code := Run([]string{license.HelperName, "--version"}, none, &out, &errOut, "v-test"); code != 0 {
		t.Fatalf("--version: exit %d, stderr %q", code, errOut.String())
	}
	if want := license.HelperName + " v-test (commit "; !strings.HasPrefix(out.String(), want) {
		t.Errorf("--version printed %q, want it to start with %q", out.String(), want)
	}

	out.Reset()
	if code := Run([]string{license.HelperName, "check"}, none, &out, &errOut, "v-test"); code != 0 {
		t.Fatalf("check: exit %d, stdout %q", code, out.String())
	}
	var r license.HelperReply
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("check's reply %q: %v", out.String(), err)
	}
	if r.Version != "v-test" || r.Protocol != license.HelperProtocol {
		t.Errorf("check replied version %q protocol %d, want %q and %d", r.Version, r.Protocol, "v-test", license.HelperProtocol)
	}
}
