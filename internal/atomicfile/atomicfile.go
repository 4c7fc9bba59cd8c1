// Package atomicfile replaces files so that a crash or a kill at any moment leaves the old
// content or the new one, never a torn file: for rendered configs and svinit's own state.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/rs/zerolog"
)

// Write writes content to a temporary file next to dst, fsyncs it, puts it in place of dst
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
func WriteFor(dst string, content []byte, mode fs.FileMode, owner *Owner, log zerolog.Logger) error {
	_, err := writeAll([]File{{Dst: dst, Content: content, Mode: mode}}, owner, log)
	return err
}

// File is one file for WriteAll.
type File struct {
	Dst     string
	Content []byte
	Mode    fs.FileMode
}

// WriteAll is WriteFor for several files, all or nothing: every file is written to its
// temporary file and fsynced before any DST is touched, then each is put in place by
// exchanging it with the old file, which is kept under the temporary name until every DST
// is in place. On any failure the DSTs already replaced get their old file back, DSTs that
// did not exist are removed again, and every temporary file and created directory is
// removed. Only a kill or a crash during the renames themselves can leave some DSTs new and
// others old; the next run removes the temporary files it left. The error begins with the
// DST that failed.
func WriteAll(files []File, owner *Owner, log zerolog.Logger) error {
	if failed, err := writeAll(files, owner, log); err != nil {
		return fmt.Errorf("%s: %w", failed, err)
	}
	return nil
}

// writeAll is WriteAll; failed is the DST the error is about.
func writeAll(files []File, owner *Owner, log zerolog.Logger) (failed string, err error) {
	var (
		created []string // directories, for the parents' fsync, or removed on failure
		staged  []*staged
		allIn   bool
	)
	defer func() {
		for _, s := range staged {
			s.removeTemp() // on success it holds the old file
		}
		for i := len(created) - 1; i >= 0 && !allIn; i-- {
			os.Remove(created[i]) // only if still empty
		}
	}()
	// Stale temporary files first, so that no file's clean-up removes another's new one.
	for _, f := range files {
		dir := filepath.Dir(f.Dst)
		c, err := mkdirAll(dir)
		created = append(created, c...)
		if err != nil {
			return f.Dst, err
		}
		removeStaleTemps(dir, filepath.Base(f.Dst), log)
	}
	for _, f := range files {
		s, err := stage(f, owner, log)
		if err != nil {
			return f.Dst, err
		}
		staged = append(staged, s)
	}
	for i, s := range staged {
		if err := s.place(); err != nil {
			for j := i - 1; j >= 0; j-- {
				if uerr := staged[j].restore(); uerr != nil {
					err = fmt.Errorf("%w; and %s could not be restored: %v", err, staged[j].dst, uerr)
				}
			}
			return s.dst, err
		}
	}
	allIn = true
	// The renames are durable once the directories are; new directories need their parents
	// synced too.
	dirs := map[string]bool{}
	for _, d := range parents(created) {
		dirs[d] = true
	}
	for _, s := range staged {
		dirs[filepath.Dir(s.dst)] = true
	}
	for d := range dirs {
		if err := SyncDir(d); err != nil {
			return d, fmt.Errorf("written, but not yet durable: %w", err)
		}
	}
	return "", nil
}

// staged is a file written and synced under a temporary name next to its DST.
type staged struct {
	dst, tmp string
	existed  bool // dst was there before place
	placed   bool // the new file is at dst
	oldKept  bool // and the old one at tmp, until removeTemp
}

// stage writes f to a new temporary file, with its owner and mode, and fsyncs it.
func stage(f File, owner *Owner, log zerolog.Logger) (_ *staged, err error) {
	dir, base := filepath.Split(f.Dst)
	// O_EXCL: a symlink planted under the temporary name is never followed.
	tf, err := os.CreateTemp(dir, tempPrefix(base)+"*")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			tf.Close()
			os.Remove(tf.Name())
		}
	}()
	if _, err = tf.Write(f.Content); err != nil {
		return nil, err
	}
	if owner != nil {
		if err = tf.Chown(int(owner.UID), int(owner.GID)); err != nil {
			return nil, err
		}
	} else {
		keepOwner(tf, f.Dst, log)
	}
	// Chmod after any chown, which clears set-id bits, and on the file rather than through
	// the umask, so that the mode is exactly the one asked for.
	if err = tf.Chmod(f.Mode); err != nil {
		return nil, err
	}
	if err = tf.Sync(); err != nil {
		return nil, err
	}
	if err = tf.Close(); err != nil {
		return nil, err
	}
	return &staged{dst: f.Dst, tmp: tf.Name()}, nil
}

// place puts the new file at dst, keeping the old one (a file or a symlink, never
// followed) under the temporary name so that restore can put it back.
func (s *staged) place() error {
	fi, err := os.Lstat(s.dst)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		err = os.Rename(s.tmp, s.dst)
	case err != nil:
		return err
	case fi.IsDir():
		return &os.LinkError{Op: "rename", Old: s.tmp, New: s.dst, Err: syscall.EISDIR}
	default:
		s.existed = true
		if err = exchange(s.tmp, s.dst); err == nil {
			s.oldKept = true
		} else if cannotExchange(err) {
			err = os.Rename(s.tmp, s.dst)
		}
	}
	if err != nil {
		return err
	}
	s.placed = true
	return nil
}

// restore undoes place: the old file back at dst, or no file where there was none.
func (s *staged) restore() error {
	switch {
	case !s.placed:
		return nil
	case s.oldKept:
		if err := exchange(s.tmp, s.dst); err != nil {
			s.tmp = "" // keep the old file where it is, and name it
			return fmt.Errorf("%w (the old file is kept there)", err)
		}
		return nil
	case s.existed:
		return errors.New("the file system cannot exchange files, so the old one was not kept")
	}
	return os.Remove(s.dst)
}

func (s *staged) removeTemp() {
	if s.tmp != "" {
		os.Remove(s.tmp)
	}
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
