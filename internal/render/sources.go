package render

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-multierror"
	"github.com/rs/zerolog"

	"github.com/svinit/svinit/internal/regfile"
)

// source is one template file and where it is rendered to.
type source struct {
	src, dst   string
	mode       fs.FileMode // SRC's permission bits
	goTemplate bool
}

func isGoTemplate(name string) bool {
	return strings.HasSuffix(name, goSuffix) && len(name) > len(goSuffix)
}

// sources lists the files of one spec: the file itself, or every regular file under a
// directory.
func sources(spec Spec, log zerolog.Logger) ([]source, error) {
	if !filepath.IsAbs(spec.Src) || !filepath.IsAbs(spec.Dst) {
		return nil, fmt.Errorf("template %s: SRC and DST must be absolute paths", spec)
	}
	src, dst := filepath.Clean(spec.Src), filepath.Clean(spec.Dst)
	fi, err := os.Stat(src) // follows a ConfigMap's key -> ..data/key symlink
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", spec, err)
	}
	switch {
	case fi.Mode().IsRegular():
		return []source{{src: src, dst: dst, mode: fi.Mode().Perm(), goTemplate: isGoTemplate(filepath.Base(src))}}, nil
	case !fi.IsDir():
		return nil, fmt.Errorf("template %s: SRC is a %s, not a file or directory", spec, regfile.Kind(fi.Mode()))
	case within(dst, src):
		return nil, fmt.Errorf("template %s: DST is inside the SRC directory, so its output would be read as templates next time: render elsewhere", spec)
	}
	w := walker{dst: dst, log: log}
	w.walk(src, "", []fs.FileInfo{fi})
	if len(w.files) == 0 && w.errs == nil {
		return nil, fmt.Errorf("template %s: the directory has no files to render: is the volume mounted?", spec)
	}
	return w.files, w.errs.ErrorOrNil()
}

type walker struct {
	dst   string
	log   zerolog.Logger
	files []source
	errs  *multierror.Error
}

// walk adds the files under dir (rel is dir relative to SRC). ancestors are the
// directories above it, to stop at a symlink loop.
func (w *walker) walk(dir, rel string, ancestors []fs.FileInfo) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		w.errs = multierror.Append(w.errs, fmt.Errorf("template %s: %w", dir, err))
		return
	}
	for _, e := range entries {
		// A ConfigMap volume's ..data and ..TIMESTAMP hold the same files again; the visible
		// key -> ..data/key symlinks are the ones to render.
		if strings.HasPrefix(e.Name(), "..") {
			continue
		}
		path, relPath := filepath.Join(dir, e.Name()), filepath.Join(rel, e.Name())
		fi, err := os.Stat(path)
		if err != nil {
			w.errs = multierror.Append(w.errs, fmt.Errorf("template %s: %w", path, err))
			continue
		}
		switch {
		case fi.IsDir():
			if loops(fi, ancestors) {
				w.errs = multierror.Append(w.errs, fmt.Errorf("template %s: symlink loop: it leads back to a directory above it", path))
				continue
			}
			w.walk(path, relPath, append(ancestors[:len(ancestors):len(ancestors)], fi))
		case fi.Mode().IsRegular():
			out := relPath
			goTemplate := isGoTemplate(e.Name())
			if goTemplate {
				out = strings.TrimSuffix(out, goSuffix)
			}
			w.files = append(w.files, source{src: path, dst: filepath.Join(w.dst, out), mode: fi.Mode().Perm(), goTemplate: goTemplate})
		default:
			w.log.Warn().Str("path", path).Str("type", regfile.Kind(fi.Mode())).Msg("template directory entry skipped: not a regular file")
		}
	}
}

// within tells whether path is dir or under it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func loops(fi fs.FileInfo, ancestors []fs.FileInfo) bool {
	for _, a := range ancestors {
		if os.SameFile(fi, a) {
			return true
		}
	}
	return false
}
