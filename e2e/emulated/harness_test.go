package emulated

import (
	"testing"
	"time"

	"github.com/svinit/svinit/e2e/e2etest"
)

// waitLimit bounds every wait in these tests; reaching it is a failure, not a measurement.
// Emulation makes every start of svinit slower, so it is looser than e2e's.
const waitLimit = 60 * time.Second

// startSvinit runs `unshare --pid --fork --mount-proc QEMU SVINIT args...`, svinit emulated
// as PID 1 of a PID namespace of its own; env is added to this process's environment and
// reaches the child, whose helper mode is childMode.
func startSvinit(t *testing.T, a *arch, childMode string, env []string, args ...string) *e2etest.Svinit {
	t.Helper()
	e2etest.Require(t, unavailable) // a developer without root or qemu skips with -short
	argv := append([]string{"unshare", "--pid", "--fork", "--mount-proc", a.qemu, a.svinit}, args...)
	return e2etest.Command(t, waitLimit, argv, childMode, env).Start(true)
}
