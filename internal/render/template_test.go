package render

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestAgdbClusterList(t *testing.T) {
	src, err := filepath.Abs(filepath.Join("testdata", "agdb", "agdb_server.yaml.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	orig, err := filepath.Abs(filepath.Join("testdata", "agdb", "agdb_server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	clusterLine := func(t *testing.T, yaml string) string {
		for _, l := range strings.Split(yaml, "\n") {
			if strings.HasPrefix(l, "cluster:") {
				return l
			}
		}
		t.Fatalf("no cluster line in\n%s", yaml)
		return ""
	}
	for _, tc := range []struct {
		replicas int
		want     string
	}{
		{1, "cluster: [http://agdb-0.agdb.default.svc.cluster.local:3000]"},
		{3, "cluster: [http://agdb-0.agdb.default.svc.cluster.local:3000, http://agdb-1.agdb.default.svc.cluster.local:3000, http://agdb-2.agdb.default.svc.cluster.local:3000]"},
		{7, "cluster: [http://agdb-0.agdb.default.svc.cluster.local:3000, http://agdb-1.agdb.default.svc.cluster.local:3000, " +
			"http://agdb-2.agdb.default.svc.cluster.local:3000, http://agdb-3.agdb.default.svc.cluster.local:3000, " +
			"http://agdb-4.agdb.default.svc.cluster.local:3000, http://agdb-5.agdb.default.svc.cluster.local:3000, " +
			"http://agdb-6.agdb.default.svc.cluster.local:3000]"},
	} {
		for index := range tc.replicas {
			dst := filepath.Join(t.TempDir(), "agdb_server.yaml")
			render(t, []Spec{{Src: src, Dst: dst}}, Options{Data: Data{
				Index: index, HasIndex: true, Replicas: tc.replicas, HasReplicas: true, LookupEnv: envMap(nil)}})
			got := readFile(t, dst)
			if l := clusterLine(t, got); l != tc.want {
				t.Errorf("%d replicas:\n got %s\nwant %s", tc.replicas, l, tc.want)
			}
			if want := "address: http://agdb-" + itoa(index) + ".agdb"; !strings.Contains(got, want) {
				t.Errorf("replica %d: no %q in\n%s", index, want, got)
			}
			if tc.replicas == 3 { // the ConfigMap's own list: the whole file is the sed output
				if want := string(sed(t, orig, itoa(index))); got != want {
					t.Errorf("replica %d of 3:\n got %q\nwant %q", index, got, want)
				}
			}
		}
	}
	// The token comes from the environment when it is set.
	dst := filepath.Join(t.TempDir(), "agdb_server.yaml")
	render(t, []Spec{{Src: src, Dst: dst}}, Options{Data: Data{HasIndex: true, Replicas: 1, HasReplicas: true,
		LookupEnv: envMap(map[string]string{"AGDB_CLUSTER_TOKEN": "s3cret"})}})
	if got := readFile(t, dst); !strings.Contains(got, "cluster_token: s3cret\n") {
		t.Errorf("token not from the environment:\n%s", got)
	}
}

func TestTemplateFunctions(t *testing.T) {
	data := Data{Index: 2, HasIndex: true, Hostname: "agdb-2", Replicas: 3, HasReplicas: true,
		LookupEnv: envMap(map[string]string{"EMPTY": "", "PORT": "3000"})}
	for _, tc := range []struct{ in, want string }{
		{`{{ .Index }} {{ .Hostname }} {{ .Replicas }}`, "2 agdb-2 3"},
		{`{{ env "PORT" }}|{{ env "EMPTY" }}|{{ envOr "UNSET" "dflt" }}|{{ envOr "EMPTY" "dflt" }}`, "3000||dflt|"},
		{`{{ range seq .Replicas }}[{{ . }}]{{ end }}|{{ range seq 0 }}x{{ end }}`, "[0][1][2]|"},
		{`{{ seq .Replicas | join "," }}|{{ join ", " (seq 1) }}`, "0,1,2|0"},
		{`{{ add 7000 .Index }} {{ add .Index -1 }}`, "7002 1"},
		{`{id}-{{ .Index }}-{{ "{" }}id}`, "2-2-{id}"}, // {id} works in Go templates too
		{`{{ if eq .Index 0 }}leader{{ else }}follower of agdb-0{{ end }}`, "follower of agdb-0"},
		{`{{ define "url" }}http://agdb-{{ . }}:3000{{ end }}{{ template "url" .Index }}`, "http://agdb-2:3000"},
		{"", ""},
	} {
		got, err := renderFile("t.tmpl", []byte(tc.in), true, data, defaultLimits())
		if err != nil || string(got) != tc.want {
			t.Errorf("%s\n got %q, %v\nwant %q", tc.in, got, err, tc.want)
		}
	}
	// A plain file keeps its braces: Helm-style text is not a template unless it opts in.
	in := `{{ .Values.x }} {id}`
	if got, err := renderFile("values.yaml", []byte(in), false, data, defaultLimits()); err != nil || string(got) != "{{ .Values.x }} 2" {
		t.Errorf("plain file: %q, %v", got, err)
	}
}

// TestTemplateErrors checks each kind of problem and its message: FILE:LINE: PROBLEM.
func TestTemplateErrors(t *testing.T) {
	dir := t.TempDir()
	full := Data{Index: 1, HasIndex: true, Hostname: "agdb-1", Replicas: 3, HasReplicas: true, LookupEnv: envMap(nil)}
	noIndex := Data{Hostname: "laptop", Replicas: 3, HasReplicas: true}
	for _, tc := range []struct {
		name, content string
		data          Data
		want          string
		is            error
	}{
		{"agdb_server.yaml.tmpl", "bind: :::3000\naddress: x\nid: {{ .Indx }}\n", full,
			`agdb_server.yaml.tmpl:3: map has no entry for key "Indx"`, nil},
		{"env.tmpl", "a\npepper: {{ env \"PEPPER\" }}\n", full,
			`env.tmpl:2: error calling env: environment variable "PEPPER" is not set (use envOr "PEPPER" "default" if it may be)`, nil},
		{"plain.yaml", "a: 1\n\naddress: http://agdb-{id}.agdb\n", noIndex,
			`plain.yaml:3: {id} needs the replica index, but none is known: set --replica-index or SVINIT_REPLICA_INDEX ` +
				`(from the apps.kubernetes.io/pod-index label), or run with a hostname ending in -N such as agdb-2 (the hostname is "laptop")`, ErrNoIndex},
		{"index.tmpl", "a: 1\nid: {{ .Index }}\n", noIndex,
			`index.tmpl:2: {{ .Index }} needs the replica index, but none is known: set --replica-index or SVINIT_REPLICA_INDEX ` +
				`(from the apps.kubernetes.io/pod-index label), or run with a hostname ending in -N such as agdb-2 (the hostname is "laptop")`, ErrNoIndex},
		{"replicas.tmpl", "{{ range seq .Replicas }}{{ end }}", Data{HasIndex: true},
			`replicas.tmpl:1: {{ .Replicas }} needs the replica count, but none is known: set --replicas or SVINIT_REPLICAS`, nil},
		{"parse.tmpl", "a\nb\n{{ if }}\n", full, `parse.tmpl:3: missing value for if`, nil},
		{"unclosed.tmpl", "a\n{{ range seq 3 }}\n", full, `unclosed.tmpl:3: unexpected EOF`, nil},
		{"func.tmpl", "\n\n\n{{ nosuch 1 }}", full, `func.tmpl:4: function "nosuch" not defined`, nil},
		{"seq.tmpl", "{{ seq 100000 }}", full, `seq.tmpl:1: error calling seq: seq 100000: want a count from 0 to 65536`, nil},
		{"type.tmpl", "\n{{ add .Hostname 1 }}", full, `type.tmpl:2: wrong type for value; expected int; got string`, nil},
		{"join.tmpl", `{{ join "," 3 }}`, full, `join.tmpl:1: error calling join: join: want a list such as (seq 3), got int`, nil},
		{"undefined.tmpl", `{{ template "nosuch" }}`, full, `undefined.tmpl:1: template "nosuch" not defined`, nil},
	} {
		src := filepath.Join(dir, tc.name)
		writeFile(t, src, tc.content, 0o644)
		dst := filepath.Join(dir, "out", tc.name)
		err := prepareErr(t, []Spec{{Src: src, Dst: dst}}, tc.data)
		if want := filepath.Join(dir, tc.want); err.Error() != want {
			t.Errorf("%s:\n got %v\nwant %s", tc.name, err, want)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: %v is not %v", tc.name, err, tc.is)
		}
		if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: DST exists after a failed render: %v", tc.name, err)
		}
	}
}

// A template's values (a password from the environment) never reach an error, which is
// printed at the start and logged at every change --template-watch renders: a problem names
// the type of the value at fault, not the value.
func TestTemplateErrorsNeverShowAValue(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	d := Data{LookupEnv: envMap(map[string]string{"DB_PASSWORD": secret})}
	for _, tpl := range []string{
		`{{ range env "DB_PASSWORD" }}{{ end }}`,
		`{{ range $i, $c := (len (env "DB_PASSWORD")) }}{{ end }}`,
		`{{ eq (env "DB_PASSWORD") (seq 1) }}`,
		`{{ eq (seq 1) (env "DB_PASSWORD") }}`,
		`{{ add (env "DB_PASSWORD") 1 }}`,
		`{{ index (env "DB_PASSWORD") 50 }}`,
		`{{ (env "DB_PASSWORD").Field }}`,
		`{{ lt (env "DB_PASSWORD") 3 }}`,
		`{{ join "," (env "DB_PASSWORD") }}`,
		`{{ call (env "DB_PASSWORD") }}`,
	} {
		_, err := renderFile("secret.tmpl", []byte(tpl), true, d, defaultLimits())
		if err == nil {
			t.Errorf("%s: no error", tpl)
		} else if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: the error shows the value: %v", tpl, err)
		}
	}
}

func TestOutputLimit(t *testing.T) {
	_, err := renderFile("big.tmpl", []byte(`{{ range seq 64 }}{{ range seq 64 }}{{ range seq 64 }}0123456789abcdef{{ end }}{{ end }}{{ end }}`), true,
		Data{}, limits{maxSeq: 64, maxOutput: 1 << 20, maxSteps: 1 << 20})
	if want := "big.tmpl: renders to more than 1 MiB; is a range unbounded?"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestRunaway: templates that would loop for hours, print nothing and so never reach the
// output limit fail fast, pointing at the loop.
func TestRunaway(t *testing.T) {
	// The default limit is 1<<20 steps, about 0.4 s; a smaller one keeps -race fast.
	lim := limits{maxSeq: 1 << 16, maxOutput: 64 << 20, maxSteps: 1 << 16}
	const tooLong = ": runs too long: more than 65536 loop iterations, template calls and seq items; is a range unbounded?"
	for _, tc := range []struct{ in, want string }{
		{"a\n{{ range 1000000000 }}{{ end }}", "loop.tmpl:2" + tooLong},
		{"{{ range seq 300 }}\n{{ range seq 300 }}{{ end }}{{ end }}", "loop.tmpl:2" + tooLong},
		{"{{ $s := seq 100 }}{{ range $s }}{{ range $s }}{{ range $s }}{{ range $s }}{{ end }}{{ end }}{{ end }}{{ end }}", "loop.tmpl:1" + tooLong},
		{"{{ define \"a\" }}{{ template \"a\" }}{{ template \"a\" }}{{ end }}\n\n{{ template \"a\" }}", "loop.tmpl:1" + tooLong},
		{"{{ range 100 }}{{ . }}{{ end }}", ""},                                          // fine: a short loop
		{"{{ range seq 30000 }}{{ . }}{{ end }}", ""},                                    // 60000 steps
		{"{{ range seq 30000 }}{{ . }}{{ end }}{{ seq 6000 }}", "loop.tmpl:1" + tooLong}, // 66000
	} {
		start := time.Now()
		_, err := renderFile("loop.tmpl", []byte(tc.in), true, Data{}, lim)
		t.Logf("%s: %v after %v", tc.in, err, time.Since(start).Round(time.Millisecond))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.in, err)
			}
		} else if err == nil || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.in, err, tc.want)
		}
	}
}

func TestPathErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, "ok\n", 0o644)
	writeFile(t, filepath.Join(dir, "adir", "x"), "x", 0o644)
	writeFile(t, filepath.Join(dir, "afile"), "x", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{dir + "/missing.yaml", dir + "/out.yaml"},
			"template " + dir + "/missing.yaml:" + dir + "/out.yaml: stat " + dir + "/missing.yaml: no such file or directory"},
		{Spec{good, dir + "/adir"},
			good + ": the DST " + dir + "/adir is a directory: name the file to write, or render a directory SRC into it"},
		{Spec{good, dir + "/afile/x.yaml"},
			good + ": cannot create " + dir + "/afile/x.yaml: " + dir + "/afile is not a directory"},
		{Spec{good, good}, good + ": the DST " + good + " is the template itself: render to another path"},
		{Spec{good, dir + "/fifo"}, good + ": the DST " + dir + "/fifo is a named pipe, not a file: svinit will not replace it"},
		{Spec{dir + "/fifo", dir + "/x"}, "template " + dir + "/fifo:" + dir + "/x: SRC is a named pipe, not a file or directory"},
		{Spec{dir + "/emptydir", dir + "/x"}, "template " + dir + "/emptydir:" + dir + "/x: the directory has no files to render: is the volume mounted?"},
		{Spec{dir + "/adir", dir + "/adir/out"},
			"template " + dir + "/adir:" + dir + "/adir/out: DST is inside the SRC directory, so its output would be read as templates next time: render elsewhere"},
		{Spec{"good.yaml", "/x"}, "template good.yaml:/x: SRC and DST must be absolute paths"},
	} {
		err := prepareErr(t, []Spec{tc.spec}, Data{})
		if err.Error() != tc.want {
			t.Errorf("%v:\n got %v\nwant %s", tc.spec, err, tc.want)
		}
	}
	err := prepareErr(t, []Spec{{good, dir + "/same"}, {dir + "/adir/x", dir + "/same"}}, Data{})
	if want := dir + "/adir/x: renders to " + dir + "/same, as " + good + " does: give each template its own DST"; err.Error() != want {
		t.Errorf("two templates to one DST:\n got %v\nwant %s", err, want)
	}
	if _, err := Prepare(nil, Options{Mode: 0o4755}); err == nil || err.Error() != "template mode 04755: want permission bits only, 0001 to 0777" {
		t.Errorf("set-id mode: %v", err)
	}
}

// TestAllProblemsTogether: every problem of every template is reported at once, and no
// DST is written or touched, including the good template's.
func TestAllProblemsTogether(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/src/a.yaml", "a: {id}\n", 0o644)
	writeFile(t, dir+"/src/b.yaml.tmpl", "b: {{ .Indx }}\n", 0o644)
	writeFile(t, dir+"/src/c.yaml.tmpl", "c:\n {{ env \"C\" }}\n", 0o644)
	writeFile(t, dir+"/dst/a.yaml", "old a\n", 0o600)
	err := prepareErr(t, []Spec{
		{dir + "/src/a.yaml", dir + "/dst/a.yaml"},
		{dir + "/src/b.yaml.tmpl", dir + "/dst/b.yaml"},
		{dir + "/src/c.yaml.tmpl", dir + "/dst/c.yaml"},
		{dir + "/src/missing", dir + "/dst/d.yaml"},
	}, Data{Index: 1, HasIndex: true, LookupEnv: envMap(nil)})
	want := strings.Join([]string{
		dir + `/src/b.yaml.tmpl:1: map has no entry for key "Indx"`,
		dir + `/src/c.yaml.tmpl:2: error calling env: environment variable "C" is not set (use envOr "C" "default" if it may be)`,
		"template " + dir + "/src/missing:" + dir + "/dst/d.yaml: stat " + dir + "/src/missing: no such file or directory",
	}, "\n")
	if err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	if got := readFile(t, dir+"/dst/a.yaml"); got != "old a\n" {
		t.Errorf("the good template's DST was written: %q", got)
	}
	entries, _ := os.ReadDir(dir + "/dst")
	if len(entries) != 1 {
		t.Errorf("DST directory holds %d entries, want only a.yaml", len(entries))
	}
}

func TestParseSpec(t *testing.T) {
	got, err := ParseSpec("/agdb/config/agdb_server.yaml:/agdb/agdb_server.yaml")
	if err != nil || got != (Spec{"/agdb/config/agdb_server.yaml", "/agdb/agdb_server.yaml"}) {
		t.Errorf("got %+v, %v", got, err)
	}
	wd, _ := os.Getwd()
	if got, err := ParseSpec("testdata/agdb:out/"); err != nil || got != (Spec{wd + "/testdata/agdb", wd + "/out"}) {
		t.Errorf("relative: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "/a", "/a:", ":/b", "/a:/b:/c"} {
		_, err := ParseSpec(bad)
		want := `template "` + bad + `": want SRC:DST with one colon, e.g. /agdb/config/agdb_server.yaml:/agdb/agdb_server.yaml`
		if err == nil || err.Error() != want {
			t.Errorf("ParseSpec(%q) = %v; want %s", bad, err, want)
		}
	}
	var specs Specs
	if err := specs.Set("/a:/b, /c:/d,"); err != nil {
		t.Fatal(err)
	}
	if err := specs.Set("/e:/f"); err != nil {
		t.Fatal(err)
	}
	if s := specs.String(); s != "/a:/b,/c:/d,/e:/f" {
		t.Errorf("Specs = %s", s)
	}
	if err := specs.Set("/g"); err == nil {
		t.Error("Specs.Set(/g) succeeded")
	}
	specs.Reset()
	if len(specs) != 0 {
		t.Errorf("after Reset: %v", specs)
	}
	var m Mode
	for in, want := range map[string]Mode{"0644": 0o644, "640": 0o640, "0777": 0o777, " 600 ": 0o600} {
		if err := m.Set(in); err != nil || m != want {
			t.Errorf("Mode.Set(%q) = %v, %v", in, m, err)
		}
	}
	if m.Set("600"); m.String() != "0600" {
		t.Errorf("Mode.String() = %s", m.String())
	}
	for _, bad := range []string{"", "0", "888", "1777", "rw-r--r--", "-1"} {
		if err := m.Set(bad); err == nil {
			t.Errorf("Mode.Set(%q) succeeded", bad)
		}
	}
}

func TestPrint(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/a.yaml", "a: {id}\n", 0o644)
	writeFile(t, dir+"/b.tmpl", "b: {{ .Index }}", 0o600)
	plan, err := Prepare([]Spec{{dir + "/a.yaml", dir + "/out/a.yaml"}, {dir + "/b.tmpl", dir + "/out/b"}},
		Options{Data: Data{Index: 4, HasIndex: true}, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := plan.Print(&out); err != nil {
		t.Fatal(err)
	}
	want := "==> " + dir + "/out/a.yaml (from " + dir + "/a.yaml, mode 0644) <==\na: 4\n\n" +
		"==> " + dir + "/out/b (from " + dir + "/b.tmpl, mode 0600) <==\nb: 4\n\\ No newline at end of file\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	if got := plan.Files(); len(got) != 2 || got[0] != dir+"/out/a.yaml" || got[1] != dir+"/out/b" {
		t.Errorf("Files() = %v", got)
	}
	if _, err := os.Stat(dir + "/out"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a dry run wrote: %v", err)
	}
}
