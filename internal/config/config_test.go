package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-multierror"
	"golang.org/x/sys/unix"
)

func TestDefaults(t *testing.T) {
	cfg, err := Parse([]string{"prog", "-x"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Grace != 5*time.Second || cfg.KillGroup || cfg.LogFormat != "json" || cfg.LogLevel != "info" {
		t.Errorf("defaults: %+v", cfg)
	}
	if strings.Join(cfg.Program, " ") != "prog -x" {
		t.Errorf("Program = %q, want the arguments after the first non-option untouched", cfg.Program)
	}
}

// An unset variable gives its option the default; the value must be the one the variable
// gives when it holds that default.
func TestDefaultsParse(t *testing.T) {
	unset, err := Parse([]string{"prog"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, o := range Options() {
		if o.Default != "" && o.Env != "" {
			t.Setenv(o.Env, o.Default)
			n++
		}
	}
	if n < 10 {
		t.Fatalf("only %d options with a default and a variable: are the tags read?", n)
	}
	set, err := Parse([]string{"prog"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(unset, set) {
		t.Errorf("defaults without the variables:\n%+v\nwith them set to the defaults:\n%+v", unset, set)
	}
}

func TestFlagWinsOverVariable(t *testing.T) {
	t.Setenv("SVINIT_GRACE", "3s")
	t.Setenv("SVINIT_KILL_GROUP", "true")
	t.Setenv("SVINIT_REWRITE", "TERM:QUIT,HUP:0")
	t.Setenv("SVINIT_REMAP_EXIT", "143:0")
	cfg, err := Parse([]string{"--grace=5s", "--rewrite", "USR1:USR2", "--rewrite", "INT:TERM", "--", "--prog"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Grace != 5*time.Second {
		t.Errorf("Grace = %s, want the flag's 5s", cfg.Grace)
	}
	if !cfg.KillGroup {
		t.Error("KillGroup from SVINIT_KILL_GROUP was lost")
	}
	if got := cfg.Rewrite.String(); got != "INT:TERM,USR1:USR2" {
		t.Errorf("Rewrite = %q: the flags must replace the variable's list, and repeat", got)
	}
	if cfg.RemapExit.Map(143) != 0 || cfg.RemapExit.Map(1) != 1 {
		t.Errorf("RemapExit = %v", cfg.RemapExit)
	}
	if to, _ := cfg.Rewrite.Apply(unix.SIGTERM); to != unix.SIGTERM {
		t.Errorf("TERM rewritten to %v although the flag replaced the variable", to)
	}
	if strings.Join(cfg.Program, " ") != "--prog" {
		t.Errorf("Program = %q", cfg.Program)
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	t.Setenv("SVINIT_KILL_GROUP", "maybe")
	t.Setenv("SVINIT_REMAP_EXIT", "300:1")
	t.Setenv("SVINIT_GRACE", "soon")
	_, err := Parse([]string{"--grace", "5s", "--log-format", "xml", "--bogus", "--rewrite", "TERM", "--log-level=loud"})
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	msg := err.Error()
	for _, want := range []string{
		`SVINIT_KILL_GROUP="maybe": want true or false`,
		`SVINIT_REMAP_EXIT="300:1"`,
		`unknown option --bogus`,
		`option --rewrite "TERM"`,
		`--log-format "xml": want json or console`,
		`--log-level "loud"`,
		`no PROGRAM given`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "must be positive") {
		t.Errorf("a value that failed to parse is reported again by validation:\n%s", msg)
	}
	if strings.Contains(msg, "SVINIT_GRACE") {
		t.Errorf("--grace was given, so SVINIT_GRACE must not be reported:\n%s", msg)
	}
	if n := strings.Count(msg, "\n") + 1; n != 7 {
		t.Errorf("want 7 problems, one per line, got %d:\n%s", n, msg)
	}
}

func TestBadValues(t *testing.T) {
	for _, args := range [][]string{
		{"--grace", "0s", "p"}, {"--grace", "-1s", "p"}, {"--grace"}, {"--remap-exit", "1", "p"},
		{"--remap-exit", "1:256", "p"}, {"--kill-group=yes", "p"}, {"--rewrite", "TERM:BOGUS", "p"},
	} {
		if _, err := Parse(args); err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", args)
		}
	}
}

func TestHelpListsEveryOption(t *testing.T) {
	cfg, err := Parse([]string{"--help"})
	if err != ErrHelp || !cfg.Help {
		t.Fatalf("Parse(--help) = %v", err)
	}
	var b bytes.Buffer
	Usage(&b)
	for _, o := range Options() {
		if !strings.Contains(b.String(), "--"+o.Flag) || !strings.Contains(b.String(), o.Env) || !strings.Contains(b.String(), o.Desc) {
			t.Errorf("--help lacks option %s (%s)", o.Flag, o.Env)
		}
	}
}

// The README's option reference is `svinit --help`, verbatim: an option added without
// documentation, or a description changed in one place only, fails here.
func TestReadmeReferenceIsHelp(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var help bytes.Buffer
	Usage(&help)
	if !bytes.Contains(readme, help.Bytes()) {
		for _, o := range Options() {
			if !strings.Contains(string(readme), "--"+o.Flag) || !strings.Contains(string(readme), o.Env) || !strings.Contains(string(readme), o.Desc) {
				t.Errorf("README.md does not document --%s (%s) as --help does", o.Flag, o.Env)
			}
		}
		t.Error("README.md's Options section differs from `svinit --help`: paste its output there")
	}
}

func TestUnparsableFlagIsReportedOnce(t *testing.T) {
	_, err := Parse([]string{"--grace", "soon", "prog"})
	if err == nil || strings.Count(err.Error(), "\n") != 0 || !strings.Contains(err.Error(), `--grace "soon"`) {
		t.Errorf("want one problem naming --grace \"soon\", got:\n%v", err)
	}
}

// BenchmarkParse is the option parsing every start pays: the environment of a typical
// Kubernetes container with a few SVINIT_ variables, and a command line.
func BenchmarkParse(b *testing.B) {
	b.Setenv("SVINIT_GRACE", "30s")
	b.Setenv("SVINIT_LOCK", filepath.Join(b.TempDir(), "lock"))
	b.Setenv("SVINIT_TEMPLATES", "/config/a.yaml:/etc/a.yaml")
	args := []string{"--kill-group", "--", "/usr/bin/server", "--port", "8080"}
	for b.Loop() {
		if _, err := Parse(args); err != nil {
			b.Fatal(err)
		}
	}
}

// Only SVINIT_ variables set options: USER (set by every login shell) must not switch
// --user on.
func TestOnlyPrefixedVariables(t *testing.T) {
	t.Setenv("USER", "nobody")
	t.Setenv("GRACE", "1s")
	t.Setenv("POD_NAME", "web-0")
	t.Setenv("SVINIT_LOG_LEVEL", "debug")
	cfg, err := Parse([]string{"--", "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User != "" || cfg.Grace != 5*time.Second || cfg.PodName != "" {
		t.Errorf("unprefixed variables set options: --user %q, --grace %s, --pod-name %q", cfg.User, cfg.Grace, cfg.PodName)
	}
	if cfg.LogLevel != "debug" {
		t.Errorf("SVINIT_LOG_LEVEL=debug gave --log-level %q", cfg.LogLevel)
	}
}

func TestFileEnvNamesAreOptIn(t *testing.T) {
	t.Setenv("SVINIT_FILE_ENV", "DB_PASSWORD, API_TOKEN")
	cfg, err := Parse([]string{"prog"})
	if err != nil || strings.Join(cfg.FileEnv, " ") != "DB_PASSWORD API_TOKEN" || cfg.FileEnvSuffix() != "_FILE" {
		t.Fatalf("FileEnv %q, suffix %q, %v", cfg.FileEnv, cfg.FileEnvSuffix(), err)
	}
	if cfg, err := Parse([]string{"--file-env", "ONLY", "--env-file-suffix", "_PATH", "prog"}); err != nil || strings.Join(cfg.FileEnv, " ") != "ONLY" || cfg.FileEnvSuffix() != "_PATH" {
		t.Fatalf("the flag does not replace the variable: %q, %v", cfg.FileEnv, err)
	}
	for _, bad := range []string{"1ABC", "A-B", "SVINIT_GRACE"} {
		if _, err := Parse([]string{"--file-env", bad, "prog"}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("--file-env %s: %v, want refused", bad, err)
		}
	}
	t.Setenv("SVINIT_FILE_ENV", "")
	t.Setenv("SVINIT_ENV_FILE_SUFFIX", "_FILE")
	if _, err := Parse([]string{"prog"}); err == nil || !strings.Contains(err.Error(), "--file-env DB_PASSWORD") {
		t.Errorf("a suffix without names: %v, want an error that says how to migrate", err)
	}
}

func TestStartUpProblemsAreFoundInTheConfiguration(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--lock-heartbeat", "5ms"}, "--lock-heartbeat 5ms: too short, use 10ms or more"},
		{[]string{"--license-state", "k8s-secret:Licenses"}, `"Licenses" is not a Secret name`},
		{[]string{"--license-state", "k8s-secret:licenses"}, "set SVINIT_POD_NAME and SVINIT_POD_UID"},
	} {
		if _, err := Parse(append(tc.args, "prog")); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, err := Parse([]string{"--license-provider", "opswat", "--pod-name", "web-0", "--pod-uid", "3f2c", "prog"}); err != nil {
		t.Errorf("an id from the pod: %v", err)
	}
}

// --license-state is parsed once: a journal made absolute, or a Secret with a valid name.
func TestLicenseStateParsedOnce(t *testing.T) {
	for _, tc := range []struct {
		in           string
		path, secret string
		ok           bool
	}{
		{"k8s-secret:metadefender-icap-licenses", "", "metadefender-icap-licenses", true},
		{"k8s-secret:a.b-c0", "", "a.b-c0", true},
		{"k8s-secret:0", "", "0", true},
		{"k8s-secret:" + strings.Repeat("a", 253), "", strings.Repeat("a", 253), true},
		{"/var/lib/svinit/license.json", "/var/lib/svinit/license.json", "", true},
		{"k8s-secret:", "", "", false},
		{"k8s-secret:Licenses", "", "", false},
		{"k8s-secret:-licenses", "", "", false},
		{"k8s-secret:licenses.", "", "", false},
		{"k8s-secret:li_censes", "", "", false},
		{"k8s-secret:" + strings.Repeat("a", 254), "", "", false},
	} {
		var s LicenseState
		err := s.Set(tc.in)
		if (err == nil) != tc.ok || err == nil && (s.Path != tc.path || s.Secret != tc.secret) {
			t.Errorf("Set(%.40q) = %+v, %v; want path %q secret %q ok %v", tc.in, s, err, tc.path, tc.secret, tc.ok)
		}
	}
	var rel LicenseState
	if err := rel.Set("license.json"); err != nil || !filepath.IsAbs(rel.Path) {
		t.Errorf("a relative journal stays %q (%v): svinit chdirs to / after the start", rel.Path, err)
	}
}

func TestJoinGivesOneProblemPerLine(t *testing.T) {
	var inner *multierror.Error
	inner = multierror.Append(inner, errors.New("a"), errors.New("b"))
	err := Join(nil, inner, errors.Join(errors.New("c"), errors.New("d")), errors.New("e"))
	if err.Error() != "a\nb\nc\nd\ne" {
		t.Errorf("Join = %q", err.Error())
	}
	var none *multierror.Error
	if Join(none, nil) != nil {
		t.Error("Join of nothing is not nil")
	}
}

// --wait-for and --ready: repeatable, a comma list in the variable, every bad check and
// bad duration reported at once, each naming the check and the fix.
func TestChecksParsedAtTheEdge(t *testing.T) {
	t.Setenv("SVINIT_WAIT_FOR", "tcp://db:5432,http://api:8080/healthz?a=1,2")
	t.Setenv("SVINIT_READY", "exec:pg_isready -h db")
	cfg, err := Parse([]string{"--ready", "file:/run/ready", "--ready", "https://api/ready", "prog"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.WaitFor.String(); got != "tcp://db:5432,http://api:8080/healthz?a=1,2" {
		t.Errorf("WaitFor = %q", got)
	}
	if got := cfg.Ready.String(); got != "file:/run/ready,https://api/ready" {
		t.Errorf("Ready = %q: the flags replace the variable", got)
	}
	if cfg.WaitTimeout != time.Minute || cfg.ReadyInterval != 10*time.Second || cfg.CheckTimeout != 5*time.Second {
		t.Errorf("defaults %s %s %s", cfg.WaitTimeout, cfg.ReadyInterval, cfg.CheckTimeout)
	}
	t.Setenv("SVINIT_READY", "db:5432")
	_, err = Parse([]string{"--wait-for", "tcp://db", "--wait-for", "exec:", "--wait-timeout", "-1s", "--ready-interval", "0s", "--check-timeout", "0s", "prog"})
	msg := fmt.Sprint(err)
	for _, want := range []string{
		`SVINIT_READY="db:5432": check "db:5432": want tcp://HOST:PORT`,
		`option --wait-for "tcp://db": check "tcp://db": want tcp://HOST:PORT`,
		`option --wait-for "exec:": check "exec:": want exec:COMMAND`,
		`--wait-timeout -1s: must be 0 (wait for ever) or more`,
		`--ready-interval 0s: must be positive`,
		`--check-timeout 0s: must be positive`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
}
