package license

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/svinit/svinit/internal/license/licensetest"
	"github.com/svinit/svinit/internal/logbuf"
)

// helperEnv selects, in the test binary, a helper program instead of the tests.
const helperEnv = "SVINIT_LICENSE_TEST_HELPER"

// testKey has characters that query, path and JSON encoding all change, so that a leak in
// any encoding shows.
const testKey = "K3Y sec/ret+&=?\"é-0123456789"

// netHelper is svinit-net, built for the tests: the opswat, keygen-relay and http providers
// send their requests through it, as in production.
var netHelper string

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(runHelper(os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "svinit-net-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	netHelper = filepath.Join(dir, HelperName)
	build := exec.Command("go", "build", "-o", netHelper, "github.com/svinit/svinit/cmd/svinit-net")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build svinit-net:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testHelper runs the svinit-net built for the tests.
func testHelper() HelperConfig {
	return HelperConfig{Path: netHelper, Version: "dev", Runner: cmdRunner{}}
}

// runHelper is the helper programs the exec provider runs in the tests.
func runHelper(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "helper: no name")
		return 2
	}
	switch args[0] {
	case "vendor-cli":
		return vendorCLI(args[1])
	case "exec-seats":
		return licensetest.ExecSeats(args[1])
	case "exit":
		if len(args) > 2 {
			fmt.Fprintln(os.Stderr, args[2])
		}
		code, _ := strconv.Atoi(args[1])
		return code
	case "leak-key":
		// A careless vendor CLI that echoes its key in its error message.
		fmt.Fprintf(os.Stderr, "activation failed for key %s\n", os.Getenv(EnvKey))
		return 78
	case "print":
		fmt.Println(args[1])
		return 0
	case "license": // svinit-net answering with FAKE_REPLY
		fmt.Println(os.Getenv("FAKE_REPLY"))
		return 0
	case "sleep":
		time.Sleep(time.Minute)
		return 0
	case "record":
		// Writes its argv and the environment it got to the file args[1].
		data, _ := json.Marshal(map[string]any{"argv": os.Args, "env": os.Environ()})
		if err := os.WriteFile(args[1], data, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 70
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "helper: unknown %q\n", args[0])
	return 2
}

// vendorCLI is a vendor's command line tool that speaks Keygen Relay's API and follows the
// exec contract in its exit codes and output.
func vendorCLI(relay string) int {
	if os.Getenv(EnvKey) == "" {
		fmt.Fprintln(os.Stderr, "vendor-cli: no license key in the environment")
		return 78
	}
	instance := os.Getenv(EnvInstanceID)
	if id := os.Getenv(EnvActivationID); id != "" && id != "relay-"+instance {
		fmt.Fprintf(os.Stderr, "vendor-cli: activation id %q is not for %q\n", id, instance)
		return 78
	}
	u := relay + "/v1/nodes/" + url.PathEscape(instance)
	method := http.MethodPut
	if os.Getenv(EnvAction) == "deactivate" {
		method = http.MethodDelete
	}
	req, _ := http.NewRequest(method, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vendor-cli:", err)
		return 75
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusAccepted:
		var c struct {
			File    []byte `json:"license_file"`
			Key     string `json:"license_key"`
			Expires int    `json:"expires_in"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
			return 76
		}
		out, _ := json.Marshal(map[string]any{"id": "relay-" + instance, "ttl": c.Expires, "file_base64": c.File, "file_key": c.Key})
		fmt.Println(string(out))
		return 0
	case resp.StatusCode == http.StatusNoContent:
		return 0
	case resp.StatusCode == http.StatusNotFound:
		return 67
	case resp.StatusCode == http.StatusGone:
		fmt.Fprintln(os.Stderr, "vendor-cli: no licenses available")
		return 69
	case resp.StatusCode >= 500:
		return 75
	}
	return 78
}

// cmdRunner is the test Runner: exec.Cmd is fine outside PID 1.
type cmdRunner struct{}

func (cmdRunner) Run(ctx context.Context, argv, env []string, stdout, stderr io.Writer) (int, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, stdout, stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

func helperArgv(t *testing.T, args ...string) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{exe}, args...)
}

// testLog returns a debug-level logger into a buffer, shown when the test fails.
func testLog(t *testing.T) (zerolog.Logger, *logbuf.Buffer) {
	t.Helper()
	buf := &logbuf.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf.String())
		}
	})
	return zerolog.New(buf).Level(zerolog.DebugLevel).With().Timestamp().Logger(), buf
}

// fastOptions keep the retry scenarios short.
func fastOptions(provider string) ManagerOptions {
	return ManagerOptions{Provider: provider, Timeout: 5 * time.Second, RequestTimeout: 2 * time.Second,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
}

// setup is one way of talking to the test server: a preset, or the exec and http providers
// configured for Keygen Relay's API.
type setup struct {
	name     string
	provider string
	config   func(t *testing.T, srv *licensetest.Server, log zerolog.Logger) Config
}

func setups() []setup {
	return []setup{
		{"opswat", ProviderOPSWAT, func(_ *testing.T, srv *licensetest.Server, log zerolog.Logger) Config {
			return Config{Provider: ProviderOPSWAT, URL: srv.URL, Key: testKey, Log: log}
		}},
		{"keygen-relay", ProviderKeygenRelay, func(_ *testing.T, srv *licensetest.Server, log zerolog.Logger) Config {
			return Config{Provider: ProviderKeygenRelay, URL: srv.URL, Log: log}
		}},
		{"exec", ProviderExec, func(t *testing.T, srv *licensetest.Server, log zerolog.Logger) Config {
			argv := helperArgv(t, "vendor-cli", srv.URL)
			return Config{Provider: ProviderExec, Key: testKey, Log: log, Exec: ExecConfig{
				Activate: argv, Deactivate: argv, Env: []string{helperEnv + "=1"}, Runner: cmdRunner{},
			}}
		}},
		{"http", ProviderHTTP, func(_ *testing.T, srv *licensetest.Server, log zerolog.Logger) Config {
			node := "{{.URL}}/v1/nodes/{{path .Instance}}"
			return Config{Provider: ProviderHTTP, URL: srv.URL, Key: testKey, Log: log, HTTP: HTTPConfig{
				Activate:      HTTPRequest{Method: "PUT", URL: node},
				Deactivate:    HTTPRequest{Method: "DELETE", URL: node},
				TTLField:      "expires_in",
				FileField:     "license_file",
				NoSeatsStatus: []int{http.StatusGone},
			}}
		}},
	}
}

func newProvider(t *testing.T, cfg Config) Provider {
	t.Helper()
	p, err := New(withHelper(cfg))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// withHelper gives cfg the svinit-net built for the tests, unless it names one.
func withHelper(cfg Config) Config {
	if cfg.Helper.Path == "" {
		cfg.Helper = testHelper()
	}
	return cfg
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// assertNoKey fails when the key shows in s in any encoding.
func assertNoKey(t *testing.T, what, s string) {
	t.Helper()
	for _, form := range []string{testKey, url.QueryEscape(testKey), url.PathEscape(testKey), "K3Y sec", "K3Y+sec", "K3Y%20sec"} {
		if strings.Contains(s, form) {
			t.Errorf("%s contains the key (as %q):\n%s", what, form, s)
		}
	}
}

func journalIn(t *testing.T) (string, *Journal) {
	path := filepath.Join(t.TempDir(), "license.json")
	return path, NewJournal(path)
}

func loadRecord(t *testing.T, j *Journal) (Record, bool) {
	t.Helper()
	rec, found, err := j.Load(context.Background())
	if err != nil {
		t.Fatalf("journal: %v", err)
	}
	return rec, found
}
