package supervisor

import "golang.org/x/sys/unix"

// Exit codes svinit uses for its own outcomes, as the README documents them; any other code
// is the child's. A failed activation exits license.ExitNoSeats (69), ExitTempFail (75) or
// ExitConfig (78).
const (
	ExitUsage         = 2   // bad option or variable; nothing was started
	ExitLockTimeout   = 73  // --lock-on-timeout fail, and the lock stayed held (EX_CANTCREAT)
	ExitInternal      = 125 // svinit itself failed (fork, prctl); the child may not have run
	ExitNotExecutable = 126 // PROGRAM exists but cannot be executed
	ExitNotFound      = 127 // PROGRAM was not found
)

// statusCode turns a wait status into a shell-style exit code: the child's own code, or
// 128+N when signal N killed it (WaitStatus.ExitStatus is -1 then, which would read 255).
func statusCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
