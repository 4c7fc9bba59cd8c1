package render

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/hashicorp/go-multierror"
	"github.com/rs/zerolog"

	"github.com/svinit/svinit/internal/atomicfile"
	"github.com/svinit/svinit/internal/regfile"
)

// Options are the settings shared by every template.
type Options struct {
	Mode fs.FileMode // permission bits of every DST; 0 keeps each SRC's
	// Owner, when not nil, is given every DST: the user the program runs as (--user).
	// Otherwise a replaced DST keeps its owner and a new one belongs to svinit's user.
	Owner *atomicfile.Owner
	Data  Data
	Log   zerolog.Logger
}

// Plan is every rendered file, checked and held in memory, ready to be written.
type Plan struct {
	outputs []output
	owner   *atomicfile.Owner
	log     zerolog.Logger
}

type output struct {
	src, dst string
	mode     fs.FileMode
	content  []byte
}

// Prepare reads and renders every spec in memory and checks every DST can be written;
// nothing is written. The problems of all templates are returned together, one per line,
// each naming its file (and line, when it has one).
func Prepare(specs []Spec, opts Options) (*Plan, error) {
	return prepare(specs, opts, defaultLimits())
}

func prepare(specs []Spec, opts Options, lim limits) (*Plan, error) {
	var errs *multierror.Error
	if opts.Mode&^fs.ModePerm != 0 {
		errs = multierror.Append(errs, fmt.Errorf("template mode %#o: want permission bits only, 0001 to 0777", uint32(opts.Mode)))
	}
	p := &Plan{owner: opts.Owner, log: opts.Log}
	renderedFrom := map[string]string{} // DST -> SRC, so two templates never write one file
	for _, spec := range specs {
		files, err := sources(spec, opts.Log)
		if err != nil {
			errs = multierror.Append(errs, err)
		}
		for _, f := range files {
			if prev, dup := renderedFrom[f.dst]; dup {
				errs = multierror.Append(errs, fmt.Errorf("%s: renders to %s, as %s does: give each template its own DST", f.src, f.dst, prev))
				continue
			}
			renderedFrom[f.dst] = f.src
			o, err := prepareOne(f, opts, lim)
			if err != nil {
				errs = multierror.Append(errs, err)
				continue
			}
			p.outputs = append(p.outputs, o)
		}
	}
	if err := flatten(errs); err != nil {
		return nil, err
	}
	return p, nil
}

// prepareOne renders one file and checks its DST; both problems are reported.
func prepareOne(f source, opts Options, lim limits) (output, error) {
	var errs *multierror.Error
	content, err := os.ReadFile(f.src)
	if err != nil {
		errs = multierror.Append(errs, fmt.Errorf("template %s: %w", f.src, err))
	} else if content, err = renderFile(f.src, content, f.goTemplate, opts.Data, lim); err != nil {
		errs = multierror.Append(errs, err)
	}
	if err := checkDst(f.dst, f.src); err != nil {
		errs = multierror.Append(errs, err)
	}
	mode := f.mode
	if opts.Mode != 0 {
		mode = opts.Mode
	}
	return output{src: f.src, dst: f.dst, mode: mode, content: content}, errs.ErrorOrNil()
}

// checkDst finds what would make writing dst fail, so that it fails before any file is
// written; a DST that is its own SRC would be read no more.
func checkDst(dst, src string) error {
	if fi, err := os.Lstat(dst); err == nil && fi.Mode().IsRegular() {
		if sfi, err := os.Stat(src); err == nil && os.SameFile(fi, sfi) {
			return fmt.Errorf("%s: the DST %s is the template itself: render to another path", src, dst)
		}
	}
	err := atomicfile.CheckDst(dst)
	var nf *atomicfile.NotFileError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &nf) && nf.Mode.IsDir():
		return fmt.Errorf("%s: the DST %s is a directory: name the file to write, or render a directory SRC into it", src, dst)
	case errors.As(err, &nf):
		return fmt.Errorf("%s: the DST %s is a %s, not a file: svinit will not replace it", src, dst, regfile.Kind(nf.Mode))
	}
	return fmt.Errorf("%s: %w", src, err)
}

// Files returns the DST paths, in the order they are written.
func (p *Plan) Files() []string {
	dsts := make([]string, len(p.outputs))
	for i, o := range p.outputs {
		dsts[i] = o.dst
	}
	return dsts
}

// Print writes every rendered file to w, each under a header naming its DST, for a dry run.
func (p *Plan) Print(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for i, o := range p.outputs {
		if i > 0 {
			bw.WriteString("\n")
		}
		fmt.Fprintf(bw, "==> %s (from %s, mode %#o) <==\n", o.dst, o.src, uint32(o.mode))
		bw.Write(o.content)
		if len(o.content) > 0 && o.content[len(o.content)-1] != '\n' {
			bw.WriteString("\n\\ No newline at end of file\n")
		}
	}
	return bw.Flush() // bufio keeps the first error and reports it here
}

// Write writes every file, all or nothing (atomicfile.WriteAll): when one cannot be written
// or put in place, every DST is left as it was.
func (p *Plan) Write() error {
	files := make([]atomicfile.File, len(p.outputs))
	for i, o := range p.outputs {
		files[i] = atomicfile.File{Dst: o.dst, Content: o.content, Mode: o.mode}
	}
	if err := atomicfile.WriteAll(files, p.owner, p.log); err != nil {
		return fmt.Errorf("templates not written: %w", err)
	}
	for _, o := range p.outputs {
		p.log.Info().Str("src", o.src).Str("dst", o.dst).Int("bytes", len(o.content)).
			Str("mode", fmt.Sprintf("%#o", uint32(o.mode))).Msg("rendered")
	}
	return nil
}

// flatten turns a multierror into one message with one problem per line, or nil.
func flatten(errs *multierror.Error) error {
	if errs == nil || len(errs.Errors) == 0 {
		return nil
	}
	errs.ErrorFormat = func(all []error) string {
		lines := make([]string, len(all))
		for i, e := range all {
			lines[i] = e.Error()
		}
		return strings.Join(lines, "\n")
	}
	return errs
}

// Changed returns the DSTs whose content differs from prev's, or that prev has not; prev
// may be nil. A mode alone is no change.
func (p *Plan) Changed(prev *Plan) []string {
	old := map[string][]byte{}
	if prev != nil {
		for _, o := range prev.outputs {
			old[o.dst] = o.content
		}
	}
	var changed []string
	for _, o := range p.outputs {
		if before, ok := old[o.dst]; !ok || !bytes.Equal(before, o.content) {
			changed = append(changed, o.dst)
		}
	}
	return changed
}
