package license

import (
	"context"
	"errors"
	"os"
	"testing"
)

// A helper that dies without its answer (the OOM killer, a crash) may have sent the
// activation: the attempt is retried, and the seat it may hold is given back.
func TestHelperWithoutAnAnswerMayHaveActivated(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := helper{cfg: HelperConfig{Path: exe, Env: []string{helperEnv + "=1"}, Runner: cmdRunner{}}, redact: NewRedactor()}
	p := &netProvider{h: h, name: ProviderKeygenRelay}
	_, err = p.Activate(context.Background(), "pod-a") // the test binary answers "unknown" on stderr, exit 2
	if !errors.Is(err, ErrRetryable) || !errors.Is(err, ErrUncertain) {
		t.Errorf("Activate = %v; want a retryable error whose outcome is unknown", err)
	}
}
