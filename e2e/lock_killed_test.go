package e2e

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proctest"
)

// The promise: whatever kills svinit, a second svinit on the same lock never starts its
// program while any process of the first one's program still runs. svinit A is SIGKILLed at
// random points (waiting, starting, running) while svinit B waits; the programs themselves
// detect an overlap on their data.
func TestOneProgramPerLockWhenSvinitIsKilled(t *testing.T) {
	requireRoot(t)
	const (
		rounds = 9
		budget = 40 * time.Second // per case; the rounds stop early past it
	)
	for _, m := range modes {
		for _, variant := range []string{"plain", "grandchild", "daemon", "closes-fds"} {
			t.Run(m.name+"/"+variant, func(t *testing.T) {
				dir := t.TempDir()
				lockPath, rec, pids := filepath.Join(dir, "lock"), filepath.Join(dir, "rec"), filepath.Join(dir, "pids")
				t.Cleanup(func() { killListed(pids) })
				start := func(n int) *svinit {
					env := []string{"DATA=" + filepath.Join(dir, "data"), "REC=" + rec, "PIDS=" + pids,
						"VARIANT=" + variant, "LINGER=150ms", "NAME=" + strconv.Itoa(n)}
					// A kill between the lock file's create and its record leaves a file that
					// looks foreign: taken over after the timeout. A live holder never is.
					return startSvinit(t, m, "guarded", env, "--lock", lockPath, "--lock-timeout", "2s",
						"--lock-on-timeout", "takeover", "--", selfBin)
				}
				// Two svinits contend at all times; a round SIGKILLs one of them, at a random
				// point, and starts another. Most rounds hit the one whose program runs;
				// every third hits the older, wherever it is in its start.
				live, n := []*svinit{start(0), start(1)}, 2
				names := map[*svinit]int{live[0]: 0, live[1]: 1}
				began := time.Now()
				for round := 0; round < rounds && time.Since(began) < budget; round++ {
					victim := live[0]
					if round%3 != 2 {
						victim = running(t, rec, names, live)
					}
					time.Sleep(rand.N(100 * time.Millisecond)) // a random point in its life
					unix.Kill(victim.Pid, unix.SIGKILL)
					victim.Wait()
					live = slices.DeleteFunc(live, func(s *svinit) bool { return s == victim })
					live = append(live, start(n))
					names[live[1]], n = n, n+1
				}
				running(t, rec, names, live)
				for _, s := range live {
					// A SIGTERM before svinit has caught its signals would end it with 2.
					poll(t, "svinit to run its program or wait", func() bool {
						return proctest.HasLine(rec, "ran "+strconv.Itoa(names[s])) || strings.Contains(s.Stderr.String(), "waiting")
					})
					s.Signal(unix.SIGTERM)
				}
				for _, s := range live {
					if code := s.Wait(); code != 143 {
						t.Errorf("svinit exit %d, want 143:\n%s", code, s.Stderr.String())
					}
				}
				if _, err := os.Lstat(lockPath); !os.IsNotExist(err) {
					t.Errorf("lock file left behind: %v", err)
				}
				t.Logf("%d svinits, record:\n%s", n, readFile(t, rec))
			})
		}
	}
}

// running waits until the program of one of the live svinits runs and returns that svinit;
// it fails at once when any program found another one's data lock held.
func running(t *testing.T, rec string, names map[*svinit]int, live []*svinit) *svinit {
	t.Helper()
	var found *svinit
	poll(t, "a program to run", func() bool {
		if b := readFile(t, rec); strings.Contains(b, "overlap") {
			t.Fatalf("two programs ran at once on the same data:\n%s", b)
		}
		for _, s := range live {
			if proctest.HasLine(rec, "ran "+strconv.Itoa(names[s])) {
				found = s
			}
		}
		return found != nil
	})
	return found
}

// killListed SIGKILLs every pid listed in path: what escaped a killed svinit (the failure
// under test) must not outlive the test.
func killListed(path string) {
	b, _ := os.ReadFile(path)
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// The promise: a program never outlives its svinit, whatever killed svinit, and whichever
// user it runs as.
func TestProgramDiesWithItsSvinit(t *testing.T) {
	requireRoot(t)
	for _, user := range []string{"", "1234:1234"} {
		t.Run("user="+user, func(t *testing.T) {
			dir := userDir(t, 1234)
			rec := filepath.Join(dir, "rec")
			args := []string{"--", copyProgram(t, selfBin, dir)}
			if user != "" {
				args = append([]string{"--user", user}, args...)
			}
			s := startSvinit(t, modes[1], "sleep", []string{"REC=" + rec}, args...)
			waitLine(t, rec, "ready")
			child := childOfSvinit(t, s)
			t.Cleanup(func() { unix.Kill(child, unix.SIGKILL) })
			s.Signal(unix.SIGKILL)
			s.Wait()
			poll(t, "the program to die with its svinit", func() bool { return !alive(child) })
		})
	}
}

// The program holds a copy of the lock's descriptor (what keeps the lock held while it
// runs); the license commands svinit runs around it never do, or a vendor CLI's leftover
// daemon would hold the lock after svinit let go.
func TestLockHeldByTheProgramNotByLicenseCommands(t *testing.T) {
	dir := t.TempDir()
	lockPath, fds, rec := filepath.Join(dir, "lock"), filepath.Join(dir, "fds"), filepath.Join(dir, "rec")
	script := filepath.Join(dir, "vendor-cli")
	writeFile(t, script, "#!/bin/sh\nfor f in /proc/$$/fd/*; do readlink \"$f\"; done >> "+fds+"\necho \"$SVINIT_LICENSE_ACTION\" >> "+fds+"\n")
	os.Chmod(script, 0o755)
	s := startSvinit(t, modes[1], "sleep", []string{"REC=" + rec, "SVINIT_LICENSE_KEY=" + testKey},
		"--lock", lockPath, "--license-provider", "exec", "--license-activate-cmd", script,
		"--license-deactivate-cmd", script, "--instance-id", "pod-a", "--", selfBin)
	waitLine(t, rec, "ready")
	if !holdsFile(childOfSvinit(t, s), lockPath) {
		t.Error("the program holds no copy of the lock's descriptor")
	}
	s.Signal(unix.SIGTERM)
	if code := s.Wait(); code != 143 {
		t.Fatalf("exit %d:\n%s", code, s.Stderr.String())
	}
	waitLine(t, fds, "deactivate")
	if proctest.HasLine(fds, lockPath) {
		t.Errorf("a license command held the lock's descriptor:\n%s", readFile(t, fds))
	}
}

// The promise: the program cannot change the lock's owner record, even as another user. It
// holds the lock's flock through a read-only description; a write through it (here the
// program's printf over the descriptor it inherited) is refused, and the release removes
// the lock as its own.
func TestProgramCannotWriteTheLockRecord(t *testing.T) {
	requireRoot(t)
	dir := userDir(t, 1234)
	lockPath, rec := filepath.Join(t.TempDir(), "lock"), filepath.Join(dir, "rec")
	program := filepath.Join(dir, "program")
	writeFile(t, program, `#!/bin/sh
for f in /proc/$$/fd/*; do
	[ "$(readlink "$f")" = "$LOCK" ] || continue
	if printf XXXXXXXX >&"${f##*/}" 2>/dev/null; then echo wrote >> "$REC"; else echo refused >> "$REC"; fi
done
echo ready >> "$REC"
exec sleep 600
`)
	os.Chmod(program, 0o755)
	s := startSvinit(t, modes[1], "", []string{"REC=" + rec, "LOCK=" + lockPath},
		"--lock", lockPath, "--user", "1234:1234", "--", program)
	waitLine(t, rec, "ready")
	if !proctest.HasLine(rec, "refused") {
		t.Errorf("the program's write to the lock's descriptor was not refused: %q", readFile(t, rec))
	}
	if b := readFile(t, lockPath); !strings.HasPrefix(b, `{"hostname"`) {
		t.Errorf("lock record changed by the program: %q", b)
	}
	s.Signal(unix.SIGTERM)
	if code := s.Wait(); code != 143 {
		t.Fatalf("exit %d:\n%s", code, s.Stderr.String())
	}
	if strings.Contains(s.Stderr.String(), "another holder") {
		t.Errorf("svinit took its own lock for another's:\n%s", s.Stderr.String())
	}
	if _, err := os.Lstat(lockPath); !os.IsNotExist(err) {
		t.Errorf("lock file left behind: %v", err)
	}
}

// The promise: the program gets every descriptor svinit was started with, at its number; the
// license commands svinit runs before it get none of them (a vendor CLI's leftover daemon
// would hold a socket or a pipe open on the program's behalf).
func TestInheritedDescriptorsReachOnlyTheProgram(t *testing.T) {
	in := newInherits(t, "vendor-cli", `echo "$SVINIT_LICENSE_ACTION" >> "$FDS"`)
	s := startSvinit(t, in.mode, "sleep", []string{"REC=" + in.rec, "SVINIT_LICENSE_KEY=" + testKey},
		"--lock", filepath.Join(in.dir, "lock"), "--license-provider", "exec", "--license-activate-cmd", in.cmd,
		"--license-deactivate-cmd", in.cmd, "--instance-id", "pod-a", "--", selfBin)
	waitLine(t, in.rec, "ready")
	child := childOfSvinit(t, s)
	for fd, path := range map[int]string{7: in.low, 40: in.high} {
		if target, _ := os.Readlink("/proc/" + strconv.Itoa(child) + "/fd/" + strconv.Itoa(fd)); target != path {
			t.Errorf("the program's descriptor %d is %q, want the inherited %s", fd, target, path)
		}
	}
	in.stop(t, s, "deactivate")
}

// svinit-net, run for the start-up check and every license request, gets none of the
// descriptors svinit inherited either.
func TestInheritedDescriptorsNeverReachSvinitNet(t *testing.T) {
	// A stand-in for svinit-net that answers its check and every request with success.
	in := newInherits(t, "svinit-net", `echo "$*" >> "$FDS"
if [ "$1" = check ]; then echo '{"protocol":1,"version":"dev"}'; else echo '{}'; fi`)
	s := startSvinit(t, in.mode, "sleep", []string{"REC=" + in.rec},
		"--license-provider", "keygen-relay", "--license-url", "http://127.0.0.1:1", "--net-helper", in.cmd,
		"--instance-id", "pod-a", "--", selfBin)
	waitLine(t, in.rec, "ready")
	in.stop(t, s, "license deactivate")
	if !proctest.HasLine(in.fds, "check") {
		t.Errorf("svinit-net check was not run:\n%s", readFile(t, in.fds))
	}
}

// inherits is what a parent (systemd, a shell) hands svinit: descriptors below and above
// the lock's, 7 and 40; and a command for svinit to run that lists the descriptors it got
// into fds ($FDS), then runs tail.
type inherits struct {
	dir, low, high, fds, rec, cmd string
	mode                          mode
}

func newInherits(t *testing.T, name, tail string) inherits {
	dir := t.TempDir()
	in := inherits{dir: dir, low: filepath.Join(dir, "inherited-7"), high: filepath.Join(dir, "inherited-40"),
		fds: filepath.Join(dir, "fds"), rec: filepath.Join(dir, "rec"), cmd: filepath.Join(dir, name)}
	writeFile(t, in.low, "")
	writeFile(t, in.high, "")
	writeFile(t, in.cmd, "#!/bin/sh\nFDS="+in.fds+"\nfor f in /proc/$$/fd/*; do readlink \"$f\"; done >> \"$FDS\"\n"+tail+"\n")
	os.Chmod(in.cmd, 0o755)
	in.mode = mode{name: "inherits", wrap: []string{"bash", "-c", `exec 7<"$0" 40<"$1"; shift; exec "$@"`, in.low, in.high}}
	return in
}

// stop stops svinit once its command has run its last, and fails if the command got an
// inherited descriptor.
func (in inherits) stop(t *testing.T, s *svinit, last string) {
	t.Helper()
	s.Signal(unix.SIGTERM)
	if code := s.Wait(); code != 143 {
		t.Fatalf("exit %d:\n%s", code, s.Stderr.String())
	}
	waitLine(t, in.fds, last)
	if proctest.HasLine(in.fds, in.low) || proctest.HasLine(in.fds, in.high) {
		t.Errorf("%s got svinit's inherited descriptors:\n%s", filepath.Base(in.cmd), readFile(t, in.fds))
	}
}

// holdsFile reports whether process pid has path open.
func holdsFile(pid int, path string) bool {
	entries, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	for _, e := range entries {
		if target, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + e.Name()); target == path {
			return true
		}
	}
	return false
}
