package render

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"
)

// tempInfix names svinit's temporary files, so that one left by a killed svinit is
// recognised and removed by the next run.
const tempInfix = ".svinit-tmp-"

// tempPrefix is the name of DST's temporary files up to the random part; the base is
// shortened so that the name stays under NAME_MAX.
func tempPrefix(base string) string {
	if len(base) > 100 {
		base = base[:100]
	}
	return "." + base + tempInfix
}

// writeAtomic writes o.content to a temporary file next to o.dst, fsyncs it, renames it
// over o.dst (replacing a symlink, not following it) and fsyncs the directory, so that
// o.dst is the old file or the new one at every moment, even across a crash.
func writeAtomic(o output, log zerolog.Logger) (err error) {
	dir, base := filepath.Split(o.dst)
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
	if _, err = f.Write(o.content); err != nil {
		return err
	}
	keepOwner(f, o.dst, log)
	// Chmod after any chown, which clears set-id bits, and on the file rather than through
	// the umask, so that the mode is exactly the one asked for.
	if err = f.Chmod(o.mode); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, o.dst); err != nil {
		return err
	}
	renamed = true
	// The rename is durable once the directory is; new directories need their parents
	// synced too.
	for _, d := range append([]string{dir}, parents(created)...) {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("written, but not yet durable: %w", err)
		}
	}
	return nil
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

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeStaleTemps removes the temporary files of DST that a killed svinit left behind.
// svinit's lock makes sure no other svinit is writing them now.
func removeStaleTemps(dir, base string, log zerolog.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // CreateTemp reports the problem
	}
	prefix := tempPrefix(base)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := os.Remove(path); err != nil {
			log.Warn().Err(err).Str("path", path).Msg("stale temporary file not removed")
			continue
		}
		log.Debug().Str("path", path).Msg("stale temporary file removed")
	}
}

// WriteFile writes content to dst as the rendered files are written: atomically, creating
// its directory, replacing a symlink rather than following it. svinit writes the license
// file a server hands out with it.
func WriteFile(dst string, content []byte, mode fs.FileMode, log zerolog.Logger) error {
	if err := writeAtomic(output{dst: dst, mode: mode, content: content}, log); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}
