package render

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

const (
	// idToken is what the agdb start.sh replaced with sed "s/{id}/$AGDB_REPLICA_INDEX/g".
	idToken = "{id}"
	// goSuffix marks a file as a Go template.
	goSuffix = ".tmpl"
	// tmplName is the name text/template puts in its messages; it is replaced by the file's
	// path. A fixed name, because text/template does not escape '%' in it.
	tmplName = "svinit-template"
	// stepFunc is called at every range iteration and template call, to count them.
	stepFunc = "_svinitStep"
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
	t, err := template.New(tmplName).Option("missingkey=error").Funcs(funcs(d, lim)).Parse(string(src))
	if err != nil {
		return nil, templateError(file, err, d, lim.maxSteps)
	}
	countSteps(t)
	out := &cappedBuffer{max: lim.maxOutput}
	if err := t.Execute(out, dataMap(d)); err != nil {
		if errors.Is(err, errTooLarge) {
			return nil, &fileError{file: file, msg: fmt.Sprintf("renders to more than %d MiB; is a range unbounded?", lim.maxOutput>>20), err: err}
		}
		return nil, templateError(file, err, d, lim.maxSteps)
	}
	return out.Bytes(), nil
}

// countSteps makes every range iteration and every template call run {{ _svinitStep }}
// first, which fails once the template has taken too many steps. text/template has no
// other way to stop an execution, and a loop that prints nothing never reaches the
// output limit.
func countSteps(t *template.Template) {
	seen := map[*parse.Tree]bool{}
	for _, tt := range t.Templates() {
		if tt.Tree == nil || tt.Root == nil || seen[tt.Tree] {
			continue
		}
		seen[tt.Tree] = true
		addSteps(tt.Tree, tt.Root)
		prependStep(tt.Tree, tt.Root, tt.Root.Pos)
	}
}

func addSteps(tree *parse.Tree, list *parse.ListNode) {
	if list == nil {
		return
	}
	for _, n := range list.Nodes {
		switch n := n.(type) {
		case *parse.RangeNode:
			addSteps(tree, n.List)
			addSteps(tree, n.ElseList)
			prependStep(tree, n.List, n.Pos)
		case *parse.IfNode:
			addSteps(tree, n.List)
			addSteps(tree, n.ElseList)
		case *parse.WithNode:
			addSteps(tree, n.List)
			addSteps(tree, n.ElseList)
		}
	}
}

// prependStep puts {{ _svinitStep }} first in list; pos is where an error points.
func prependStep(tree *parse.Tree, list *parse.ListNode, pos parse.Pos) {
	if list == nil {
		return
	}
	cmd := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos,
		Args: []parse.Node{parse.NewIdentifier(stepFunc).SetTree(tree).SetPos(pos)}}
	action := &parse.ActionNode{NodeType: parse.NodeAction, Pos: pos,
		Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Cmds: []*parse.CommandNode{cmd}}}
	list.Nodes = append([]parse.Node{action}, list.Nodes...)
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

func funcs(d Data, lim limits) template.FuncMap {
	lookup := d.LookupEnv
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	steps := 0
	step := func(n int) error {
		if steps += n; steps > lim.maxSteps {
			return errTooLong
		}
		return nil
	}
	return template.FuncMap{
		stepFunc: func() (string, error) { return "", step(1) },
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
			if err := step(n); err != nil {
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

// templateError turns text/template's
//
//	template: NAME:LINE: PROBLEM                                  (parsing)
//	template: NAME:LINE:COL: executing "NAME" at <NODE>: PROBLEM  (executing)
//
// into FILE:LINE: PROBLEM, and explains a missing Index or Replicas. A message in another
// shape is kept whole, so nothing is lost if text/template changes its wording.
func templateError(file string, err error, d Data, maxSteps int) error {
	line, msg, ok := splitTemplateError(err.Error())
	if !ok {
		msg = strings.TrimPrefix(err.Error(), "template: ")
	}
	switch {
	case errors.Is(err, errTooLong):
		return &fileError{file: file, line: line, err: err, msg: fmt.Sprintf(
			"runs too long: more than %d loop iterations, template calls and seq items; is a range unbounded?", maxSteps)}
	case !ok:
		return &fileError{file: file, msg: msg, err: err}
	case msg == `map has no entry for key "Index"` && !d.HasIndex:
		return noIndexError(file, line, "{{ .Index }}", d.Hostname)
	case msg == `map has no entry for key "Replicas"` && !d.HasReplicas:
		return &fileError{file: file, line: line, err: err,
			msg: "{{ .Replicas }} needs the replica count, but none is known: set --replicas or SVINIT_REPLICAS"}
	}
	return &fileError{file: file, line: line, msg: msg, err: err}
}

func splitTemplateError(s string) (line int, msg string, ok bool) {
	rest, ok := strings.CutPrefix(s, "template: "+tmplName+":")
	if !ok {
		return 0, "", false
	}
	line, rest, ok = cutNumber(rest)
	if !ok {
		return 0, "", false
	}
	if r, found := strings.CutPrefix(rest, ": "); found {
		return line, r, true // a parse error
	}
	if _, rest, ok = cutNumber(strings.TrimPrefix(rest, ":")); !ok {
		return 0, "", false
	}
	rest, ok = strings.CutPrefix(rest, ": executing ")
	if !ok {
		return 0, "", false
	}
	name, err := strconv.QuotedPrefix(rest)
	if err != nil {
		return 0, "", false
	}
	rest, ok = strings.CutPrefix(rest[len(name):], " at <")
	if !ok {
		return 0, "", false
	}
	_, msg, ok = strings.Cut(rest, ">: ")
	return line, msg, ok
}

func cutNumber(s string) (n int, rest string, ok bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, err := strconv.Atoi(s[:i])
	return n, s[i:], err == nil
}

var (
	errTooLarge = errors.New("output too large")
	errTooLong  = errors.New("too many steps")
)

// cappedBuffer stops a runaway template before it fills the memory.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, errTooLarge
	}
	return b.Buffer.Write(p)
}
