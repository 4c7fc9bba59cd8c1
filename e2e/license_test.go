package e2e

import (
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/license/licensetest"
	"github.com/svinit/svinit/internal/proctest"
)

const testKey = "SECRET-key-4711"

// licensed starts svinit with a license provider over a sleeping child and returns it,
// its record file and whether the child started.
func licensed(t *testing.T, srv *licensetest.Server, provider, state string, extra ...string) (*svinit, string) {
	t.Helper()
	rec := filepath.Join(t.TempDir(), "rec")
	args := append([]string{"--license-provider", provider, "--license-url", srv.URL, "--license-state", state,
		"--instance-id", "pod-a-uid-1", "--license-timeout", "4s", "--license-request-timeout", "2s"}, extra...)
	s := startSvinit(t, modes[1], "env", []string{"REC=" + rec, "SVINIT_LICENSE_KEY=" + testKey, "LICENSE_KEY=" + testKey},
		append(args, "--", selfBin)...)
	return s, rec
}

func TestSeatHeldExactlyWhileChildRuns(t *testing.T) {
	for _, provider := range []string{"opswat", "keygen-relay"} {
		t.Run(provider, func(t *testing.T) {
			srv := licensetest.Start(t, licensetest.Options{Seats: 1, Keys: []string{testKey}})
			state := filepath.Join(t.TempDir(), "journal")
			s, rec := licensed(t, srv, provider, state)
			waitLine(t, rec, "ready")
			if srv.Live() != 1 || !srv.Holds("pod-a-uid-1") {
				t.Fatalf("seats live while the child runs: %d", srv.Live())
			}
			s.Signal(unix.SIGTERM)
			if code := s.Wait(); code != 143 {
				t.Fatalf("exit %d", code)
			}
			if srv.Live() != 0 {
				t.Errorf("%d seats leaked after SIGTERM", srv.Live())
			}
			checkNoKey(t, s, rec)
			if _, err := os.Stat(state); !os.IsNotExist(err) {
				t.Errorf("journal record left after a clean stop: %v", err)
			}
		})
	}
}

func checkNoKey(t *testing.T, s *svinit, rec string) {
	t.Helper()
	if strings.Contains(s.Stderr.String(), testKey) {
		t.Errorf("the key reached svinit's log:\n%s", s.Stderr.String())
	}
	if b, _ := os.ReadFile(rec); strings.Contains(string(b), testKey) {
		t.Errorf("the key reached the child's environment")
	}
}

func TestSeatGivenBackWhenChildIsKilled(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1, Keys: []string{testKey}})
	s, rec := licensed(t, srv, "keygen-relay", filepath.Join(t.TempDir(), "journal"))
	waitLine(t, rec, "ready")
	unix.Kill(s.ChildPid(), unix.SIGKILL)
	if code := s.Wait(); code != 137 {
		t.Fatalf("exit %d", code)
	}
	if srv.Live() != 0 {
		t.Errorf("%d seats leaked after the child crashed", srv.Live())
	}
}

func TestNoSeatsStartsNothing(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 0, Keys: []string{testKey}})
	lockPath := filepath.Join(t.TempDir(), "lock")
	s, rec := licensed(t, srv, "keygen-relay", filepath.Join(t.TempDir(), "journal"), "--lock", lockPath)
	if code := s.Wait(); code != 69 {
		t.Fatalf("exit %d, want 69 (no seats):\n%s", code, s.Stderr.String())
	}
	if proctest.HasLine(rec, "ready") {
		t.Error("the child started without a seat")
	}
	if _, err := os.Lstat(lockPath); !os.IsNotExist(err) {
		t.Error("the lock was left behind")
	}
}

func TestServerDownAtStart(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1, Keys: []string{testKey}})
	srv.Down()
	s, rec := licensed(t, srv, "opswat", filepath.Join(t.TempDir(), "journal"))
	if code := s.Wait(); code != 75 {
		t.Fatalf("exit %d, want 75 (server unreachable):\n%s", code, s.Stderr.String())
	}
	if proctest.HasLine(rec, "ready") {
		t.Error("the child started without a seat")
	}
	checkNoKey(t, s, rec)
}

func TestCrashedSvinitSeatIsReclaimed(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1, Keys: []string{testKey}})
	state := filepath.Join(t.TempDir(), "journal")
	s, rec := licensed(t, srv, "opswat", state)
	waitLine(t, rec, "ready")
	proctest.KillTree(s.Pid) // the node died: no deactivation
	s.Wait()
	if srv.Live() != 1 {
		t.Fatalf("live seats after the crash: %d, want the leaked 1", srv.Live())
	}
	// The only seat is taken by the dead run: the next start must reclaim it first.
	runAndStopCleanly(t, srv, state)
}

// runAndStopCleanly starts svinit again with the journal at state, stops it, and checks
// that no seat is left: whatever an earlier run leaked was reclaimed.
func runAndStopCleanly(t *testing.T, srv *licensetest.Server, state string) {
	t.Helper()
	s, rec := licensed(t, srv, "opswat", state)
	waitLine(t, rec, "ready")
	s.Signal(unix.SIGTERM)
	s.Wait()
	if srv.Live() != 0 {
		t.Errorf("%d seats leaked", srv.Live())
	}
}

func TestServerDownAtStopKeepsJournal(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1, Keys: []string{testKey}})
	state := filepath.Join(t.TempDir(), "journal")
	s, rec := licensed(t, srv, "opswat", state)
	waitLine(t, rec, "ready")
	srv.Down()
	s.Signal(unix.SIGTERM)
	if code := s.Wait(); code != 143 {
		t.Errorf("exit %d, want the child's 143 although deactivation failed", code)
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("the journal record is gone: %v", err)
	}
	srv.Up()
	runAndStopCleanly(t, srv, state)
}

// The exec provider's commands run through svinit's reaper, also as PID 1.
func TestExecProviderAsPID1(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "vendor.log")
	script := filepath.Join(dir, "vendor-cli")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$SVINIT_LICENSE_ACTION $SVINIT_INSTANCE_ID key=${#SVINIT_LICENSE_KEY}\" >> "+log+"\n"), 0o755)
	rec := filepath.Join(dir, "rec")
	s := startSvinit(t, modes[0], "env", []string{"REC=" + rec, "SVINIT_LICENSE_KEY=" + testKey},
		"--license-provider", "exec", "--license-activate-cmd", script, "--license-deactivate-cmd", script,
		"--instance-id", "pod-b", "--", selfBin)
	waitLine(t, rec, "ready")
	waitLine(t, log, "activate pod-b key=15")
	s.Signal(unix.SIGTERM)
	if code := s.Wait(); code != 143 {
		t.Fatalf("exit %d:\n%s", code, s.Stderr.String())
	}
	waitLine(t, log, "deactivate pod-b key=15")
	if n := strings.Count(s.Stderr.String(), `"license deactivated"`); n != 1 {
		t.Errorf("\"license deactivated\" logged %d times for one deactivation:\n%s", n, s.Stderr.String())
	}
	checkNoKey(t, s, rec)
}

func TestSignalDuringActivationGivesSeatBack(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1, Keys: []string{testKey}})
	srv.SetActivationDelay(waitLimit) // the seat is taken, the answer never comes in time
	s, rec := licensed(t, srv, "keygen-relay", filepath.Join(t.TempDir(), "journal"), "--license-request-timeout", "20s", "--license-timeout", "25s")
	poll(t, "the activation to take the seat", func() bool { return srv.Live() == 1 })
	s.Signal(unix.SIGTERM)
	if code := s.Wait(); code != 143 {
		t.Fatalf("exit %d, want 143", code)
	}
	if proctest.HasLine(rec, "ready") {
		t.Error("the child started")
	}
	if srv.Live() != 0 {
		t.Errorf("%d seats leaked by the cancelled activation", srv.Live())
	}
}

// helperLicense reads its license as a program that decrypts one would: the file at $LICENSE
// and the key beside it, at $LICENSE.key. It appends "license <the file's second line> key
// <the key>" to $REC (a "missing" for what is not there) and then "ready", again after each
// SIGHUP, and exits 0 after SIGTERM.
func helperLicense([]string) int {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, unix.SIGHUP, unix.SIGTERM)
	for {
		path := os.Getenv("LICENSE")
		line, key := "missing", "missing"
		if b, err := os.ReadFile(path); err == nil {
			if lines := strings.Split(string(b), "\n"); len(lines) > 1 {
				line = lines[1]
			}
		}
		if b, err := os.ReadFile(path + ".key"); err == nil {
			key = string(b)
		}
		proctest.AppendLine(os.Getenv("REC"), "license "+line+" key "+key)
		proctest.AppendLine(os.Getenv("REC"), "ready")
		if <-ch == unix.SIGTERM {
			return 0
		}
	}
}

// relayChild starts svinit with the keygen-relay provider over helperLicense, run as uid
// 1234 with --license-file in a directory of its own, and returns svinit, the record file
// and the license file.
func relayChild(t *testing.T, srv *licensetest.Server, env []string, extra ...string) (*svinit, string, string) {
	t.Helper()
	requireRoot(t)
	dir := userDir(t, 1234)
	rec, lic := filepath.Join(dir, "rec"), filepath.Join(dir, "license.lic")
	args := append([]string{"--license-provider", "keygen-relay", "--license-url", srv.URL,
		"--license-state", filepath.Join(t.TempDir(), "journal"), "--license-file", lic, "--user", "1234:1234",
		"--instance-id", "ns.pod-1", "--license-timeout", "5s", "--license-request-timeout", "2s"}, extra...)
	s := startSvinit(t, modes[1], "license", append([]string{"REC=" + rec, "LICENSE=" + lic}, env...),
		append(args, "--", copyProgram(t, selfBin, dir))...)
	return s, rec, lic
}

// wantLicense is the line helperLicense records for the license the relay leased to fp.
func wantLicense(t *testing.T, srv *licensetest.Server, fp string) string {
	t.Helper()
	file, key, ok := srv.Claim(fp)
	if !ok {
		t.Fatalf("the relay holds no license for %s", fp)
	}
	return "license " + strings.Split(string(file), "\n")[1] + " key " + key
}

// The relay's license file is encrypted with the license_key it comes with: the child gets
// both, the key in <license-file>.key, 0600 and its own, and the key reaches no log line.
func TestRelayChildReceivesLicenseFileAndKey(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1})
	s, rec, lic := relayChild(t, srv, nil)
	waitLine(t, rec, "ready")
	want := wantLicense(t, srv, "ns.pod-1")
	if !proctest.HasLine(rec, want) {
		t.Fatalf("the child read:\n%s\nwant %q", readFile(t, rec), want)
	}
	fi, err := os.Stat(lic + ".key")
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 1234 {
		t.Errorf("key file: %v %v; want mode 0600, owner 1234", fi, err)
	}
	_, key, _ := srv.Claim("ns.pod-1")
	s.Signal(unix.SIGTERM)
	if code := s.Wait(); code != 0 {
		t.Errorf("exit %d", code)
	}
	if strings.Contains(s.Stderr.String(), key) {
		t.Errorf("the relay's license key reached svinit's log:\n%s", s.Stderr.String())
	}
	if n := srv.Live(); n != 0 {
		t.Errorf("%d licenses leaked", n)
	}
}

// A start that finds the node still claimed (a restart within the TTL that lost its
// journal) gets a 202 without a file: svinit must still give the child one.
func TestRelayRestartWithinTTLGivesTheChildAFile(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1})
	relayRequest(t, srv, http.MethodPut, "ns.pod-1", http.StatusCreated) // the earlier run's claim
	s, rec, _ := relayChild(t, srv, nil)
	waitLine(t, rec, "ready")
	if want := wantLicense(t, srv, "ns.pod-1"); !proctest.HasLine(rec, want) {
		t.Fatalf("the child read:\n%s\nwant %q", readFile(t, rec), want)
	}
	s.Signal(unix.SIGTERM)
	s.Wait()
	if n := srv.Live(); n != 0 {
		t.Errorf("%d licenses leaked", n)
	}
}

// A provider that activates but hands out no file, with --license-file set: the program
// would start without its license. svinit gives the seat back and exits 78 (EX_CONFIG):
// the server's answers, as configured, carry no file, and no restart changes that.
func TestLicenseFileWantedButNoneGiven(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "http.json")
	writeFile(t, cfg, `{"Activate": {"Method": "PUT", "URL": "{{.URL}}/v1/nodes/{{path .Instance}}"},
		"Deactivate": {"Method": "DELETE", "URL": "{{.URL}}/v1/nodes/{{path .Instance}}"}}`)
	s := startSvinit(t, modes[1], "exit", nil, "--license-provider", "http", "--license-url", srv.URL,
		"--license-http-config", cfg, "--license-file", filepath.Join(dir, "license.lic"), "--instance-id", "ns.pod-1",
		"--", selfBin, "0")
	if code := s.Wait(); code != 78 {
		t.Errorf("exit %d; want 78, the child not started:\n%s", code, s.Stderr.String())
	}
	if n := srv.Live(); n != 0 {
		t.Errorf("%d seats leaked", n)
	}
}

// After the relay culled the node (missed heartbeats), the next heartbeat leases it another
// license: svinit rewrites the file and the key, says so at warn, and sends
// --license-reload-signal to the child.
func TestRelayChangedLicenseReachesTheChild(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 2, TTL: licensetest.MinTTL})
	// Another node holds the oldest license while svinit claims, so svinit gets the second,
	// then lets it go: once culled, svinit's claim gets the oldest free one, the first.
	relayRequest(t, srv, http.MethodPut, "other-node", http.StatusCreated)
	s, rec, lic := relayChild(t, srv, nil, "--license-reload-signal", "HUP")
	waitLine(t, rec, "ready")
	first := wantLicense(t, srv, "ns.pod-1")
	_, firstKey, _ := srv.Claim("ns.pod-1")
	relayRequest(t, srv, http.MethodDelete, "other-node", http.StatusNoContent)
	srv.Advance(2 * licensetest.MinTTL) // svinit's heartbeats are missed from here on
	poll(t, "another license for the node", func() bool {
		_, key, ok := srv.Claim("ns.pod-1")
		return ok && key != firstKey
	})
	second := wantLicense(t, srv, "ns.pod-1")
	if second == first {
		t.Fatal("the node got its old license back; the scenario needs another")
	}
	waitLine(t, rec, second) // read again after the reload signal
	_, key, _ := srv.Claim("ns.pod-1")
	if b, _ := os.ReadFile(lic + ".key"); string(b) != key {
		t.Errorf("key file %q; want the new license's key", b)
	}
	if !strings.Contains(s.Stderr.String(), `"level":"warn"`) || !strings.Contains(s.Stderr.String(), "license changed") {
		t.Errorf("no warning that the license changed:\n%s", s.Stderr.String())
	}
	s.Signal(unix.SIGTERM)
	s.Wait()
	for _, k := range []string{firstKey, key} {
		if strings.Contains(s.Stderr.String(), k) {
			t.Errorf("a license key reached svinit's log:\n%s", s.Stderr.String())
		}
	}
	if srv.Holds("ns.pod-1") {
		t.Error("the node's new license was not released")
	}
}

// Licenses in a named pool: SVINIT_LICENSE_POOL is sent as Relay-Pool, on the claim and
// on the release.
func TestRelayPool(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Pools: map[string]int{"prod": 1}})
	s, rec, _ := relayChild(t, srv, []string{"SVINIT_LICENSE_POOL=prod"})
	waitLine(t, rec, "ready")
	if want := wantLicense(t, srv, "ns.pod-1"); !proctest.HasLine(rec, want) {
		t.Fatalf("the child read:\n%s\nwant %q", readFile(t, rec), want)
	}
	s.Signal(unix.SIGTERM)
	if code := s.Wait(); code != 0 {
		t.Errorf("exit %d:\n%s", code, s.Stderr.String())
	}
	if n := srv.Live(); n != 0 {
		t.Errorf("%d licenses of pool prod leaked", n)
	}
}

// The new license options are checked before anything is taken: exit 2, naming the option.
func TestLicenseOptionsRefused(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1, Keys: []string{testKey}})
	lic := filepath.Join(t.TempDir(), "license.lic")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--license-provider", "keygen-relay", "--license-file", lic, "--license-reload-signal", "BOGUS"}, "--license-reload-signal"},
		{[]string{"--license-provider", "keygen-relay", "--license-reload-signal", "HUP"}, "set --license-file too"},
		{[]string{"--license-provider", "opswat", "--license-pool", "prod"}, "--license-pool"},
		{[]string{"--license-provider", "keygen-relay", "--license-pool", "a\tb"}, "control characters"},
	} {
		args := append(append([]string{"--license-url", srv.URL, "--instance-id", "ns.pod-1"}, tc.args...), "--", selfBin, "0")
		s := startSvinit(t, modes[1], "exit", []string{"SVINIT_LICENSE_KEY=" + testKey}, args...)
		if code := s.Wait(); code != 2 || !strings.Contains(s.Stderr.String(), tc.want) {
			t.Errorf("%v: exit %d; want 2 naming %q:\n%s", tc.args, code, tc.want, s.Stderr.String())
		}
	}
	if n := srv.Activations(); n != 0 {
		t.Errorf("%d activations made with a bad configuration", n)
	}
}

// relayRequest sends what another node would to the relay, and fails unless it gets want.
func relayRequest(t *testing.T, srv *licensetest.Server, method, fingerprint string, want int) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+"/v1/nodes/"+fingerprint, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s for %s: %v", method, fingerprint, err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s for %s: status %d, want %d", method, fingerprint, resp.StatusCode, want)
	}
}
