package lock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/regfile"
)

// ErrBadPath marks a lock path that can never work as given (missing or unwritable
// directory, a directory, a symlink, a device): a configuration error, not a wait to retry.
var ErrBadPath = errors.New("bad lock path")

// pathError carries a message that already names the path and the fix, and matches
// ErrBadPath without appending its text.
type pathError struct{ msg string }

func (e *pathError) Error() string        { return e.msg }
func (e *pathError) Is(target error) bool { return target == ErrBadPath }

func badPath(format string, args ...any) error {
	return &pathError{msg: fmt.Sprintf(format, args...)}
}

// Check validates a lock path before anything is started: an absolute path whose directory
// exists and is writable by this process, and which is absent or a regular file (never a
// directory, a symlink or a device). Errors match ErrBadPath; independent problems are
// reported together.
func Check(path string) error {
	if path == "" {
		return badPath("lock path is empty: give --lock an absolute file path, e.g. /opt/app/work/lock")
	}
	if !filepath.IsAbs(path) {
		return badPath("lock %s: path is relative: give an absolute path (svinit runs from /)", path)
	}
	clean := filepath.Clean(path)
	if clean == "/" {
		return badPath("lock %s: path names the root directory: give a file path, e.g. /opt/app/work/lock", path)
	}
	dir := filepath.Dir(clean)

	usable, dirErr := checkDir(path, dir)
	if !usable {
		return dirErr
	}
	// A directory that is merely not writable still lets the file be judged: report both.
	return combine(dirErr, checkFile(path, clean))
}

// checkDir reports whether dir can hold the lock file; usable is false when it does not
// exist as a directory at all, so that there is no file to judge either.
func checkDir(path, dir string) (usable bool, err error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, badPath("lock %s: directory %s does not exist: create it or mount the volume there", path, dir)
	case err != nil:
		return false, badPath("lock %s: cannot inspect directory %s: %v", path, dir, unwrapPathError(err))
	case !fi.IsDir():
		return false, badPath("lock %s: %s is not a directory: the lock file must live in a directory", path, dir)
	}
	switch err := writableDir(dir); {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EROFS):
		return true, badPath("lock %s: directory %s is on a read-only file system: mount the volume read-write", path, dir)
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		return true, badPath("lock %s: directory %s is not writable by uid %d gid %d: chown it to that user or set the pod's fsGroup",
			path, dir, os.Geteuid(), os.Getegid())
	default:
		return true, badPath("lock %s: cannot check access to directory %s: %v", path, dir, err)
	}
}

func checkFile(path, clean string) error {
	fi, err := os.Lstat(clean)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return badPath("lock %s: cannot inspect: %v", path, unwrapPathError(err))
	}
	switch mode := fi.Mode(); {
	case mode.IsRegular():
		return nil // a lock somebody holds, or held: Acquire decides
	case mode&fs.ModeSymlink != 0:
		target, _ := os.Readlink(clean)
		return badPath("lock %s: is a symlink (to %q), which svinit refuses to follow so that a link planted in a shared volume cannot redirect the write: remove it", path, target)
	case mode.IsDir():
		return badPath("lock %s: is a directory: point --lock at a file inside it, e.g. %s", path, filepath.Join(clean, "lock"))
	default:
		return badPath("lock %s: is a %s, not a regular file: remove it", path, regfile.Kind(mode))
	}
}

// unwrapPathError drops the *PathError wrapper, whose path the message already names.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
