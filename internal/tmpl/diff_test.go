package tmpl_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"text/template/parse"

	"github.com/svinit/svinit/internal/tmpl"
)

// text/template is the reference: the same template and data must give the same output
// through it and through tmpl, or an error from both. The data has no methods, channels or
// iterator functions, so the intended differences (package comment) cannot show:
//   - a field name is never a method, and no value is printed through its pointer's String;
//   - range over a channel or an iterator function is an error;
//   - map keys other than numbers, strings and bools range in the order of their printed form;
//   - functions do not take or return reflect.Value.
//
// Error messages are compared only for parse errors (one parser); an execution error must
// point at the same line.

// Bounds of one execution, as internal/render's: a template that loops stops at a step limit
// on both sides (text/template counts through a function call put in every loop body and
// template), one that writes too much at an output limit.
const (
	maxSteps  = 1 << 14
	maxOutput = 1 << 20
	maxSeq    = 64
	stepFunc  = "_step"
)

var (
	errTooLong  = errors.New("too many steps")
	errTooLarge = errors.New("output too large")
)

// FuzzMatchesTextTemplate runs the seeds (and every input a fuzz run kept in testdata) in
// every go test. After a change to this package, explore from them for a few minutes:
//
//	go test -run '^$' -fuzz '^FuzzMatchesTextTemplate$' -fuzztime=5m ./internal/tmpl/
//
// CI does not: a new mismatch found at random would decide whether an unrelated change lands.
func FuzzMatchesTextTemplate(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) { compare(t, text) })
}

func compare(t *testing.T, text string) {
	t.Helper()
	d := data() // one, so that pointers print the same
	want, wantErr, ok := reference(text, d)
	if !ok {
		t.Skip("text/template panicked")
	}
	got, gotErr := execute(text, d)
	switch {
	case wantErr != nil && gotErr != nil:
		compareErrors(t, text, wantErr, gotErr)
	case wantErr != nil || gotErr != nil:
		t.Fatalf("%q:\ntext/template: %q, %v\n         tmpl: %q, %v", text, want, wantErr, got, gotErr)
	case got != want:
		t.Fatalf("%q:\ntext/template: %q\n         tmpl: %q", text, want, got)
	}
}

// compareErrors: a parse error is the same message; an execution error is on the same line.
func compareErrors(t *testing.T, text string, want, got error) {
	t.Helper()
	var te *tmpl.Error
	if errors.Is(want, errTooLarge) || errors.Is(got, errTooLarge) || !errors.As(got, &te) {
		return
	}
	ref := want.Error()
	if _, isExec := errors.AsType[template.ExecError](want); !isExec {
		if wantMsg := fmt.Sprintf("template: %s:%d: %s", te.Name, te.Line, te.Problem); ref != wantMsg {
			t.Fatalf("%q: parse error\ntext/template: %s\n         tmpl: %s", text, ref, wantMsg)
		}
		return
	}
	if !strings.HasPrefix(ref, fmt.Sprintf("template: %s:%d:", te.Name, te.Line)) {
		t.Errorf("%q: error on another line\ntext/template: %s\n         tmpl: %v", text, ref, got)
	}
}

// execute runs text through tmpl.
func execute(text string, data map[string]any) (string, error) {
	step := stepCounter()
	t, err := tmpl.Parse("t", text, funcs(step))
	if err != nil {
		return "", err
	}
	t.Step = func() error { return step(1) }
	var out cappedBuffer
	err = t.Execute(&out, data)
	return out.String(), err
}

// reference runs text through text/template; ok is false when it panicked.
func reference(text string, data map[string]any) (out string, err error, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	step := stepCounter()
	fm := template.FuncMap(funcs(step))
	fm[stepFunc] = func() (string, error) { return "", step(1) }
	t, err := template.New("t").Option("missingkey=error").Funcs(fm).Parse(text)
	if err != nil {
		return "", err, true
	}
	countSteps(t)
	var b cappedBuffer
	err = t.Execute(&b, data)
	return b.String(), err, true
}

// stepCounter returns a function that adds steps and fails past maxSteps.
func stepCounter() func(n int) error {
	steps := 0
	return func(n int) error {
		if steps += n; steps > maxSteps {
			return errTooLong
		}
		return nil
	}
}

// countSteps makes every range iteration and template body call {{ _step }} first, where
// tmpl calls Step.
func countSteps(t *template.Template) {
	for _, tt := range t.Templates() {
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

func prependStep(tree *parse.Tree, list *parse.ListNode, pos parse.Pos) {
	cmd := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos,
		Args: []parse.Node{parse.NewIdentifier(stepFunc).SetTree(tree).SetPos(pos)}}
	action := &parse.ActionNode{NodeType: parse.NodeAction, Pos: pos,
		Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Cmds: []*parse.CommandNode{cmd}}}
	list.Nodes = append([]parse.Node{action}, list.Nodes...)
}

type cappedBuffer struct{ bytes.Buffer }

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxOutput {
		return 0, errTooLarge
	}
	return b.Buffer.Write(p)
}

// funcs are svinit's template functions (internal/render's and the license http
// provider's, with their signatures), and functions of other shapes, to check how arguments
// are converted.
func funcs(step func(int) error) tmpl.FuncMap {
	env := map[string]string{"X": "x", "EMPTY": ""}
	return tmpl.FuncMap{
		"env": func(name string) (string, error) {
			if v, ok := env[name]; ok {
				return v, nil
			}
			return "", fmt.Errorf("environment variable %q is not set", name)
		},
		"envOr": func(name, fallback string) string {
			if v, ok := env[name]; ok {
				return v
			}
			return fallback
		},
		"seq": func(n int) ([]int, error) {
			if n < 0 || n > maxSeq {
				return nil, fmt.Errorf("seq %d: want a count from 0 to %d", n, maxSeq)
			}
			s := make([]int, n)
			for i := range s {
				s[i] = i
			}
			return s, step(n)
		},
		"add":   func(a, b int) int { return a + b },
		"join":  func(sep string, list any) (string, error) { return fmt.Sprint(list) + sep, nil },
		"query": url.QueryEscape,
		"path":  url.PathEscape,
		"json":  func(s string) string { q := strconv.Quote(s); return q[1 : len(q)-1] },
		// other shapes
		"fail": func() (string, error) { return "", errors.New("failed") },
		"boom": func() string { panic("boom") },
		"sum": func(base int, more ...int) int {
			for _, m := range more {
				base += m
			}
			return base
		},
		"pair":  func(a any, b string) string { return fmt.Sprint(a, "/", b) },
		"u8":    func(x uint8) uint8 { return x + 1 },
		"half":  func(x float64) float64 { return x / 2 },
		"cplx":  func(c complex128) complex128 { return c * 2 },
		"flip":  func(b bool) bool { return !b },
		"count": func(s []int) int { return len(s) },
		"deref": func(p *int) int {
			if p == nil {
				return -1
			}
			return *p
		},
		"keys": func(m map[string]any) int { return len(m) },
	}
}

// data has what render's and the license provider's templates see, and the other kinds of
// plain data.
func data() map[string]any {
	five := 5
	return map[string]any{
		"Index": 3, "Hostname": "agdb-3", "Replicas": 3,
		"URL": "https://licenses.example.com/v1", "Key": "K3Y sec&ret=1", "Instance": `web "0"/<1>`, "ID": "",
		"Int8": int8(-2), "Uint": uint(7), "Float": 2.5, "NaN": math.NaN(), "Cplx": 1 + 2i, "Bool": true, "Nil": nil,
		"List": []int{3, 1, 2}, "Strings": []string{"a", "b<", ""}, "Any": []any{1, "x", nil, 2.5, []int{1}},
		"Map":    map[string]any{"a": 1, "b": "two", "c": nil, "d": map[string]any{"e": true}},
		"IntMap": map[int]string{2: "two", -1: "minus one", 10: "ten"},
		"Empty":  map[string]any{}, "None": []int{}, "Bytes": []byte("hi\x00é"), "Array": [2]int{1, 2},
		"Struct": struct {
			A      int
			B      string
			hidden bool
		}{1, "b<", true},
		"Ptr": &five, "NilPtr": (*int)(nil), "Func": func(a int) int { return a * 2 },
	}
}

// seeds: the agdb cluster list of the README, every file in internal/render/testdata (its
// fuzz corpus included), the license http provider's templates of its tests, and one or more
// templates for every part of the language.
func seeds(tb testing.TB) []string {
	s := []string{
		"cluster: [{{ range $i := seq .Replicas }}{{ if $i }}, {{ end }}http://agdb-{{ $i }}.agdb.default.svc.cluster.local:3000{{ end }}]",
		// the license http provider
		"{{.URL}}/activation?key={{query .Key}}&deployment={{query .Instance}}&quantity=1",
		"{{.URL}}/deactivation?key={{query .Key}}&deployment={{query .Instance}}",
		"{{.URL}}/machines", "License {{.Key}}", "application/json", "GET", "POST", "PUT", "PATCH", "DELETE",
		`{"key":"{{json .Key}}","fingerprint":"{{json .Instance}}"}`,
		"{{.URL}}/machines/{{path .ID}}", "{{.URL}}/machines/{{path .ID}}?key={{query .Key}}",
		"{{.URL}}/v1/nodes/{{path .Instance}}", "{{.URL}}/a?t={{.Token}}", "{{.URL}/d",
		// render's tests
		`{{ .Index }} {{ .Hostname }} {{ .Replicas }}`, `{{ env "X" }}|{{ env "EMPTY" }}|{{ envOr "UNSET" "dflt" }}`,
		`{{ range seq .Replicas }}[{{ . }}]{{ end }}|{{ range seq 0 }}x{{ end }}`, `{{ seq .Replicas | join "," }}`,
		`{{ add 7000 .Index }} {{ add .Index -1 }}`, `{{ if eq .Index 0 }}leader{{ else }}follower{{ end }}`,
		`{{ define "url" }}http://agdb-{{ . }}:3000{{ end }}{{ template "url" .Index }}`, "",
		"a\nb\n{{ if }}\n", "a\n{{ range seq 3 }}\n", "\n\n\n{{ nosuch 1 }}", "{{ seq 100000 }}", "\n{{ add .Hostname 1 }}",
		`{{ join "," 3 }}`, `{{ template "nosuch" }}`, "a\n{{ env \"PEPPER\" }}", "x\n{{ .Indx }}",
		"a\n{{ range 1000000000 }}{{ end }}", "{{ range seq 30 }}\n{{ range seq 30 }}{{ range seq 30 }}{{ end }}{{ end }}{{ end }}",
		"{{ define \"a\" }}{{ template \"a\" }}{{ template \"a\" }}{{ end }}\n\n{{ template \"a\" }}",
		// fields, variables, pipelines
		"{{ .Map.d.e }} {{ .Map.a }} {{ .Map.c }} {{ .Map.x }}", "{{ .Nil.x }}", "{{ .Struct.A }}{{ .Struct.B }}", "{{ .Struct.hidden }}",
		"{{ .Struct.C }}", "{{ .Ptr }} {{ .NilPtr }} {{ .Ptr.X }}", "{{ .IntMap.x }}", "{{ .Hostname.x }}", "{{ .Map.a 1 }}", "{{ 1 | .Map.a }}",
		"{{ $x := .Map }}{{ $x.b }} {{ $.Index }} {{ $x = 3 }}{{ $x }}", "{{ (seq 3).x }}", "{{ (index .Map \"d\").e }}", "{{ $ }}",
		"{{ .Index | add 1 | add 2 | printf \"%03d\" }}", "{{ .Nil | print }}", "{{ (1) 2 }}", "{{ $x := 1 }}{{ $x 2 }}", "{{ nil }}",
		"{{ 1 2 }}", "{{ \"s\" | 3 }}", "{{ len.X }}", "{{ (nil).X }}", "{{ .Func }}", "{{ .Func 1 }}", "{{ call .Func 4 }}",
		"{{ call .Func }}", "{{ call .Func \"x\" }}", "{{ call .Index }}", "{{ call nil }}", "{{ call .Func .Uint }}",
		// constants
		"{{ 1 }} {{ -1 }} {{ 1.5 }} {{ 1e3 }} {{ 0x1F }} {{ 0x1p4 }} {{ 'a' }} {{ 1i }} {{ 0b101 }} {{ 0o17 }} {{ 1_000 }}",
		"{{ 99999999999999999999 }}", "{{ 18446744073709551615 }}", "{{ -0x1e }}", "{{ true }} {{ false }} {{ \"q\" }} {{ `raw` }}",
		"{{ if -0.0 }}t{{ else }}f{{ end }}",
		// control structures
		"{{ if .Nil }}a{{ else if .None }}b{{ else if .Empty }}c{{ else if .List }}d{{ end }}",
		"{{ with .Map.d }}{{ .e }}{{ else with .Map.b }}{{ . }}{{ else }}none{{ end }}", "{{ with $x := .List }}{{ $x }}{{ end }}{{ $x }}",
		"{{ range $i, $v := .Any }}{{ $i }}={{ $v }};{{ end }}", "{{ range $k, $v := .Map }}{{ $k }}:{{ $v }} {{ end }}",
		"{{ range .IntMap }}{{ . }},{{ end }}", "{{ range $i, $e := .IntMap }}{{ $i }}{{ end }}", "{{ range .None }}x{{ else }}empty{{ end }}",
		"{{ range .Nil }}x{{ else }}nil{{ end }}", "{{ range 3 }}{{ . }}{{ end }}", "{{ range $i := .Uint }}{{ $i }}{{ end }}",
		"{{ range $i, $v := 3 }}{{ end }}", "{{ range .Int8 }}x{{ else }}neg{{ end }}", "{{ range .Hostname }}{{ . }}{{ end }}",
		"{{ range .Struct }}{{ end }}", "{{ range .Array }}{{ . }}{{ end }}", "{{ range .Bytes }}{{ . }}{{ end }}",
		"{{ range $i := seq 5 }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ if eq $i 3 }}{{ break }}{{ end }}{{ $i }}{{ end }}",
		"{{ $i := 9 }}{{ range $i = seq 2 }}{{ end }}{{ $i }}", "{{ $k := 0 }}{{ $v := 0 }}{{ range $k, $v = .List }}{{ end }}{{ $k }}{{ $v }}",
		"{{ $x := 0 }}{{ range seq 3 }}{{ $x = . }}{{ end }}{{ $x }}", "{{ range seq 2 }}{{ $y := . }}{{ end }}",
		"{{ define \"t\" }}[{{ . }}{{ $ }}]{{ end }}{{ template \"t\" }}{{ template \"t\" .List }}{{ block \"b\" .Index }}<{{ . }}>{{ end }}",
		"{{ define \"t\" }}{{ $x }}{{ end }}{{ $x := 1 }}{{ template \"t\" }}", "{{ template \"t\" }}{{ define \"t\" }}d{{ end }}",
		"{{ define \"t\" }}a{{ end }}{{ define \"t\" }}b{{ end }}", "{{/* a comment */}}x{{- /* trimmed */ -}} y {{- 1 -}} z",
		"{{ define \"t\" }}{{ break }}{{ end }}", "{{ break }}", "{{ end }}", "{{ else }}", "{{ .Index", "{{ \"a }}", "}}{{",
		// builtins
		"{{ and 1 0 .Nosuch }} {{ or 0 \"\" 2 .Nosuch }} {{ and 1 2 }} {{ or 0 .Nil }} {{ 0 | and 1 }} {{ 3 | or 0 }} {{ not .None }} {{ and }}",
		"{{ len .List }} {{ len .Map }} {{ len .Hostname }} {{ len .Nil }} {{ len 3 }} {{ len .NilPtr }} {{ len nil }} {{ len .Array }}",
		"{{ index .List 1 }} {{ index .Map \"d\" \"e\" }} {{ index .Map \"zz\" }} {{ index .IntMap 2 }} {{ index .Hostname 0 }} {{ index .List }}",
		"{{ index .List 3 }}", "{{ index .List -1 }}", "{{ index .IntMap \"a\" }}", "{{ index .IntMap .Uint }}", "{{ index nil 1 }}",
		"{{ index .List nil }}", "{{ index .Index 0 }}", "{{ index .List 1.0 }}", "{{ index .Any 2 }}", "{{ index .NilPtr 1 }}",
		"{{ slice .List 1 }} {{ slice .List 1 2 }} {{ slice .List 0 1 2 }} {{ slice .Hostname 2 }} {{ slice .List }} {{ slice .Bytes 1 }}",
		"{{ slice .List 2 1 }}", "{{ slice .List 0 4 }}", "{{ slice .Hostname 0 1 2 }}", "{{ slice .Index }}", "{{ slice .List 1 2 3 4 }}",
		"{{ slice .Array 1 }}", "{{ slice nil }}", "{{ slice .List 0 2 1 }}",
		"{{ print 1 \"a\" nil .Nil .List }} {{ println 1 2 }} {{ printf \"%d-%s-%v-%q\" 1 \"a\" .Nil .Hostname }} {{ printf 3 }} {{ printf }}",
		"{{ printf .Hostname }} {{ printf \"%d\" .Hostname }} {{ print .Struct }} {{ print .Ptr }}",
		"{{ html \"<a href='x'>&\\\"\\x00\" }} {{ html 1 nil }} {{ html .Nil }} {{ js \"a'b\\\"c\\\\d<e>f&g=h\\ni\\u2028é\\x01\" }}",
		"{{ js .Bytes }} {{ js .Hostname 1 }} {{ js \"\\xff\\u00ad\" }} {{ urlquery \"a b&c\" 1 }} {{ urlquery }}",
		"{{ eq 1 1 }} {{ eq 1 2 3 1 }} {{ eq .Index 3 }} {{ eq .Uint 7 }} {{ eq .Int8 -2 }} {{ eq 1 1.0 }} {{ eq \"a\" \"a\" }} {{ eq nil nil }}",
		"{{ eq .Nil nil }} {{ eq .List .List }} {{ eq .Map nil }} {{ eq 1 nil }} {{ eq .NaN .NaN }} {{ eq true true }} {{ eq .Cplx .Cplx }}",
		"{{ eq 1 }}", "{{ eq .Struct .Struct }}", "{{ eq .List 1 }}", "{{ eq .Func .Func }}", "{{ eq .Map .List }}", "{{ eq true 1 }}",
		"{{ ne 1 2 }} {{ ne \"a\" \"a\" }} {{ lt 1 2 }} {{ lt .Uint -1 }} {{ lt -1 .Uint }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1.5 2.5 }}",
		"{{ lt .NaN 1.0 }} {{ le .NaN 1.0 }} {{ gt .NaN 1.0 }} {{ ge .NaN 1.0 }} {{ ne .NaN .NaN }}",
		"{{ lt true false }}", "{{ lt 1 \"a\" }}", "{{ lt nil 1 }}", "{{ le .Cplx .Cplx }}", "{{ gt .List 1 }}", "{{ ne 1 }}", "{{ lt 1 2 3 }}",
		// function arguments
		"{{ sum 1 }} {{ sum 1 2 3 }} {{ 4 | sum 1 }} {{ 4 | sum }} {{ sum }}", "{{ pair nil \"b\" }} {{ pair .Nil .Hostname }} {{ pair 1 2 }}",
		"{{ u8 1 }} {{ u8 -1 }} {{ u8 .Uint }} {{ half 3 }}", "{{ half 3.0 }} {{ cplx 1i }} {{ flip true }} {{ flip 1 }}", "{{ cplx 1 }}",
		"{{ count .List }} {{ count nil }} {{ count .Nil }} {{ count .Any }}", "{{ deref .Ptr }} {{ deref .NilPtr }} {{ deref nil }} {{ deref .Index }}",
		"{{ keys .Map }} {{ keys nil }} {{ keys .IntMap }}", "{{ add .Uint 1 }}", "{{ add .Ptr 1 }}", "{{ add .NilPtr 1 }}", "{{ add . 1 }}",
		"{{ add 1 }}", "{{ add 1 2 3 }}", "{{ 1 | add 2 3 }}", "{{ fail }}", "{{ boom }}", "{{ add true 1 }}", "{{ add 1.5 1 }}", "{{ add \"1\" 1 }}",
		"{{ env 1 }}", "{{ env .Nil }}", "{{ .Nil | env }}", "{{ envOr nil \"x\" }}", "{{ with .Nil }}{{ else }}{{ add . 1 }}{{ end }}",
	}
	root := filepath.Join("..", "render", "testdata")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		text := string(b)
		if rest, ok := strings.CutPrefix(text, "go test fuzz v1\n[]byte("); ok { // a corpus entry: its text
			end := strings.Index(rest, ")\n")
			if text, err = strconv.Unquote(rest[:end]); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		s = append(s, text)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
