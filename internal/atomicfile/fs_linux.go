package atomicfile

import "golang.org/x/sys/unix"

// canWriteIn tells whether files can be created in dir. access(2) answers for the real
// uid, which for svinit is the effective one, and reports a read-only mount (EROFS) even
// to root.
func canWriteIn(dir string) error {
	return unix.Access(dir, unix.W_OK|unix.X_OK)
}
