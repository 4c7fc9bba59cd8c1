// Package atomicfile replaces files so that a crash or a kill at any moment leaves the old
// content or the new one, never a torn file: for rendered configs and svinit's own state.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"
)

// Write writes content to a temporary file next to dst, fsyncs it, renames it over dst
// (replacing a symlink, not following it) and fsyncs the directory, so that dst is the old
// file or the new one at every moment, even across a crash. Missing directories are created
// (0755), temporary files of dst left by a killed svinit are removed first, and a replaced
// file's owner is kept when svinit may do so. The mode is exactly mode, whatever the umask.
//
// The errors are those of the os package, which name the paths involved; the caller says
// which file it was writing and why.
func Write(dst string, content []byte, mode fs.FileMode, log zerolog.Logger) error {
	return WriteFor(dst, content, mode, nil, log)
}

// Owner is the user and group a file is written for.
type Owner struct{ UID, GID uint32 }

// WriteFor is Write for a file that another user reads: the new file belongs to owner (when
// not nil) rather than to the replaced file's owner, so that a program run with --user can
// read a rendered config or a license file of mode 0600. Only root can give a file away.
func WriteFor(dst string, content []byte, mode fs.FileMode, owner *Owner, log zerolog.Logger) (err error) {
	dir, base := filepath.Split(dst)
	created, err := mkdirAll(filepath.Clean(dir))
	if err != nil {
		return err
	}
	removeStaleTemps(dir, base, log)
	f, err := os.CreateTemp(dir, tempPrefix(base)+"*")
	if err != nil {
		return err
	}
	tmp, renamed := f.Name(), false
	defer func() {
		if err != nil && !renamed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(content); err != nil {
		return err
	}
	if owner != nil {
		if err = f.Chown(int(owner.UID), int(owner.GID)); err != nil {
			return err
		}
	} else {
		keepOwner(f, dst, log)
	}
	// Chmod after any chown, which clears set-id bits, and on the file rather than through
	// the umask, so that the mode is exactly the one asked for.
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, dst); err != nil {
		return err
	}
	renamed = true
	// The rename is durable once the directory is; new directories need their parents
	// synced too.
	for _, d := range append([]string{dir}, parents(created)...) {
		if err := SyncDir(d); err != nil {
			return fmt.Errorf("written, but not yet durable: %w", err)
		}
	}
	return nil
}

// SyncDir makes a rename or a removal in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// mkdirAll is os.MkdirAll that returns the directories it created, top first.
func mkdirAll(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) || d == filepath.Dir(d) {
			return nil, err
		}
		missing = append(missing, d)
	}
	var created []string
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return created, err
		}
		created = append(created, missing[i])
	}
	return created, nil
}

func parents(dirs []string) []string {
	ps := make([]string, len(dirs))
	for i, d := range dirs {
		ps[i] = filepath.Dir(d)
	}
	return ps
}
