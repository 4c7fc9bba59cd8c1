// Package tmpl executes Go text/template syntax over plain data and a fixed set of functions,
// without ever looking a method up by name.
//
// text/template calls reflect.Value.MethodByName for every field it evaluates, and a binary
// that can reach that call keeps every exported method of every type it links (1.5 MB of
// svinit). This package parses with text/template/parse and walks the tree itself, with
// text/template's semantics (https://pkg.go.dev/text/template) for everything but methods:
//
//   - text, actions, comments and trim markers; pipelines and |; parenthesised pipelines;
//   - fields: .A.B on maps with string keys and on exported struct fields, through pointers and
//     interfaces; a missing map key is an error (text/template's missingkey=error); so is a
//     field of a nil value;
//   - variables: $, $x := and $x =, scoped to the end of the enclosing if, with or range;
//   - if, else if, else; with, else with, else; range over slices, arrays, maps (in sorted key
//     order), integers, with $i, $v, else, break and continue; define, template and block;
//   - the builtins and, or (short-circuit), not, len, index, slice, print, printf, println,
//     eq, ne, lt, le, gt, ge, html, js, urlquery and call, and the FuncMap given to Parse.
//
// Differences from text/template, none of which plain data can show: a field name is never a
// method (text/template would call a method of that name), and a value is not printed through
// a String or Error method of its pointer type; range over a channel or an iterator function
// is an error; map keys that are not numbers, strings or bools range in the order of their
// printed form; functions do not take or return reflect.Value.
package tmpl

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"text/template/parse"
	"unicode"
)

// FuncMap names the functions a template may call, as text/template's FuncMap does: each has
// one result, or two of which the second is an error that stops the execution.
type FuncMap map[string]any

// Template is a parsed template and the templates its text defines. It is not changed by
// Execute, which may run concurrently when Step may.
type Template struct {
	name  string
	text  string
	trees map[string]*parse.Tree
	funcs map[string]any // the builtins, then the FuncMap's functions
	// Step, when not nil, is called before the template's body, every template call and every
	// range iteration; an error from it stops the execution there. It bounds a template that
	// loops without writing, which no output limit would stop.
	Step func() error
}

// Error is a problem in a template's text or in its execution.
type Error struct {
	Name    string // the name given to Parse
	Line    int    // in the text, from 1; 0 when not known
	Problem string
	Err     error // the error of a function, a Step or a template, for errors.Is; may be nil
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Name, e.Line, e.Problem)
	}
	return e.Name + ": " + e.Problem
}

func (e *Error) Unwrap() error { return e.Err }

// Parse parses text, which may define other templates, and checks funcs. Errors are *Error.
// name should not contain '%': the parser formats its messages with it.
func Parse(name, text string, funcs FuncMap) (*Template, error) {
	t := &Template{name: name, text: text, funcs: builtins()}
	for fn, f := range funcs {
		if err := checkFunc(fn, f); err != nil {
			return nil, &Error{Name: name, Problem: err.Error()}
		}
		t.funcs[fn] = f
	}
	trees, err := parse.Parse(name, text, "", "", t.funcs)
	if err != nil {
		return nil, parseError(name, err)
	}
	t.trees = trees
	return t, nil
}

// checkFunc accepts what text/template's Funcs accepts.
func checkFunc(name string, f any) error {
	for i, r := range name {
		if r != '_' && !unicode.IsLetter(r) && (i == 0 || !unicode.IsDigit(r)) {
			return fmt.Errorf("function name %q is not a valid identifier", name)
		}
	}
	v := reflect.ValueOf(f)
	if name == "" || v.Kind() != reflect.Func {
		return fmt.Errorf("function %q: %T is not a function", name, f)
	}
	switch typ := v.Type(); {
	case typ.NumOut() == 1, typ.NumOut() == 2 && typ.Out(1) == errorType:
		return nil
	default:
		return fmt.Errorf("function %s: want one result, or two of which the second is an error; have %s", name, typ)
	}
}

// parseError turns the parser's "template: NAME:LINE: PROBLEM" into an *Error.
func parseError(name string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "template: ")
	if rest, ok := strings.CutPrefix(msg, name+":"); ok {
		if num, problem, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(num); err == nil {
				return &Error{Name: name, Line: line, Problem: problem}
			}
		}
	}
	return &Error{Name: name, Problem: msg}
}

// maxDepth bounds nested template calls, as in text/template.
const maxDepth = 100000

var (
	errorType = reflect.TypeFor[error]()
	// errBreak and errContinue carry {{ break }} and {{ continue }} to their range.
	errBreak    = errors.New("break outside range")
	errContinue = errors.New("continue outside range")
)

type variable struct {
	name  string
	value reflect.Value
}

// state is one execution.
type state struct {
	t     *Template
	w     io.Writer
	vars  []variable // innermost last
	depth int        // of template calls
}

// Execute runs the template on data, writing to w. An error of w is returned as it is; any
// other error is an *Error.
func (t *Template) Execute(w io.Writer, data any) error {
	dot := reflect.ValueOf(data)
	s := &state{t: t, w: w, vars: []variable{{"$", dot}}}
	return s.run(dot, t.trees[t.name])
}

// run executes one template's body.
func (s *state) run(dot reflect.Value, tree *parse.Tree) error {
	if err := s.step(tree.Root); err != nil {
		return err
	}
	return s.walk(dot, tree.Root)
}

func (s *state) step(at parse.Node) error {
	if s.t.Step == nil {
		return nil
	}
	if err := s.t.Step(); err != nil {
		return s.errorf(at, "%w", err)
	}
	return nil
}

// errorf makes the *Error for node n; a %w operand becomes its Err.
func (s *state) errorf(n parse.Node, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	line := 0
	if pos := int(n.Position()); pos >= 0 && pos <= len(s.t.text) {
		line = 1 + strings.Count(s.t.text[:pos], "\n")
	}
	return &Error{Name: s.t.name, Line: line, Problem: err.Error(), Err: errors.Unwrap(err)}
}

func (s *state) walk(dot reflect.Value, node parse.Node) error {
	switch n := node.(type) {
	case *parse.ListNode:
		for _, c := range n.Nodes {
			if err := s.walk(dot, c); err != nil {
				return err
			}
		}
	case *parse.TextNode:
		_, err := s.w.Write(n.Text)
		return err
	case *parse.ActionNode:
		v, err := s.evalPipeline(dot, n.Pipe)
		if err != nil || len(n.Pipe.Decl) > 0 { // a declaration prints nothing
			return err
		}
		return s.print(n, v)
	case *parse.IfNode:
		return s.walkBranch(dot, &n.BranchNode, false)
	case *parse.WithNode:
		return s.walkBranch(dot, &n.BranchNode, true)
	case *parse.RangeNode:
		return s.walkRange(dot, n)
	case *parse.TemplateNode:
		return s.walkTemplate(dot, n)
	case *parse.BreakNode:
		return errBreak
	case *parse.ContinueNode:
		return errContinue
	case *parse.CommentNode:
	default:
		return s.errorf(node, "unknown node: %s", node)
	}
	return nil
}

// walkBranch runs an if or a with: the variables its pipeline declares end with it.
func (s *state) walkBranch(dot reflect.Value, b *parse.BranchNode, with bool) error {
	mark := len(s.vars)
	v, err := s.evalPipeline(dot, b.Pipe)
	switch {
	case err != nil:
	case truth(v) && with:
		err = s.walk(v, b.List)
	case truth(v):
		err = s.walk(dot, b.List)
	case b.ElseList != nil:
		err = s.walk(dot, b.ElseList)
	}
	s.vars = s.vars[:mark]
	return err
}

func (s *state) walkRange(dot reflect.Value, r *parse.RangeNode) error {
	mark := len(s.vars)
	defer func() { s.vars = s.vars[:mark] }()
	v, err := s.evalPipeline(dot, r.Pipe)
	if err != nil {
		return err
	}
	bodyMark := len(s.vars) // the pipeline's declarations are on top
	decl := r.Pipe.Decl
	iteration := func(key, elem reflect.Value) error {
		switch {
		case r.Pipe.IsAssign && len(decl) == 2: // evalPipeline found the variables
			s.setVar(r, decl[0].Ident[0], key)
			s.setVar(r, decl[1].Ident[0], elem)
		case r.Pipe.IsAssign:
			s.setVar(r, decl[0].Ident[0], elem)
		case len(decl) > 0: // the element is the last declared, the key the one before
			s.vars[bodyMark-1].value = elem
			if len(decl) == 2 {
				s.vars[bodyMark-2].value = key
			}
		}
		err := s.step(r)
		if err == nil {
			err = s.walk(elem, r.List)
		}
		s.vars = s.vars[:bodyMark]
		if err == errContinue {
			return nil
		}
		return err
	}
	n, err := s.iterate(r, v, iteration)
	switch {
	case err == errBreak:
		return nil
	case err != nil:
		return err
	case n == 0 && r.ElseList != nil:
		return s.walk(dot, r.ElseList)
	}
	return nil
}

// iterate calls f for each key and element of v and returns how many there were.
func (s *state) iterate(r *parse.RangeNode, v reflect.Value, f func(key, elem reflect.Value) error) (int, error) {
	v, _ = indirect(v)
	switch v.Kind() {
	case reflect.Invalid: // nil: as an empty map
		return 0, nil
	case reflect.Array, reflect.Slice:
		for i := range v.Len() {
			if err := f(reflect.ValueOf(i), v.Index(i)); err != nil {
				return i + 1, err
			}
		}
		return v.Len(), nil
	case reflect.Map:
		keys := sortedKeys(v)
		for i, k := range keys {
			if err := f(k, v.MapIndex(k)); err != nil {
				return i + 1, err
			}
		}
		return len(keys), nil
	}
	if kind := numberKind(v); kind == intKind || kind == uintKind {
		if len(r.Pipe.Decl) > 1 {
			return 0, s.errorf(lastEvaluated(r.Pipe), "can't use %s to iterate over more than one variable", v.Type())
		}
		n := 0
		for ; kind == intKind && int64(n) < v.Int() || kind == uintKind && uint64(n) < v.Uint(); n++ {
			// the element has the integer's type; there is no key
			if err := f(reflect.Value{}, reflect.ValueOf(n).Convert(v.Type())); err != nil {
				return n + 1, err
			}
		}
		return n, nil
	}
	// The type, not text/template's value: the value may be a password read by env, and
	// the error is printed and logged.
	return 0, s.errorf(lastEvaluated(r.Pipe), "range can't iterate over a value of type %s", v.Type())
}

// lastEvaluated is the node of pipe that text/template evaluates last, whose line it gives
// to an error about the pipeline's value: the last argument of the last command.
func lastEvaluated(pipe *parse.PipeNode) parse.Node {
	if len(pipe.Cmds) == 0 {
		return pipe
	}
	cmd := pipe.Cmds[len(pipe.Cmds)-1]
	if len(cmd.Args) == 0 {
		return cmd
	}
	return cmd.Args[len(cmd.Args)-1]
}

func (s *state) walkTemplate(dot reflect.Value, n *parse.TemplateNode) error {
	tree := s.t.trees[n.Name]
	if tree == nil {
		return s.errorf(n, "template %q not defined", n.Name)
	}
	if s.depth == maxDepth {
		return s.errorf(n, "exceeded maximum template depth (%v)", maxDepth)
	}
	dot, err := s.evalPipeline(dot, n.Pipe) // its declarations stay in the caller's scope
	if err != nil {
		return err
	}
	vars := s.vars
	s.vars = []variable{{"$", dot}} // a template sees none of its caller's variables
	s.depth++
	err = s.run(dot, tree)
	s.depth--
	s.vars = vars
	return err
}

// setVar assigns to the innermost variable called name; the parser lets a range assign to
// one that was never declared.
func (s *state) setVar(n parse.Node, name string, v reflect.Value) error {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			s.vars[i].value = v
			return nil
		}
	}
	return s.errorf(n, "undefined variable: %s", name)
}

func (s *state) lookupVar(n parse.Node, name string) (reflect.Value, error) {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			return s.vars[i].value, nil
		}
	}
	return reflect.Value{}, s.errorf(n, "undefined variable: %s", name)
}

// print writes the value of an action.
func (s *state) print(n parse.Node, v reflect.Value) error {
	switch {
	case !v.IsValid():
	case v.Type() == stringType: // the common cases, without fmt
		_, err := io.WriteString(s.w, v.String())
		return err
	case v.Type() == intType:
		_, err := s.w.Write(strconv.AppendInt(nil, v.Int(), 10))
		return err
	}
	p, ok := printable(v)
	if !ok {
		return s.errorf(n, "can't print %s of type %s", n, v.Type())
	}
	_, err := fmt.Fprint(s.w, p)
	return err
}

var (
	stringType = reflect.TypeFor[string]()
	intType    = reflect.TypeFor[int]()
)

// printable is what fmt prints for v: pointers followed, nil as "<no value>"; functions and
// channels have no text.
func printable(v reflect.Value) (any, bool) {
	if v.Kind() == reflect.Pointer {
		v, _ = indirect(v)
	}
	switch v.Kind() {
	case reflect.Invalid:
		return "<no value>", true
	case reflect.Chan, reflect.Func:
		return nil, false
	}
	return v.Interface(), true
}
