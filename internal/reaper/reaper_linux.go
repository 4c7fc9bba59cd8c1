package reaper

import (
	"os"

	"golang.org/x/sys/unix"
)

func wait(ws *unix.WaitStatus) (int, error) {
	return unix.Wait4(-1, ws, unix.WNOHANG, nil)
}

// NeedsSubreaper reports whether svinit must ask to be made a subreaper: PID 1 already
// inherits every orphan in its namespace.
func NeedsSubreaper() bool { return os.Getpid() != 1 }

// SetSubreaper makes orphaned descendants reparent to svinit instead of to the namespace's
// PID 1, so svinit can reap them (docker run without --init, shared process namespaces).
func SetSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}
