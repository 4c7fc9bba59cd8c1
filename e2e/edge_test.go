package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/license/licensetest"
	"github.com/svinit/svinit/internal/proctest"
)

// takings is what a start-up takes, laid out so that a test can see that none of it was
// taken: the lock file, a rendered template, the license server's requests, the child.
type takings struct {
	srv                 *licensetest.Server
	lock, dst, rec, dir string
}

func newTakings(t *testing.T) *takings {
	t.Helper()
	dir := t.TempDir()
	tk := &takings{srv: licensetest.Start(t, licensetest.Options{Seats: 1, Keys: []string{testKey}}), dir: dir,
		lock: filepath.Join(dir, "lock"), dst: filepath.Join(dir, "app.conf"), rec: filepath.Join(dir, "rec")}
	writeFile(t, filepath.Join(dir, "app.conf.tmpl"), "index={{ .Index }}\n")
	return tk
}

// args are options that take a lock, render a template and activate a Keygen Relay seat.
func (tk *takings) args() []string {
	return []string{"--lock", tk.lock, "--template", filepath.Join(tk.dir, "app.conf.tmpl") + ":" + tk.dst, "--replica-index", "0",
		"--license-provider", "keygen-relay", "--license-url", tk.srv.URL, "--license-timeout", "2s"}
}

// requireNothingTaken fails unless the start-up left every taking alone.
func (tk *takings) requireNothingTaken(t *testing.T, s *svinit) {
	t.Helper()
	for _, path := range []string{tk.lock, tk.dst, tk.rec} {
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists (%v): something was taken", filepath.Base(path), err)
		}
	}
	if n := len(tk.srv.Requests()); n != 0 {
		t.Errorf("%d license requests were sent, want none: %v", n, tk.srv.Requests())
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", s.Stderr.String())
	}
}

func TestConfigErrorIsExit2BeforeAnythingIsTaken(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   []string
		extra []string
		want  string
	}{
		{"heartbeat too short", nil, []string{"--instance-id", "pod-a", "--lock-heartbeat", "5ms"}, "--lock-heartbeat 5ms"},
		{"instance id with a space", nil, []string{"--instance-id", "a b"}, `--instance-id "a b"`},
		{"instance id too long", nil, []string{"--instance-id", strings.Repeat("a", 300)}, "--instance-id"},
		{"instance id with a slash", nil, []string{"--instance-id", "ns/pod"}, `--instance-id "ns/pod"`},
		{"no instance id", nil, nil, "--instance-id"},
		{"short license key", []string{"SVINIT_LICENSE_KEY=abc"}, []string{"--instance-id", "pod-a"}, "license key from SVINIT_LICENSE_KEY"},
		{"suffix without names", []string{"SVINIT_ENV_FILE_SUFFIX=_FILE"}, []string{"--instance-id", "pod-a"}, "--file-env"},
		{"license file under a file", nil, []string{"--instance-id", "pod-a", "--license-file", "{dir}/app.conf.tmpl/license"}, "--license-file"},
		{"license file is a directory", nil, []string{"--instance-id", "pod-a", "--license-file", "{dir}"}, "--license-file"},
		{"journal under a file", nil, []string{"--instance-id", "pod-a", "--license-state", "{dir}/app.conf.tmpl/journal"}, "--license-state"},
		{"no svinit-net", nil, []string{"--instance-id", "pod-a", "--net-helper", "{dir}/missing"}, "svinit-net not found at"},
		{"svinit-net of another build", nil, []string{"--instance-id", "pod-a", "--net-helper", "{dir}/old-net"}, `svinit-net at {dir}/old-net is version "v0.9" (protocol 1)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk := newTakings(t)
			writeFile(t, filepath.Join(tk.dir, "old-net"), "#!/bin/sh\necho '{\"protocol\":1,\"version\":\"v0.9\"}'\n")
			if err := os.Chmod(filepath.Join(tk.dir, "old-net"), 0o755); err != nil {
				t.Fatal(err)
			}
			tc.want = strings.ReplaceAll(tc.want, "{dir}", tk.dir)
			env := append([]string{"REC=" + tk.rec, "SVINIT_LICENSE_KEY=" + testKey, "SVINIT_INSTANCE_ID=", "SVINIT_POD_NAME=", "SVINIT_POD_UID="}, tc.env...)
			extra := make([]string, len(tc.extra))
			for i, arg := range tc.extra {
				extra[i] = strings.ReplaceAll(arg, "{dir}", tk.dir)
			}
			s := startSvinit(t, modes[1], "env", env, append(append(tk.args(), extra...), "--", selfBin)...)
			if code := s.Wait(); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if out := s.Stderr.String(); !strings.Contains(out, "svinit: invalid configuration:\n") || !strings.Contains(out, tc.want) {
				t.Errorf("stderr does not report %q as a configuration error:\n%s", tc.want, out)
			}
			tk.requireNothingTaken(t, s)
		})
	}
}

func TestInstanceIDWithSlashNamesTheFix(t *testing.T) {
	s := startSvinit(t, modes[1], "", nil, "--license-provider", "keygen-relay", "--license-url", "http://127.0.0.1:1", "--instance-id", "ns/pod", "--", "/bin/true")
	if code := s.Wait(); code != 2 || !strings.Contains(s.Stderr.String(), "ns-pod") {
		t.Errorf("exit %d, want 2 and a message suggesting ns-pod:\n%s", code, s.Stderr.String())
	}
}

func TestProgramProblemFoundBeforeAnythingIsTaken(t *testing.T) {
	requireRoot(t)
	rootOnly := filepath.Join(userDir(t, 0), "root-only")
	writeFile(t, rootOnly, "#!/bin/sh\nexit 0\n")
	if err := os.Chmod(rootOnly, 0o700); err != nil {
		t.Fatal(err)
	}
	// A program reached through a directory the user may not enter, by a symlink out of it.
	private := filepath.Join(userDir(t, 0), "private")
	if err := os.MkdirAll(filepath.Join(private, "bin"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/bin/true", filepath.Join(private, "bin", "prog")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		extra []string
		code  int
	}{
		{"not found", []string{"--", "no-such-program-svinit"}, 127},
		{"behind a directory --user cannot enter", []string{"--user", "1234:1234", "--", filepath.Join(private, "bin", "prog")}, 126},
		{"not found by path", []string{"--", "/nonexistent/program"}, 127},
		{"not executable by --user", []string{"--user", "1234:1234", "--", rootOnly}, 126},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk := newTakings(t)
			s := startSvinit(t, modes[1], "", []string{"REC=" + tk.rec, "SVINIT_LICENSE_KEY=" + testKey}, append(append(tk.args(), "--instance-id", "pod-a"), tc.extra...)...)
			if code := s.Wait(); code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if prog := tc.extra[len(tc.extra)-1]; !strings.Contains(s.Stderr.String(), prog) {
				t.Errorf("the message does not name %s:\n%s", prog, s.Stderr.String())
			}
			tk.requireNothingTaken(t, s)
		})
	}
}

func TestEveryConfigProblemInOneReport(t *testing.T) {
	dir := t.TempDir()
	s := startSvinit(t, modes[1], "", []string{"SVINIT_LOCK_HEARTBEAT=5ms", "SVINIT_LICENSE_KEY=abc", "SVINIT_USER=no-such-user-svinit", "API_TOKEN_FILE=" + filepath.Join(dir, "missing")},
		"--license-provider", "http", "--instance-id", "a b", "--file-env", "API_TOKEN",
		"--template", filepath.Join(dir, "missing.tmpl")+":"+filepath.Join(dir, "out"), "--", "no-such-program-svinit")
	code := s.Wait()
	out := s.Stderr.String()
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	for _, want := range []string{"--lock-heartbeat 5ms", "license key from SVINIT_LICENSE_KEY", "--user", "API_TOKEN_FILE", "--instance-id", "--license-url", "missing.tmpl", "no-such-program-svinit"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report does not name %s", want)
		}
	}
	head, body, _ := strings.Cut(out, "\n")
	if head != "svinit: invalid configuration:" {
		t.Errorf("first line %q, want the heading", head)
	}
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if !strings.HasPrefix(line, "  ") || strings.TrimSpace(line) == "" || strings.Contains(line, "\t") || strings.Contains(line, "errors occurred") {
			t.Errorf("line %q is not one problem in svinit's format", line)
		}
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", out)
	}
}

func TestFileEnvIsOptInPerName(t *testing.T) {
	dir := t.TempDir()
	pw, bundle := filepath.Join(dir, "db-password"), filepath.Join(dir, "ca.pem")
	writeFile(t, pw, "hunter2\n")
	writeFile(t, bundle, "-----BEGIN CERTIFICATE-----\n")
	rec := filepath.Join(dir, "rec")
	s := startSvinit(t, modes[1], "env", []string{"REC=" + rec, "DB_PASSWORD_FILE=" + pw, "SSL_CERT_FILE=" + bundle, "TF_CLI_CONFIG_FILE=/missing"},
		"--file-env", "DB_PASSWORD", "--", selfBin)
	waitLine(t, rec, "ready")
	for _, want := range []string{"DB_PASSWORD=hunter2", "SSL_CERT_FILE=" + bundle, "TF_CLI_CONFIG_FILE=/missing"} {
		if !proctest.HasLine(rec, want) {
			t.Errorf("the child's environment has no %s", want)
		}
	}
	if b := readFile(t, rec); strings.Contains(b, "SSL_CERT=") || strings.Contains(b, "DB_PASSWORD_FILE=") {
		t.Errorf("a variable not asked for was expanded, or the path kept:\n%s", b)
	}
	s.Signal(unix.SIGTERM)
	s.Wait()
	out := s.Stderr.String()
	if !strings.Contains(out, `"names":["DB_PASSWORD"]`) || strings.Contains(out, "hunter2") {
		t.Errorf("the log does not name what was read, or holds the secret:\n%s", out)
	}

	s = startSvinit(t, modes[1], "", []string{"DB_PASSWORD_FILE=" + pw, "DB_PASSWORD=inline"}, "--file-env", "DB_PASSWORD", "--", "/bin/true")
	if code := s.Wait(); code != 2 || !strings.Contains(s.Stderr.String(), "DB_PASSWORD and DB_PASSWORD_FILE are both set") {
		t.Errorf("both set: exit %d, want 2:\n%s", code, s.Stderr.String())
	}
}

func TestSecretFileMustBeRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"file-env", []string{"DB_PASSWORD_FILE=" + fifo}, []string{"--file-env", "DB_PASSWORD"}},
		{"license key file", nil, []string{"--license-provider", "opswat", "--instance-id", "pod-a", "--license-key-file", fifo}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSvinit(t, modes[1], "", tc.env, append(tc.args, "--", "/bin/true")...)
			if code := s.Wait(); code != 2 || !strings.Contains(s.Stderr.String(), "not a regular file") {
				t.Errorf("exit %d, want 2 naming the FIFO:\n%s", code, s.Stderr.String())
			}
		})
	}
}

func TestStopSignalInterruptsStartupReads(t *testing.T) {
	tk := newTakings(t)
	// A pipe is a fair --license-http-config (bash's <(...) gives one), and read to its end.
	fifo := filepath.Join(tk.dir, "http.json")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startSvinit(t, modes[1], "env", []string{"REC=" + tk.rec, "SVINIT_LICENSE_KEY=" + testKey}, append(tk.args(),
		"--license-provider", "http", "--license-http-config", fifo, "--instance-id", "pod-a", "--", selfBin)...)
	// A writer can open the FIFO without blocking only once svinit has it open to read; held
	// open and silent, it keeps svinit's read waiting.
	writer := -1
	poll(t, "svinit reading the FIFO", func() bool {
		writer, _ = unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		return writer >= 0
	})
	defer unix.Close(writer)
	s.Signal(unix.SIGHUP) // dropped: there is no child yet
	s.Signal(unix.SIGTERM)
	if code := s.Wait(); code != 128+int(unix.SIGTERM) {
		t.Errorf("exit %d, want %d", code, 128+int(unix.SIGTERM))
	}
	tk.requireNothingTaken(t, s)
}
