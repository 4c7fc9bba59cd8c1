package render

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/svinit/svinit/internal/tmpl"
)

const (
	// idToken is what the agdb start.sh replaced with sed "s/{id}/$AGDB_REPLICA_INDEX/g".
	idToken = "{id}"
	// goSuffix marks a file as a Go template.
	goSuffix = ".tmpl"
	// tmplName is the name a template is parsed under; errors name the file instead. A fixed
	// name, because text/template/parse does not escape '%' in it.
	tmplName = "svinit-template"
)

// ErrNoIndex is returned (wrapped, naming the template) when a template needs the replica
// index and none is known.
var ErrNoIndex = errors.New("no replica index")

// Data is what templates see. An index or count that is not known (Has... false) makes a
// template that uses it fail, rather than render a zero.
type Data struct {
	Index       int // the replica index, from ReplicaIndex
	HasIndex    bool
	Hostname    string
	Replicas    int // the replica count (--replicas)
	HasReplicas bool
	// LookupEnv is the environment {{ env }} reads, os.LookupEnv in svinit; nil is an empty
	// environment.
	LookupEnv func(string) (string, bool)
}

// limits bound what one template may do, so that a mistake such as {{ range 1000000000 }}
// fails in a second instead of hanging svinit; the fuzz test uses smaller ones.
type limits struct {
	maxSeq    int // longest list seq returns
	maxOutput int // bytes one file may render to
	maxSteps  int // range iterations, template calls and seq items in one file
}

func defaultLimits() limits { return limits{maxSeq: 1 << 16, maxOutput: 64 << 20, maxSteps: 1 << 20} }

// fileError is a problem in one template, reported as FILE:LINE: PROBLEM.
type fileError struct {
	file string
	line int // 0 when the problem has no line
	msg  string
	err  error // the cause, for errors.Is; may be nil
}

func (e *fileError) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.file, e.line, e.msg)
	}
	return e.file + ": " + e.msg
}

func (e *fileError) Unwrap() error { return e.err }

// renderFile renders one template's content; file names it in errors. src is not modified.
func renderFile(file string, src []byte, goTemplate bool, d Data, lim limits) ([]byte, error) {
	if i := bytes.Index(src, []byte(idToken)); i >= 0 {
		if !d.HasIndex {
			return nil, noIndexError(file, 1+bytes.Count(src[:i], []byte("\n")), idToken, d.Hostname)
		}
		src = bytes.ReplaceAll(src, []byte(idToken), []byte(strconv.Itoa(d.Index)))
	}
	if !goTemplate {
		return src, nil
	}
	steps := &stepCounter{max: lim.maxSteps}
	t, err := tmpl.Parse(tmplName, string(src), funcs(d, lim, steps))
	if err != nil {
		return nil, templateError(file, err, d, lim.maxSteps)
	}
	t.Step = func() error { return steps.add(1) }
	out := &cappedBuffer{max: lim.maxOutput}
	if err := t.Execute(out, dataMap(d)); err != nil {
		if errors.Is(err, errTooLarge) {
			return nil, &fileError{file: file, msg: fmt.Sprintf("renders to more than %d MiB; is a range unbounded?", lim.maxOutput>>20), err: err}
		}
		return nil, templateError(file, err, d, lim.maxSteps)
	}
	return out.Bytes(), nil
}

// stepCounter stops a template that loops for hours printing nothing, which the output limit
// would never stop: every range iteration, template call and seq item is a step.
type stepCounter struct{ n, max int }

func (c *stepCounter) add(n int) error {
	if c.n += n; c.n > c.max {
		return errTooLong
	}
	return nil
}

func noIndexError(file string, line int, what, hostname string) error {
	return &fileError{file: file, line: line, err: ErrNoIndex, msg: fmt.Sprintf(
		"%s needs the replica index, but none is known: set --replica-index or SVINIT_REPLICA_INDEX "+
			"(from the apps.kubernetes.io/pod-index label), or run with a hostname ending in -N such as agdb-2 (the hostname is %q)",
		what, hostname)}
}

// dataMap is a map rather than a struct so that a misspelt key reads
// `map has no entry for key "Indx"`; unknown values are left out, so using one is an error.
func dataMap(d Data) map[string]any {
	m := map[string]any{"Hostname": d.Hostname}
	if d.HasIndex {
		m["Index"] = d.Index
	}
	if d.HasReplicas {
		m["Replicas"] = d.Replicas
	}
	return m
}

func funcs(d Data, lim limits, steps *stepCounter) tmpl.FuncMap {
	lookup := d.LookupEnv
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	return tmpl.FuncMap{
		"env": func(name string) (string, error) {
			v, ok := lookup(name)
			if !ok {
				return "", fmt.Errorf("environment variable %q is not set (use envOr %q \"default\" if it may be)", name, name)
			}
			return v, nil
		},
		"envOr": func(name, fallback string) string {
			if v, ok := lookup(name); ok {
				return v
			}
			return fallback
		},
		"seq": func(n int) ([]int, error) {
			if n < 0 || n > lim.maxSeq {
				return nil, fmt.Errorf("seq %d: want a count from 0 to %d", n, lim.maxSeq)
			}
			if err := steps.add(n); err != nil {
				return nil, err
			}
			s := make([]int, n)
			for i := range s {
				s[i] = i
			}
			return s, nil
		},
		"add": func(a, b int) int { return a + b },
		"join": func(sep string, list any) (string, error) {
			v := reflect.ValueOf(list)
			if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
				return "", fmt.Errorf("join: want a list such as (seq 3), got %T", list)
			}
			items := make([]string, v.Len())
			for i := range items {
				items[i] = fmt.Sprint(v.Index(i).Interface())
			}
			return strings.Join(items, sep), nil
		},
	}
}

// templateError turns a *tmpl.Error into FILE:LINE: PROBLEM, and explains a missing Index or
// Replicas.
func templateError(file string, err error, d Data, maxSteps int) error {
	var te *tmpl.Error
	if !errors.As(err, &te) {
		return &fileError{file: file, msg: err.Error(), err: err}
	}
	switch {
	case errors.Is(err, errTooLong):
		return &fileError{file: file, line: te.Line, err: err, msg: fmt.Sprintf(
			"runs too long: more than %d loop iterations, template calls and seq items; is a range unbounded?", maxSteps)}
	case te.Problem == `map has no entry for key "Index"` && !d.HasIndex:
		return noIndexError(file, te.Line, "{{ .Index }}", d.Hostname)
	case te.Problem == `map has no entry for key "Replicas"` && !d.HasReplicas:
		return &fileError{file: file, line: te.Line, err: err,
			msg: "{{ .Replicas }} needs the replica count, but none is known: set --replicas or SVINIT_REPLICAS"}
	}
	return &fileError{file: file, line: te.Line, msg: te.Problem, err: err}
}

var (
	errTooLarge = errors.New("output too large")
	errTooLong  = errors.New("too many steps")
)

// cappedBuffer stops a runaway template before it fills the memory. The buffer is not
// embedded: its ReadFrom would know no cap.
type cappedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.buf.Len()+len(p) > b.max {
		return 0, errTooLarge
	}
	return b.buf.Write(p)
}

func (b *cappedBuffer) Bytes() []byte { return b.buf.Bytes() }
