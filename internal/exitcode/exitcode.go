// Package exitcode holds every exit code svinit gives for its own outcomes, with the
// meanings the README's exit code tables document; any other code is the child's.
package exitcode

import "golang.org/x/sys/unix"

// svinit's own outcomes. The license and lock codes are sysexits.h's, so that an
// orchestrator restarts svinit and an operator tells the causes apart.
const (
	OK            = 0
	Usage         = 2   // bad option, variable, secret file, key, lock path or template; nothing was taken
	NoSeats       = 69  // EX_UNAVAILABLE: every license seat is in use
	LockTimeout   = 73  // EX_CANTCREAT: --lock-on-timeout fail, and the lock stayed held
	TempFail      = 75  // EX_TEMPFAIL: the license server unreachable or failing until --license-timeout
	Config        = 78  // EX_CONFIG: the license key or the provider configuration was refused
	WaitTimeout   = 124 // --wait-timeout passed with a --wait-for check still failing, as timeout(1); nothing was taken
	Internal      = 125 // svinit itself failed (fork, prctl); the child may not have run
	NotExecutable = 126 // PROGRAM exists but cannot be executed
	NotFound      = 127 // PROGRAM was not found
)

// Codes of `svinit status` and `svinit stop`: those of LSB init scripts, so that the same
// handles work whatever runs inside (a service manager, a Kubernetes exec probe, an operator).
const (
	StatusRunning    = 0 // the child is running
	StatusDead       = 1 // the state file names a svinit that is gone; stop: --timeout passed
	StatusNotRunning = 3 // svinit is starting, stopping or has exited: the child is not running
	StatusUnknown    = 4 // no state file, an unreadable or an untrusted one
)

// Signaled is the code of a process ended by sig, as a shell reports it: 128+N. svinit
// exits with it too when sig stopped it before the child started.
func Signaled(sig unix.Signal) int { return 128 + int(sig) }

// Of turns a wait status into a shell-style exit code: the child's own code, or 128+N when
// signal N killed it (WaitStatus.ExitStatus is -1 then, which would read 255).
func Of(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return Signaled(ws.Signal())
	}
	return ws.ExitStatus()
}
