package license

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func execProviderFor(t *testing.T, activate, deactivate []string) Provider {
	log, _ := testLog(t)
	return newProvider(t, Config{Provider: ProviderExec, Key: testKey, URL: "https://l.example.com", Log: log, Exec: ExecConfig{
		Activate: activate, Deactivate: deactivate, Env: []string{helperEnv + "=1", EnvKey + "=inherited"}, Runner: cmdRunner{},
	}})
}

func TestExecExitCodeContract(t *testing.T) {
	for _, tc := range []struct {
		name  string
		argv  []string
		class error
	}{
		{"75 retry", []string{"exit", "75"}, ErrRetryable},
		{"69 no seats", []string{"exit", "69"}, ErrNoSeats},
		{"67 not found", []string{"exit", "67"}, ErrNotFound},
		{"77 permanent", []string{"exit", "77"}, ErrPermanent},
		{"78 permanent", []string{"exit", "78", "bad key"}, ErrPermanent},
		{"1 permanent", []string{"exit", "1"}, ErrPermanent},
		{"bad json", []string{"print", "{not json"}, ErrPermanent},
		{"unknown field", []string{"print", `{"id":"a","lease":"?"}`}, ErrPermanent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := execProviderFor(t, helperArgv(t, tc.argv...), helperArgv(t, "exit", "0"))
			_, err := p.Activate(context.Background(), "web-0")
			if !errors.Is(err, tc.class) {
				t.Errorf("Activate = %v; want %v", err, tc.class)
			}
		})
	}
	t.Run("stderr in error", func(t *testing.T) {
		p := execProviderFor(t, helperArgv(t, "exit", "78", "activation key expired"), helperArgv(t, "exit", "0"))
		_, err := p.Activate(context.Background(), "web-0")
		if err == nil || !strings.Contains(err.Error(), "activation key expired") || !strings.Contains(err.Error(), "exit 78") {
			t.Errorf("Activate = %v; want exit code and stderr's last line", err)
		}
	})
	t.Run("not found", func(t *testing.T) {
		p := newProvider(t, Config{Provider: ProviderExec, Exec: ExecConfig{
			Activate: []string{"/nonexistent/vendor-cli"}, Deactivate: []string{"/nonexistent/vendor-cli"}, Runner: cmdRunner{},
		}})
		if _, err := p.Activate(context.Background(), "web-0"); !errors.Is(err, ErrPermanent) {
			t.Errorf("Activate = %v; want ErrPermanent", err)
		}
	})
	t.Run("killed at timeout", func(t *testing.T) {
		p := execProviderFor(t, helperArgv(t, "sleep"), helperArgv(t, "exit", "0"))
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		began := time.Now()
		_, err := p.Activate(ctx, "web-0")
		t.Logf("killed after %s: %v", time.Since(began), err)
		if !errors.Is(err, ErrRetryable) || !errors.Is(err, ErrUncertain) {
			t.Errorf("Activate = %v; want ErrRetryable, outcome unknown", err)
		}
	})
}

func TestExecLeaseJSON(t *testing.T) {
	p := execProviderFor(t,
		helperArgv(t, "print", `{"id":"act-7","ttl":"2m","expires":"2030-05-06T07:08:09Z","file_base64":"TElD","file_key":"fk"}`),
		helperArgv(t, "exit", "0"))
	l, err := p.Activate(context.Background(), "web-0")
	if err != nil {
		t.Fatal(err)
	}
	if l.ID != "act-7" || l.TTL != 2*time.Minute || l.Expires.Year() != 2030 || string(l.File) != "LIC" || l.FileKey != "fk" {
		t.Errorf("lease = %+v", l)
	}
	p = execProviderFor(t, helperArgv(t, "exit", "0"), helperArgv(t, "exit", "0"))
	if l, err := p.Activate(context.Background(), "web-0"); err != nil || l.ID != "web-0" || l.TTL != 0 {
		t.Errorf("silent success = %+v, %v; want the instance id and no TTL", l, err)
	}
	p = execProviderFor(t, helperArgv(t, "print", `{"ttl":30,"file":"text license"}`), helperArgv(t, "exit", "0"))
	if l, err := p.Activate(context.Background(), "web-0"); err != nil || l.TTL != 30*time.Second || string(l.File) != "text license" {
		t.Errorf("numeric ttl, text file = %+v, %v", l, err)
	}
}

// The key and ids reach the command through its environment, never its argv; svinit's
// variables win over inherited ones of the same name.
func TestExecEnvironment(t *testing.T) {
	out := filepath.Join(t.TempDir(), "record.json")
	p := execProviderFor(t, helperArgv(t, "exit", "0"), helperArgv(t, "record", out))
	if err := p.Deactivate(context.Background(), "web-0", Lease{ID: "act-9"}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Argv []string `json:"argv"`
		Env  []string `json:"env"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	assertNoKey(t, "argv", strings.Join(rec.Argv, " "))
	want := map[string]string{EnvKey: testKey, EnvInstanceID: "web-0", EnvActivationID: "act-9", EnvAction: "deactivate", EnvURL: "https://l.example.com"}
	count := map[string]int{}
	for _, kv := range rec.Env {
		name, value, _ := strings.Cut(kv, "=")
		if w, ok := want[name]; ok {
			count[name]++
			if value != w {
				t.Errorf("%s=%q; want %q", name, value, w)
			}
		}
	}
	for name := range want {
		if count[name] != 1 {
			t.Errorf("%s appears %d times in the environment; want once", name, count[name])
		}
	}
}
