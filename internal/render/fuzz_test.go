package render

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzRender feeds arbitrary template text to both syntaxes, with and without an index.
// Nothing may panic; a plain file must render exactly as the sed would; every error must
// name the file. Small limits keep one input fast, also one that loops.
func FuzzRender(f *testing.F) {
	for _, name := range []string{"agdb_server.yaml", "agdb_server.yaml.tmpl", "start.sh"} {
		b, err := os.ReadFile(filepath.Join("testdata", "agdb", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, strings.HasSuffix(name, goSuffix), true)
	}
	for _, s := range []string{
		"{id}", "{{id}}", "{{ .Index }}", "{{ .Indx }}", `{{ env "X" }}`, `{{ envOr "X" "y" }}`,
		`{{ seq .Replicas | join "," }}`, `{{ add .Index 1 }}`, `{{ range $i := seq 3 }}{{ $i }}{{ end }}`,
		"{{ if }}", "{{ template \"t\" }}", "{{ define \"t\" }}{{ template \"t\" }}{{ end }}{{ template \"t\" }}",
		"{{ printf \"%d\" .Hostname }}", "{{ index .Hostname 99 }}", "{{ . }}", "{{ /* c */ }}", "{{- .Index -}}",
	} {
		f.Add([]byte(s), true, true)
		f.Add([]byte(s), true, false)
	}
	env := envMap(map[string]string{"X": "x", "EMPTY": ""})
	lim := limits{maxSeq: 64, maxOutput: 1 << 20, maxSteps: 1 << 14}
	f.Fuzz(func(t *testing.T, src []byte, goTemplate, hasIndex bool) {
		d := Data{Index: 3, HasIndex: hasIndex, Hostname: "agdb-3", Replicas: 3, HasReplicas: true, LookupEnv: env}
		orig := bytes.Clone(src)
		out, err := renderFile("fuzz.tmpl", src, goTemplate, d, lim)
		if !bytes.Equal(src, orig) {
			t.Fatal("the input was modified")
		}
		if err != nil && !strings.HasPrefix(err.Error(), "fuzz.tmpl:") {
			t.Fatalf("error does not name the file: %v", err)
		}
		if goTemplate {
			return
		}
		switch {
		case !hasIndex && bytes.Contains(src, []byte(idToken)):
			if !errors.Is(err, ErrNoIndex) {
				t.Fatalf("no index: got %v, want ErrNoIndex", err)
			}
		case err != nil:
			t.Fatalf("a plain file failed: %v", err)
		case !bytes.Equal(out, bytes.ReplaceAll(src, []byte(idToken), []byte(strconv.Itoa(d.Index)))):
			t.Fatalf("plain file: got %q", out)
		}
	})
}

// BenchmarkRender renders the agdb server config in memory, as sed did and as a Go
// template with its cluster list.
func BenchmarkRender(b *testing.B) {
	d := Data{Index: 1, HasIndex: true, Hostname: "agdb-1", Replicas: 3, HasReplicas: true, LookupEnv: envMap(nil)}
	for _, bc := range []struct {
		name, file string
		goTemplate bool
	}{
		{"sed", "agdb_server.yaml", false},
		{"gotemplate", "agdb_server.yaml.tmpl", true},
	} {
		src, err := os.ReadFile(filepath.Join("testdata", "agdb", bc.file))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, err := renderFile(bc.file, src, bc.goTemplate, d, defaultLimits()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPrepareWrite is the whole job for the agdb config: read, render, check, write
// atomically with its fsyncs.
func BenchmarkPrepareWrite(b *testing.B) {
	src, err := filepath.Abs(filepath.Join("testdata", "agdb", "agdb_server.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	specs := []Spec{{Src: src, Dst: filepath.Join(b.TempDir(), "agdb_server.yaml")}}
	opts := Options{Data: Data{Index: 1, HasIndex: true}}
	for b.Loop() {
		plan, err := Prepare(specs, opts)
		if err == nil {
			err = plan.Write()
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
