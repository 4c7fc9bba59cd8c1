package tmpl_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"github.com/svinit/svinit/internal/tmpl"
)

// TestLanguage shows each part of the language at work on plain data; FuzzMatchesTextTemplate
// checks the same against text/template.
func TestLanguage(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"text {{/* comment */}} {{- 1 -}} x", "text 1x"},
		{"{{ .Map.d.e }} {{ .Struct.B }} {{ $.Index }} {{ .Ptr }} {{ .Map.c }}", "true b< 3 5 <no value>"},
		{`{{ .Index | add 1 | printf "%03d" }} {{ (seq 3) }} {{ (index .Map "d").e }}`, "004 [0 1 2] true"},
		{"{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ $y := 3 }}{{ end }}{{ $x }}", "2"},
		{"{{ if .Nil }}a{{ else if .None }}b{{ else if .List }}c{{ else }}d{{ end }}", "c"},
		{"{{ with .Empty }}x{{ else with .Map.d }}{{ .e }}{{ else }}y{{ end }}", "true"},
		{"{{ range $i, $v := .Strings }}{{ $i }}={{ $v }},{{ end }}", "0=a,1=b<,2=,"},
		{"{{ range $k, $v := .IntMap }}{{ $k }}:{{ $v }} {{ end }}", "-1:minus one 2:two 10:ten "},
		{"{{ range 3 }}{{ . }}{{ end }} {{ range .None }}x{{ else }}empty{{ end }}", "012 empty"},
		{"{{ range seq 9 }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if gt . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}", "0134"},
		{`{{ define "url" }}http://agdb-{{ . }}:3000{{ end }}{{ template "url" .Index }} {{ block "b" 1 }}[{{ . }}]{{ end }}`, "http://agdb-3:3000 [1]"},
		{"{{ and 1 0 .Nosuch }} {{ or 0 2 .Nosuch }} {{ not .List }} {{ len .Map }} {{ index .List 1 }} {{ slice .Hostname 5 }}", "0 2 false 4 1 3"},
		{`{{ print 1 "a" }} {{ println 2 }}{{ eq .Uint 7 }} {{ ne 1 2 }} {{ lt -1 .Uint }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1.5 2.5 }}`, "1a 2\ntrue true true true true false"},
		{`{{ html "<a&'\">" }} {{ js "it's <x>" }} {{ urlquery "a b&c" }} {{ call .Func 21 }}`, `&lt;a&amp;&#39;&#34;&gt; it\'s \u003Cx\u003E a+b%26c 42`},
		{`{{ env "X" }}|{{ envOr "UNSET" "dflt" }}|{{ seq 3 | join "," }}`, "x|dflt|[0 1 2],"},
	} {
		got, err := execute(tc.in, data())
		if err != nil || got != tc.want {
			t.Errorf("%s\n got %q, %v\nwant %q", tc.in, got, err, tc.want)
		}
	}
}

// TestErrors: each problem names its line; a function's or Step's error is wrapped.
func TestErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a\nb\n{{ if }}", "t:3: missing value for if"},
		{"\n{{ nosuch 1 }}", `t:2: function "nosuch" not defined`},
		{"x\n\n{{ .Indx }}", `t:3: map has no entry for key "Indx"`},
		{"{{ .Nil.x }}", `t:1: nil pointer evaluating interface {}.x`},
		{"{{ .Struct.hidden }}", "t:1: hidden is an unexported field of struct type interface {}"},
		{"\n{{ add .Hostname 1 }}", "t:2: wrong type for value; expected int; got string"},
		{"{{ add 1 }}", "t:1: wrong number of args for add: want 2 got 1"},
		{"a\n{{ env \"PEPPER\" }}", `t:2: error calling env: environment variable "PEPPER" is not set`},
		{`{{ template "nosuch" }}`, `t:1: template "nosuch" not defined`},
		{"{{ index .List 5 }}", "t:1: error calling index: index out of range: 5"},
		{"{{ lt 1 \"a\" }}", "t:1: error calling lt: incompatible types for comparison"},
		{"{{ .Func }}", "t:1: can't print {{.Func}} of type func(int) int"},
		{"{{ boom }}", "t:1: error calling boom: boom"},
		{"{{ range .Struct }}{{ end }}", "t:1: range can't iterate over a value of type struct { A int; B string; hidden bool }"},
		{"a\n{{ range 1000000000 }}{{ end }}", "t:2: too many steps"},
		{"{{ range seq 64 }}{{ range seq 64 }}{{ range seq 64 }}{{ end }}{{ end }}{{ end }}", "t:1: error calling seq: too many steps"},
	} {
		_, err := execute(tc.in, data())
		var te *tmpl.Error
		if err == nil || err.Error() != tc.want || !errors.As(err, &te) {
			t.Errorf("%s\n got %v\nwant %s", tc.in, err, tc.want)
		}
		if strings.Contains(tc.want, "too many steps") && !errors.Is(err, errTooLong) {
			t.Errorf("%s: %v does not wrap the Step's error", tc.in, err)
		}
	}
	// The writer's error comes back as it is.
	_, err := execute("{{ range seq 64 }}{{ range seq 64 }}"+strings.Repeat("x", 300)+"{{ end }}{{ end }}", data())
	if err != errTooLarge {
		t.Errorf("output limit: %v, want the writer's error", err)
	}
	if _, err := tmpl.Parse("t", "", tmpl.FuncMap{"two": func() (int, int) { return 1, 2 }}); err == nil {
		t.Error("a function whose second result is no error was accepted")
	}
	if _, err := tmpl.Parse("t", "", tmpl.FuncMap{"x": 1}); err == nil {
		t.Error("a function that is no function was accepted")
	}
}

// BenchmarkExecute runs the agdb config template, already parsed, through tmpl and
// text/template: internal/render's BenchmarkRender/gotemplate adds the parse and the rest.
func BenchmarkExecute(b *testing.B) {
	src, err := os.ReadFile(filepath.Join("..", "render", "testdata", "agdb", "agdb_server.yaml.tmpl"))
	if err != nil {
		b.Fatal(err)
	}
	d := map[string]any{"Index": 1, "Hostname": "agdb-1", "Replicas": 3}
	fm := funcs(func(int) error { return nil })
	mine, err := tmpl.Parse("agdb", string(src), fm)
	if err != nil {
		b.Fatal(err)
	}
	ref, err := template.New("agdb").Option("missingkey=error").Funcs(template.FuncMap(fm)).Parse(string(src))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		execute func(w io.Writer, data any) error
	}{{"tmpl", mine.Execute}, {"text-template", ref.Execute}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.execute(io.Discard, d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
