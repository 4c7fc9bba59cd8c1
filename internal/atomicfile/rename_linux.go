package atomicfile

import (
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
