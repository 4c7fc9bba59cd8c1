package supervisor

import (
	"strings"
	"testing"

	"github.com/svinit/svinit/internal/config"
)

// An instance id the license server would refuse, or none at all, is a configuration error
// found before anything is taken.
func TestInstanceIDProblemsFoundBeforeStart(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--license-provider", "opswat", "--instance-id", "ns/pod"}, `--instance-id "ns/pod"`},
		{[]string{"--license-provider", "opswat"}, "instance id: set --instance-id"},
		{[]string{"--license-provider", "opswat", "--pod-name", "web-0"}, "only one of"},
		{[]string{"--license-provider", "opswat", "--pod-name", "web-0", "--pod-uid", "3f2c"}, ""},
	} {
		cfg, err := config.Parse(append(tc.args, "prog"))
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		err = (&Supervisor{cfg: cfg}).checkInstanceID()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
}
