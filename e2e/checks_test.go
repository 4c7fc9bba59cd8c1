package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proctest"
)

// stateOf is svinit's state file, read as seen from outside its PID namespace.
type stateOf struct {
	Phase   string         `json:"phase"`
	Ready   map[string]any `json:"ready"`
	Waiting []struct {
		Check string `json:"check"`
		Error string `json:"error"`
	} `json:"waiting_for"`
}

func readState(s *svinit) stateOf {
	var st stateOf
	if b, err := os.ReadFile(s.State); err == nil {
		json.Unmarshal(b, &st)
	}
	return st
}

func phaseOf(s *svinit) (phase string, ready map[string]any) {
	st := readState(s)
	return st.Phase, st.Ready
}

// freeAddr is a local TCP address nobody listens on, for a listener the test opens later.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// flakyServer answers 503 until ok is set, then 200, and counts the requests.
type flakyServer struct {
	*httptest.Server
	ok       atomic.Bool
	requests atomic.Int32
}

func newFlakyServer(t *testing.T) *flakyServer {
	f := &flakyServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if !f.ok.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// As PID 1, svinit waits for each kind of dependency before it starts the child: the
// phase says so, the child is not started while the check fails, and it starts once it
// passes.
func TestWaitForEachKindBeforeTheStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup returns the check and what makes it pass; failing is true once an attempt
		// has been seen to fail, where the test can tell.
		setup func(t *testing.T, dir string) (check string, failing func() bool, appear func())
	}{
		{"tcp listener appears", func(t *testing.T, dir string) (string, func() bool, func()) {
			addr := freeAddr(t)
			return "tcp://" + addr, nil, func() { listen(t, addr) }
		}},
		{"http 503 then 200", func(t *testing.T, dir string) (string, func() bool, func()) {
			srv := newFlakyServer(t)
			return srv.URL + "/healthz", func() bool { return srv.requests.Load() > 0 }, func() { srv.ok.Store(true) }
		}},
		{"file created", func(t *testing.T, dir string) (string, func() bool, func()) {
			path := filepath.Join(dir, "ready")
			return "file:" + path, nil, func() { writeFile(t, path, "") }
		}},
		{"exec fails then passes", func(t *testing.T, dir string) (string, func() bool, func()) {
			path := filepath.Join(dir, "flag")
			return "exec:test -e " + path, nil, func() { writeFile(t, path, "") }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rec := filepath.Join(dir, "rec")
			chk, failing, appear := tc.setup(t, dir)
			s := startSvinit(t, modes[0], "sleep", []string{"REC=" + rec}, "--wait-for", chk, "--wait-timeout", "0", "--", selfBin)
			poll(t, "phase waiting-for-dependencies", func() bool { p, _ := phaseOf(s); return p == "waiting-for-dependencies" })
			if failing != nil {
				poll(t, "a failed attempt", failing)
			}
			poll(t, "the state file to name what is missing", func() bool {
				st := readState(s)
				return len(st.Waiting) == 1 && st.Waiting[0].Check == chk && st.Waiting[0].Error != ""
			})
			if readFile(t, rec) != "" {
				t.Fatal("the child started before its dependency was there")
			}
			appear()
			waitLine(t, rec, "ready")
			if p, _ := phaseOf(s); p != "running" {
				t.Errorf("phase %q once the child runs", p)
			}
			if !strings.Contains(s.Stderr.String(), `"dependencies ready"`) {
				t.Errorf("no log line says the dependencies are ready")
			}
			s.Signal(unix.SIGTERM)
			if code := s.Wait(); code != 143 {
				t.Errorf("exit %d, want 143", code)
			}
		})
	}
}

// When --wait-timeout passes, svinit exits 124, as timeout(1), naming what still fails and
// why; nothing was taken and no child started.
func TestWaitTimeoutIs124AndTakesNothing(t *testing.T) {
	tk := newTakings(t)
	missing := filepath.Join(tk.dir, "never")
	s := startSvinit(t, modes[0], "sleep", []string{"REC=" + tk.rec, "SVINIT_LICENSE_KEY=" + testKey}, append(tk.args(), "--instance-id", "pod-a",
		"--wait-for", "file:"+missing, "--wait-timeout", "1s", "--", selfBin)...)
	if code := s.Wait(); code != 124 {
		t.Errorf("exit %d, want 124", code)
	}
	if msg := s.Stderr.String(); !strings.Contains(msg, "file:"+missing+": does not exist") || !strings.Contains(msg, "--wait-timeout passed") {
		t.Errorf("the log does not name the failing check and why:\n%s", msg)
	}
	if st := readState(s); st.Phase != "exited" || len(st.Waiting) != 1 || st.Waiting[0].Error != "does not exist" {
		t.Errorf("state file %+v, want exited and the missing file named", st)
	}
	tk.requireNothingTaken(t, s)
}

// SIGTERM ends the wait at once, a check's command killed: 143, nothing taken, no child
// started; as PID 1 and as a plain process, where nothing else would kill the command.
func TestStopSignalEndsTheWait(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			tk := newTakings(t)
			s := startSvinit(t, m, "sleep", []string{"REC=" + tk.rec, "SVINIT_LICENSE_KEY=" + testKey}, append(tk.args(), "--instance-id", "pod-a",
				"--wait-for", "tcp://"+freeAddr(t), "--wait-for", "exec:sleep 3600", "--check-timeout", "1h", "--wait-timeout", "0", "--", selfBin)...)
			sleeper := checkCommand(t, s)
			s.Signal(unix.SIGTERM)
			if code := s.Wait(); code != 143 {
				t.Errorf("exit %d, want 143", code)
			}
			if alive(sleeper) {
				t.Errorf("the check's command, pid %d, outlived svinit", sleeper)
			}
			tk.requireNothingTaken(t, s)
		})
	}
}

// checkCommand waits for svinit's exec: check `sleep` to run, and returns its pid.
func checkCommand(t *testing.T, s *svinit) int {
	t.Helper()
	var sleeper int
	poll(t, "the exec check's command to run", func() bool {
		for _, pid := range proctest.Children(s.Pid) {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "sleep" {
				sleeper = pid
				return true
			}
		}
		return false
	})
	return sleeper
}

// A readiness check that hangs holds back neither the stop nor svinit's exit: it is
// cancelled when the child exits, its command killed.
func TestHungReadinessCheckHoldsNothingBack(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "rec")
			s := startSvinit(t, m, "sleep", []string{"REC=" + rec}, "--ready", "exec:sleep 3600", "--check-timeout", "1h", "--", selfBin)
			waitLine(t, rec, "ready")
			sleeper := checkCommand(t, s)
			if st := readState(s); st.Ready["ready"] != false || st.Ready["reason"] != "not checked yet" {
				t.Errorf("state file's ready %v while the first round runs, want not checked yet", st.Ready)
			}
			s.Signal(unix.SIGTERM)
			if code := s.Wait(); code != 143 {
				t.Errorf("exit %d, want 143", code)
			}
			if alive(sleeper) {
				t.Errorf("the check's command, pid %d, outlived svinit", sleeper)
			}
		})
	}
}

// svinit status --ready fails until the --ready check passes, then succeeds, then fails
// again when the dependency goes away, and the state file says why; plain status says
// running all along.
func TestStatusReadyFollowsTheCheck(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "rec")
	addr := freeAddr(t)
	s := startSvinit(t, modes[1], "sleep", []string{"REC=" + rec}, "--ready", "tcp://"+addr, "--ready-interval", "100ms", "--", selfBin)
	waitLine(t, rec, "ready")
	statusReady := func() (int, string) { return s.command("status", "--ready") }
	if code, out := statusReady(); code != 3 || !strings.Contains(out, "not ready") {
		t.Errorf("before the check passes: status --ready %d:\n%s", code, out)
	}
	if code, _ := s.command("status"); code != 0 {
		t.Errorf("plain status %d while the child runs, want 0", code)
	}
	ln := listen(t, addr)
	poll(t, "status --ready to pass", func() bool { code, _ := statusReady(); return code == 0 })
	if _, ready := phaseOf(s); ready["ready"] != true || ready["since"] == nil {
		t.Errorf("state file's ready %v", ready)
	}
	ln.Close()
	poll(t, "status --ready to fail again", func() bool { code, _ := statusReady(); return code == 3 })
	_, ready := phaseOf(s)
	if reason, _ := ready["reason"].(string); ready["ready"] != false || !strings.Contains(reason, "tcp://"+addr) || !strings.Contains(reason, "refused") {
		t.Errorf("state file's ready %v, want not ready and why", ready)
	}
	if _, out := statusReady(); !strings.Contains(out, "refused") {
		t.Errorf("status --ready does not say why:\n%s", out)
	}
	if code, _ := s.command("status"); code != 0 {
		t.Errorf("plain status %d while the child runs, want 0", code)
	}
	if n := strings.Count(s.Stderr.String(), `"not ready"`); n != 2 {
		t.Errorf("%d not-ready log lines, want 2 (one per change):\n%s", n, s.Stderr.String())
	}
	s.Signal(unix.SIGTERM)
	if code := s.Wait(); code != 143 {
		t.Errorf("exit %d, want 143", code)
	}
}
