package netcmd

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/svinit/svinit/internal/license"
)

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
