package atomicfile

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// exchange swaps the files at a and b in one step (renameat2 RENAME_EXCHANGE). File systems
// that cannot do it return EINVAL.
func exchange(a, b string) error {
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
		return &os.LinkError{Op: "exchange", Old: a, New: b, Err: err}
	}
	return nil
}

// cannotExchange says whether err means that exchange is not to be had here, so that a plain
// rename must do: a file system without it (EINVAL), or a kernel or seccomp profile without
// renameat2 (ENOSYS, EPERM).
func cannotExchange(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM)
}
