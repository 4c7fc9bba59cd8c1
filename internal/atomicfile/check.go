package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/svinit/svinit/internal/regfile"
)

// NotFileError says that something other than a file, or a symlink (which Write replaces),
// is where a file is to be written.
type NotFileError struct {
	Path string
	Mode fs.FileMode
}

func (e *NotFileError) Error() string {
	return fmt.Sprintf("%s is a %s, not a file: svinit will not replace it", e.Path, regfile.Kind(e.Mode))
}

// CheckDst finds what would make writing dst fail, without writing anything, so that a
// start fails before it takes anything: a directory or a FIFO in its place, a parent that
// is a file, a directory svinit may not write in (a read-only mount). Missing directories
// are fine: Write creates them.
func CheckDst(dst string) error {
	fi, err := os.Lstat(dst)
	switch {
	case err == nil && fi.Mode()&fs.ModeSymlink != 0:
		// Replaced by the rename, never followed.
	case err == nil && !fi.Mode().IsRegular():
		return &NotFileError{Path: dst, Mode: fi.Mode()}
	case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR): // ENOTDIR: found below
		return err
	}
	for dir := filepath.Dir(dst); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue // "/" always exists, so the loop ends
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("cannot create %s: %s is not a directory", dst, dir)
		}
		if err := canWriteIn(dir); err != nil {
			return fmt.Errorf("cannot write %s: %s: %w", dst, dir, err)
		}
		return nil
	}
}
