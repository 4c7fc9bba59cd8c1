package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/license/licensetest"
	"github.com/svinit/svinit/internal/proctest"
)

// svinitCmd runs `svinit ARGS...` (status, stop) against s's state file and returns its exit
// code and output.
func (s *svinit) command(args ...string) (int, string) {
	s.T.Helper()
	cmd := exec.Command(svinitBin, args...)
	cmd.Env = append(os.Environ(), "SVINIT_STATE_FILE="+s.State)
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		s.T.Fatalf("svinit %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// statusJSON is `svinit status --json`, decoded as a consumer would: field by field.
type statusJSON struct {
	Version int    `json:"version"`
	Phase   string `json:"phase"`
	Updated string `json:"updated"`
	Stale   bool   `json:"stale"`
	Path    string `json:"state_file"`
	Svinit  struct {
		PID     int    `json:"pid"`
		Started string `json:"started"`
	} `json:"svinit"`
	Child *struct {
		PID  int      `json:"pid"`
		Argv []string `json:"argv"`
	} `json:"child"`
	Lock *struct {
		Path string `json:"path"`
		Held bool   `json:"held"`
	} `json:"lock"`
	Lease *struct {
		Path   string `json:"path"`
		Held   bool   `json:"held"`
		Holder string `json:"holder"`
	} `json:"lease"`
	License *struct {
		Provider     string `json:"provider"`
		Instance     string `json:"instance"`
		ActivationID string `json:"activation_id"`
	} `json:"license"`
	ExitCode *int `json:"exit_code"`
}

func (s *svinit) status() (int, statusJSON) {
	s.T.Helper()
	code, out := s.command("status", "--json")
	var st statusJSON
	if code != 4 {
		dec := json.NewDecoder(strings.NewReader(out))
		if err := dec.Decode(&st); err != nil {
			s.T.Fatalf("svinit status --json: %v:\n%s", err, out)
		}
	}
	return code, st
}

// awaitPhase polls svinit status until it reports phase, and returns its exit code then.
func (s *svinit) awaitPhase(phase string) (int, statusJSON) {
	s.T.Helper()
	var (
		code int
		st   statusJSON
	)
	poll(s.T, "phase "+phase, func() bool {
		code, st = s.status()
		return st.Phase == phase
	})
	return code, st
}

func TestStatusInEachPhase(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1, Keys: []string{testKey}})
	srv.SetActivationDelay(waitLimit) // activation hangs: the activating phase lasts
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "lock")
	rec := filepath.Join(dir, "rec")

	holder := startSvinit(t, modes[1], "sleep", []string{"REC=" + rec}, "--lock", lockPath, "--", selfBin)
	waitLine(t, rec, "ready")
	if code, st := holder.status(); code != 0 || st.Phase != "running" || st.Child == nil || !st.Lock.Held {
		t.Fatalf("holder: status %d %+v, want 0 running with the lock held", code, st)
	}

	waiter := startSvinit(t, modes[1], "", []string{"SVINIT_LICENSE_KEY=" + testKey}, "--lock", lockPath,
		"--license-provider", "opswat", "--license-url", srv.URL, "--instance-id", "pod-a",
		"--license-timeout", "60s", "--license-request-timeout", "50s", "--", "/bin/true")
	if code, st := waiter.awaitPhase("waiting-for-lock"); code != 3 || st.Lock == nil || st.Lock.Held || st.Child != nil {
		t.Errorf("waiter: status %d %+v, want 3 waiting with the lock not held", code, st)
	}
	holder.Signal(unix.SIGTERM)
	if code := holder.Wait(); code != 143 {
		t.Fatalf("holder exit %d", code)
	}
	if code, st := holder.status(); code != 3 || st.Phase != "exited" || st.ExitCode == nil || *st.ExitCode != 143 || st.Lock.Held {
		t.Errorf("holder after exit: status %d %+v, want 3 exited with 143", code, st)
	}
	if code, st := waiter.awaitPhase("activating"); code != 3 || st.License == nil || st.License.Instance != "pod-a" || !st.Lock.Held {
		t.Errorf("waiter: status %d %+v, want 3 activating pod-a with the lock held", code, st)
	}
	waiter.Signal(unix.SIGTERM)
	if code := waiter.Wait(); code != 143 {
		t.Fatalf("waiter exit %d", code)
	}
	if code, _ := waiter.status(); code != 3 {
		t.Errorf("waiter after exit: status %d, want 3", code)
	}
}

func TestStatusWhileStoppingAndStale(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "rec")
	s := startSvinit(t, modes[1], "ignore-term", []string{"REC=" + rec}, "--grace", "60s", "--", selfBin)
	waitLine(t, rec, "ready")
	s.Signal(unix.SIGTERM)
	if code, st := s.awaitPhase("stopping"); code != 3 || st.Stale {
		t.Errorf("status %d %+v, want 3, not stale", code, st)
	}
	proctest.KillTree(s.Cmd.Process.Pid) // svinit dies without a word, as under SIGKILL
	s.Wait()
	code, st := s.status()
	if code != 1 || !st.Stale {
		t.Errorf("after SIGKILL: status %d %+v, want 1 and stale", code, st)
	}
	if _, out := s.command("status"); !strings.Contains(out, "stale: this svinit is gone") {
		t.Errorf("human status does not say stale:\n%s", out)
	}
}

// A program or an svinit stopped by a signal (SIGSTOP, a debugger) is hung as far as a
// liveness probe is concerned: status fails while it is frozen, so that the probe restarts
// the container, and passes again once it runs on.
func TestStatusFailsWhileFrozen(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "rec")
	s := startSvinit(t, modes[1], "sleep", []string{"REC=" + rec}, "--", selfBin)
	waitLine(t, rec, "ready")
	for _, who := range []struct {
		name string
		pid  int
	}{{"the program", s.ChildPid()}, {"svinit", s.Pid}} {
		if err := unix.Kill(who.pid, unix.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		poll(t, who.name+" stopped", func() bool { return procState(who.pid) == "T" })
		code, out := s.command("status")
		if code != 3 || !strings.Contains(out, "frozen") {
			t.Errorf("%s stopped: status %d, want 3 saying it is frozen:\n%s", who.name, code, out)
		}
		if err := unix.Kill(who.pid, unix.SIGCONT); err != nil {
			t.Fatal(err)
		}
		poll(t, who.name+" running on", func() bool { return procState(who.pid) != "T" })
		if code, out := s.command("status"); code != 0 {
			t.Errorf("%s continued: status %d, want 0:\n%s", who.name, code, out)
		}
	}
	s.Signal(unix.SIGTERM)
	s.Wait()
}

func TestStatusWithoutStateFile(t *testing.T) {
	cmd := exec.Command(svinitBin, "status", "--state-file", filepath.Join(t.TempDir(), "none.json"))
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 4 || !strings.Contains(string(out), "no state file") {
		t.Errorf("status %d:\n%s\nwant 4 and no state file", code, out)
	}
}

// As PID 1 the state file holds pid 1: the probe runs inside the container's namespaces, as
// a Kubernetes exec probe does.
func TestStatusProbeInsidePIDNamespace(t *testing.T) {
	requireRoot(t)
	rec := filepath.Join(t.TempDir(), "rec")
	s := startSvinit(t, modes[0], "sleep", []string{"REC=" + rec}, "--", selfBin)
	waitLine(t, rec, "ready")
	probe := exec.Command("nsenter", "--target", strconv.Itoa(s.Pid), "--pid", "--mount", svinitBin, "status", "--state-file", s.State)
	out, err := probe.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "svinit pid 1,") {
		t.Errorf("probe in the namespace: %v:\n%s", err, out)
	}
	s.Signal(unix.SIGTERM)
	s.Wait()
}

// stop --wait inside svinit's PID namespace (docker exec, a preStop hook) returns 0 once
// svinit is done: the end of PID 1, which kills every process of its namespace, must not
// take the waiter with it.
func TestStopWaitInsidePIDNamespace(t *testing.T) {
	requireRoot(t)
	rec := filepath.Join(t.TempDir(), "rec")
	s := startSvinit(t, modes[0], "slow-stop", []string{"REC=" + rec, "STOP_TIME=300ms"}, "--", selfBin)
	waitLine(t, rec, "ready")
	stop := exec.Command("nsenter", "--target", strconv.Itoa(s.Pid), "--pid", "--mount", svinitBin, "stop", "--wait", "--state-file", s.State)
	out, err := stop.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "stopped") {
		t.Errorf("stop --wait in the namespace: %v, want exit 0:\n%s", err, out)
	}
	if code := s.Wait(); code != 0 || !proctest.HasLine(rec, "stopped") {
		t.Errorf("svinit exited %d, want the child's 0 after its stop", code)
	}
}

func TestStopWaitsForSlowChild(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "rec")
	s := startSvinit(t, modes[1], "slow-stop", []string{"REC=" + rec, "STOP_TIME=2s"}, "--", selfBin)
	waitLine(t, rec, "ready")
	began := time.Now()
	code, out := s.command("stop", "--wait")
	took := time.Since(began)
	if code != 0 || !strings.Contains(out, "stopped") {
		t.Fatalf("stop --wait: %d:\n%s", code, out)
	}
	// svinit is our child: it has exited once it is a zombie, before our Wait reaps it.
	if alive(s.Pid) || !proctest.HasLine(rec, "stopped") {
		t.Fatal("stop --wait returned before svinit had exited")
	}
	if took < 2*time.Second {
		t.Errorf("stop --wait returned after %s, before the child's 2 s stop", took)
	}
	if code := s.Wait(); code != 0 {
		t.Errorf("exit %d, want the child's 0", code)
	}
	t.Logf("stop --wait returned %s after it was called (child takes 2 s)", took.Round(time.Millisecond))
	if code, out := s.command("stop", "--wait"); code != 0 || !strings.Contains(out, "not running") {
		t.Errorf("stop of a stopped svinit: %d:\n%s", code, out)
	}
}

func TestStopTimeout(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "rec")
	s := startSvinit(t, modes[1], "ignore-term", []string{"REC=" + rec}, "--grace", "60s", "--", selfBin)
	waitLine(t, rec, "ready")
	if code, out := s.command("stop", "--wait", "--timeout", "300ms"); code != 1 || !strings.Contains(out, "still running after 300ms") {
		t.Errorf("stop --timeout: %d:\n%s\nwant 1", code, out)
	}
}

// --stop-delay holds SIGTERM back, and the grace period still counts from its arrival: a
// child that ignores SIGTERM is killed at --grace, not at --stop-delay + --grace.
func TestStopDelayCountsAgainstGrace(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "rec")
	s := startSvinit(t, modes[1], "record", []string{"REC=" + rec, "GODEBUG=asyncpreemptoff=1"}, "--stop-delay", "1500ms", "--", selfBin)
	waitLine(t, rec, "ready")
	sent := time.Now()
	s.Signal(unix.SIGTERM)
	waitLine(t, rec, "SIGTERM")
	if held := time.Since(sent); held < 1500*time.Millisecond {
		t.Errorf("SIGTERM reached the child %s after svinit got it, before the 1.5 s delay", held)
	}
	if code := s.Wait(); code != 0 {
		t.Errorf("exit %d", code)
	}

	s = startSvinit(t, modes[1], "ignore-term", []string{"REC=" + rec + "2"}, "--stop-delay", "3s", "--grace", "4s", "--", selfBin)
	waitLine(t, rec+"2", "ready")
	sent = time.Now()
	s.Signal(unix.SIGTERM)
	code := s.Wait()
	took := time.Since(sent)
	if code != 137 {
		t.Errorf("exit %d, want 137 (SIGKILL at --grace)", code)
	}
	if took < 4*time.Second || took > 6500*time.Millisecond {
		t.Errorf("killed %s after SIGTERM; want at --grace (4 s), not at delay + grace (7 s)", took)
	}
}

func TestStopDelayMustFitInGrace(t *testing.T) {
	s := startSvinit(t, modes[1], "", nil, "--stop-delay", "10s", "--grace", "5s", "--", "/bin/true")
	if code := s.Wait(); code != 2 || !strings.Contains(s.Stderr.String(), "--stop-delay 10s: must be 0 or more and shorter than --grace 5s") {
		t.Errorf("exit %d:\n%s", code, s.Stderr.String())
	}
}

func TestSecretsFromFiles(t *testing.T) {
	for _, kv := range os.Environ() { // the machine's own NAME_FILE variables are not ours
		if name, _, _ := strings.Cut(kv, "="); strings.HasSuffix(name, "_FILE") && !strings.HasPrefix(name, "SVINIT_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	dir := t.TempDir()
	pw := filepath.Join(dir, "db-password")
	if err := os.WriteFile(pw, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := filepath.Join(dir, "rec")
	s := startSvinit(t, modes[1], "env", []string{"REC=" + rec, "DB_PASSWORD_FILE=" + pw}, "--file-env", "DB_PASSWORD", "--", selfBin)
	waitLine(t, rec, "ready")
	if !proctest.HasLine(rec, "DB_PASSWORD=hunter2") || proctest.HasLine(rec, "DB_PASSWORD_FILE="+pw) {
		t.Errorf("the child's environment is not expanded:\n%s", readFile(t, rec))
	}
	s.Signal(unix.SIGTERM)
	s.Wait()
	if strings.Contains(s.Stderr.String(), "hunter2") {
		t.Errorf("the secret reached svinit's log:\n%s", s.Stderr.String())
	}

	rec2 := filepath.Join(dir, "rec2")
	s = startSvinit(t, modes[1], "env", []string{"REC=" + rec2, "DB_PASSWORD_FILE=" + filepath.Join(dir, "missing"), "API_TOKEN_FILE=" + dir},
		"--file-env", "DB_PASSWORD,API_TOKEN", "--", selfBin)
	code := s.Wait()
	for _, want := range []string{"DB_PASSWORD_FILE=" + filepath.Join(dir, "missing") + ": open", "API_TOKEN_FILE=" + dir + ": not a regular file"} {
		if !strings.Contains(s.Stderr.String(), want) {
			t.Errorf("the error does not name %q:\n%s", want, s.Stderr.String())
		}
	}
	if code != 2 || proctest.HasLine(rec2, "ready") {
		t.Errorf("exit %d, child started %v; want 2 and nothing started", code, proctest.HasLine(rec2, "ready"))
	}
}

// procIDs returns the Uid, Gid and Groups lines of /proc/PID/status.
func procIDs(t *testing.T, pid int) (uid, gid, groups string) {
	t.Helper()
	for _, line := range strings.Split(readFile(t, "/proc/"+strconv.Itoa(pid)+"/status"), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.Join(strings.Fields(v), " ")
		switch k {
		case "Uid":
			uid = v
		case "Gid":
			gid = v
		case "Groups":
			groups = v
		}
	}
	return uid, gid, groups
}

func TestUserDropsPrivileges(t *testing.T) {
	requireRoot(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := userDir(t, 1234)
			rec := filepath.Join(dir, "rec")
			s := startSvinit(t, m, "env", []string{"REC=" + rec}, "--user", "1234:1234", "--", copyProgram(t, selfBin, dir))
			waitLine(t, rec, "ready")
			child := childOfSvinit(t, s)
			uid, gid, groups := procIDs(t, child)
			if uid != "1234 1234 1234 1234" || gid != "1234 1234 1234 1234" || groups != "1234" {
				t.Errorf("child ids: Uid %q Gid %q Groups %q, want 1234 everywhere", uid, gid, groups)
			}
			if !proctest.HasLine(rec, "HOME=/") {
				t.Errorf("HOME is not / for a uid without a passwd entry:\n%s", readFile(t, rec))
			}
			if u, _, _ := procIDs(t, s.Pid); !strings.HasPrefix(u, "0 ") {
				t.Errorf("svinit itself changed user: Uid %q", u)
			}
			s.Signal(unix.SIGTERM)
			s.Wait()
		})
	}
}

// With --user the rendered configs belong to the child's user: a template from a Secret
// volume (mode 0600 or 0400) stays readable by the program it is rendered for.
func TestUserOwnsRenderedFiles(t *testing.T) {
	requireRoot(t)
	src := filepath.Join(t.TempDir(), "db.yaml")
	if err := os.WriteFile(src, []byte("password: s3cret-{id}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(userDir(t, 1234), "db.yaml")
	s := startSvinit(t, modes[1], "", nil, "--user", "1234:1234", "--replica-index", "2",
		"--template", src+":"+dst, "--", "/bin/sh", "-c", `grep -q s3cret-2 "$0"`, dst)
	if code := s.Wait(); code != 0 {
		t.Errorf("the child could not read its rendered config: exit %d:\n%s", code, s.Stderr.String())
	}
	if fi, err := os.Stat(dst); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 1234 || fi.Mode().Perm() != 0o600 {
		t.Errorf("rendered file: %v %v, want owner 1234 and mode 0600", fi, err)
	}
}

// Under runAsUser svinit already is the user: --user naming it (or USER=name in the
// environment, which must not count) changes nothing and starts the child.
func TestUserAlreadyThatUser(t *testing.T) {
	requireRoot(t)
	t.Setenv("USER", "nobody") // as a login shell sets it; not SVINIT_USER
	s := startSvinitAs(t, 1234, "--user", "1234:1234", "--", "/bin/sh", "-c", `test "$(id -u):$(id -g)" = 1234:1234`)
	if code := s.Wait(); code != 0 {
		t.Errorf("--user 1234:1234 as uid 1234: exit %d:\n%s", code, s.Stderr.String())
	}
	s = startSvinitAs(t, 1234, "--user", "1234:0", "--", "/bin/true")
	if code := s.Wait(); code != 2 || !strings.Contains(s.Stderr.String(), "cannot switch to gid 0") {
		t.Errorf("--user 1234:0 as 1234:1234: exit %d, want 2 naming the gid:\n%s", code, s.Stderr.String())
	}
	s = startSvinitAs(t, 1234, "--", "/bin/true")
	if code := s.Wait(); code != 0 {
		t.Errorf("USER=nobody in the environment: exit %d:\n%s", code, s.Stderr.String())
	}
}

// childOfSvinit returns the host pid of svinit's child.
func childOfSvinit(t *testing.T, s *svinit) int {
	t.Helper()
	var kids []int
	poll(t, "svinit's child", func() bool { kids = proctest.Children(s.Pid); return len(kids) > 0 })
	return kids[0]
}

// Names come from the container's /etc/passwd and /etc/group: here bind-mounted test files
// in a mount namespace of svinit's own.
func TestUserNamesFromImageFiles(t *testing.T) {
	requireRoot(t)
	dir := userDir(t, 1234)
	passwd, group := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	writeFile(t, passwd, "root:x:0:0:root:/root:/bin/sh\nsv:x:1234:1234:SV Server:/home/sv:/bin/sh\n")
	writeFile(t, group, "root:x:0:\nsv:x:1234:\nsvlogs:x:1300:sv\n")
	rec := filepath.Join(dir, "rec")
	script := `mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && shift 2 && exec "$@"`
	m := mode{name: "image-files", wrap: []string{"unshare", "--mount", "sh", "-c", script, "sh", passwd, group}}
	helper := copyProgram(t, selfBin, dir)
	inNS := func(user string) *svinit {
		return startSvinit(t, m, "env", []string{"REC=" + rec}, "--user", user, "--", helper)
	}
	s := inNS("sv")
	waitLine(t, rec, "ready")
	child := childOfSvinit(t, s)
	uid, gid, groups := procIDs(t, child)
	if uid != "1234 1234 1234 1234" || gid != "1234 1234 1234 1234" || groups != "1234 1300" {
		t.Errorf("child ids: Uid %q Gid %q Groups %q, want sv (1234) with groups 1234 1300", uid, gid, groups)
	}
	if !proctest.HasLine(rec, "HOME=/home/sv") {
		t.Errorf("HOME is not sv's:\n%s", readFile(t, rec))
	}
	s.Signal(unix.SIGTERM)
	s.Wait()

	s = inNS("svadmin")
	if code := s.Wait(); code != 2 || !strings.Contains(s.Stderr.String(), `--user: user "svadmin": no such user in /etc/passwd`) {
		t.Errorf("unknown user: exit %d:\n%s", code, s.Stderr.String())
	}
}

// copyProgram copies the program src into dir, where another user can run it (the test
// binary's own directory is private to root).
func copyProgram(t *testing.T, src, dir string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestSetuidBinaryRefused(t *testing.T) {
	requireRoot(t)
	bin := copyProgram(t, svinitBin, userDir(t, 1234))
	if err := os.Chmod(bin, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	for _, uid := range []uint32{0, 1234} {
		cmd := exec.Command(bin, "--", "/bin/true")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), "refusing to run setuid") {
			t.Errorf("uid %d: exit %d:\n%s", uid, code, out)
		}
	}
}

// A program frozen by SIGSTOP (a liveness probe's "hung", a debugger's break) still stops at
// once when asked: svinit continues it after forwarding the stop signal, as systemd does,
// rather than leaving the signal pending until --grace ends in SIGKILL.
func TestStopReachesAFrozenProgram(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "rec")
	s := startSvinit(t, modes[1], "slow-stop", []string{"REC=" + rec, "STOP_TIME=0s"}, "--grace", "60s", "--", selfBin)
	waitLine(t, rec, "ready")
	child := s.ChildPid()
	if err := unix.Kill(child, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	poll(t, "the program stopped", func() bool { return procState(child) == "T" })
	s.Signal(unix.SIGTERM)
	if code := s.Wait(); code != 0 || !proctest.HasLine(rec, "stopped") {
		t.Errorf("exit %d, want the program's own 0 after it handled SIGTERM (a SIGKILL at --grace gives 137):\n%s", code, s.Stderr.String())
	}
}

// A process the program left behind, frozen by SIGSTOP, still gets to act on the clean-up's
// SIGTERM: svinit continues it, rather than leaving it to the SIGKILL.
func TestCleanUpReachesAFrozenLeftover(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "rec")
	s := startSvinit(t, modes[1], "daemon", []string{"REC=" + rec, "DAEMON=slow-stop", "STOP_TIME=0s", "FREEZE=1"}, "--", selfBin)
	if code := s.Wait(); code != 0 {
		t.Errorf("exit %d, want the program's 0", code)
	}
	if !proctest.HasLine(rec, "stopped") || strings.Contains(s.Stderr.String(), "sent SIGKILL") {
		t.Errorf("the frozen leftover did not stop on SIGTERM (SIGKILLed instead):\n%s\n%s", readFile(t, rec), s.Stderr.String())
	}
}
