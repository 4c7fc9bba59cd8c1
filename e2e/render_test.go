package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svinit/svinit/internal/proctest"
)

const agdbConfig = "../internal/render/testdata/agdb/agdb_server.yaml"

// sedAgdb renders the agdb config as the document's start.sh does.
func sedAgdb(t *testing.T, index string) []byte {
	t.Helper()
	out, err := exec.Command("sed", "s/{id}/"+index+"/g", agdbConfig).Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTemplateFromVariableMatchesSed(t *testing.T) {
	for _, index := range []string{"0", "1", "2"} {
		dst := filepath.Join(t.TempDir(), "agdb", "agdb_server.yaml")
		s := startSvinit(t, modes[1], "", []string{"AGDB_REPLICA_INDEX=" + index, "SVINIT_REPLICA_INDEX=" + index},
			"--template", agdbConfig+":"+dst, "--", "cat", dst)
		if code := s.Wait(); code != 0 {
			t.Fatalf("exit %d:\n%s", code, s.Stderr.String())
		}
		if got, _ := os.ReadFile(dst); string(got) != string(sedAgdb(t, index)) {
			t.Errorf("index %s: svinit rendered\n%s\nsed renders\n%s", index, got, sedAgdb(t, index))
		}
	}
}

func TestTemplateFromHostname(t *testing.T) {
	requireRoot(t)
	dst := filepath.Join(t.TempDir(), "agdb_server.yaml")
	// A StatefulSet pod's hostname is its name: agdb-2.
	cmd := exec.Command("unshare", "--uts", "sh", "-c", `hostname agdb-2 && exec "$0" "$@"`,
		svinitBin, "--template", agdbConfig+":"+dst, "--", "true")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got, _ := os.ReadFile(dst); string(got) != string(sedAgdb(t, "2")) {
		t.Errorf("svinit rendered\n%s\nwant sed's output for index 2", got)
	}
}

func TestBadTemplateStartsNothing(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml.tmpl")
	os.WriteFile(good, []byte("id: {id}\n"), 0o644)
	os.WriteFile(bad, []byte("a: 1\nb: {{ .Indx }}\n"), 0o644)
	lockPath, rec := filepath.Join(dir, "lock"), filepath.Join(dir, "rec")
	out1, out2 := filepath.Join(dir, "out", "good.yaml"), filepath.Join(dir, "out", "bad.yaml")
	s := startSvinit(t, modes[1], "sleep", []string{"REC=" + rec, "SVINIT_REPLICA_INDEX=1"},
		"--lock", lockPath, "--template", good+":"+out1, "--template", bad+":"+out2, "--", selfBin)
	if code := s.Wait(); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(s.Stderr.String(), `bad.yaml.tmpl:2: map has no entry for key "Indx"`) {
		t.Errorf("the error does not name file, line and problem:\n%s", s.Stderr.String())
	}
	for _, p := range []string{out1, out2, lockPath} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind", p)
		}
	}
	if proctest.HasLine(rec, "ready") {
		t.Error("the child started")
	}
}

func TestDryRun(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "agdb_server.yaml")
	cmd := exec.Command(svinitBin, "--dry-run", "--replica-index", "1", "--template", agdbConfig+":"+dst)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if !strings.Contains(string(out), string(sedAgdb(t, "1"))) || !strings.Contains(string(out), dst) {
		t.Errorf("dry run printed:\n%s", out)
	}
	if _, err := os.Lstat(dst); !os.IsNotExist(err) {
		t.Error("the dry run wrote the file")
	}
}
