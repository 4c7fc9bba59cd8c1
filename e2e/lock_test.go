package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proctest"
)

func TestLockContention(t *testing.T) {
	for _, n := range []int{2, 20} {
		for _, poll := range []bool{false, true} {
			t.Run(strconv.Itoa(n)+"/poll="+strconv.FormatBool(poll), func(t *testing.T) {
				dir := t.TempDir()
				lockPath, rec := filepath.Join(dir, "lock"), filepath.Join(dir, "rec")
				env := []string{"REC=" + rec, "MARKER=" + filepath.Join(dir, "marker")}
				var all []*svinit
				for i := 0; i < n; i++ {
					all = append(all, startSvinit(t, modes[1], "exclusive", env,
						"--lock", lockPath, "--lock-poll="+strconv.FormatBool(poll), "--lock-on-timeout", "fail", "--", selfBin))
				}
				for _, s := range all {
					if code := s.Wait(); code != 0 {
						t.Errorf("svinit exit %d", code)
					}
				}
				b, _ := os.ReadFile(rec)
				if got := strings.Count(string(b), "ran\n"); got != n || strings.Contains(string(b), "overlap") {
					t.Errorf("children ran %d times of %d, record:\n%s", got, n, b)
				}
				if _, err := os.Lstat(lockPath); !os.IsNotExist(err) {
					t.Errorf("lock file left behind: %v", err)
				}
			})
		}
	}
}

// holdLock starts an svinit holding the lock over a sleeping child, and waits until the
// child runs.
func holdLock(t *testing.T, lockPath string, args ...string) (*svinit, string) {
	t.Helper()
	rec := filepath.Join(t.TempDir(), "holder")
	s := startSvinit(t, modes[1], "sleep", []string{"REC=" + rec}, append([]string{"--lock", lockPath}, append(args, "--", selfBin)...)...)
	waitLine(t, rec, "ready")
	return s, rec
}

func TestLockHandoff(t *testing.T) {
	for _, mode := range []string{"--lock-poll=false", "--lock-poll=true"} {
		t.Run(mode, func(t *testing.T) {
			lockPath := filepath.Join(t.TempDir(), "lock")
			holder, _ := holdLock(t, lockPath, mode)
			rec := filepath.Join(t.TempDir(), "waiter")
			waiter := startSvinit(t, modes[1], "sleep", []string{"REC=" + rec}, "--lock", lockPath, mode, "--lock-on-timeout", "fail", "--", selfBin)
			poll(t, "the waiter to log that it waits", func() bool { return strings.Contains(waiter.Stderr.String(), "waiting") })
			if proctest.HasLine(rec, "ready") {
				t.Fatal("the waiter's child started while the lock was held")
			}
			holder.Signal(unix.SIGTERM)
			released := time.Now()
			waitLine(t, rec, "ready")
			t.Logf("release to start of the next child: %s (%s)", time.Since(released), mode)
			holder.Wait()
			waiter.Signal(unix.SIGTERM)
			waiter.Wait()
			if _, err := os.Lstat(lockPath); !os.IsNotExist(err) {
				t.Errorf("lock file left behind: %v", err)
			}
		})
	}
}

func TestLockHolderKilled(t *testing.T) {
	lockPath := filepath.Join(t.TempDir(), "lock")
	holder, _ := holdLock(t, lockPath)
	rec := filepath.Join(t.TempDir(), "waiter")
	// With fail and a 60 s timeout, only the dead holder's detection can start this child.
	waiter := startSvinit(t, modes[1], "sleep", []string{"REC=" + rec}, "--lock", lockPath, "--lock-timeout", "60s", "--lock-on-timeout", "fail", "--", selfBin)
	poll(t, "the waiter to wait", func() bool { return strings.Contains(waiter.Stderr.String(), "waiting") })
	killed := time.Now()
	proctest.KillTree(holder.Pid) // the node's OOM killer, or a SIGKILLed pod
	waitLine(t, rec, "ready")
	t.Logf("SIGKILL of the holder to start of the next child: %s", time.Since(killed))
	waiter.Signal(unix.SIGTERM)
	if code := waiter.Wait(); code != 143 {
		t.Errorf("waiter exit %d", code)
	}
}

func TestLockForeignFile(t *testing.T) {
	for _, tc := range []struct {
		policy string
		code   int
	}{{"takeover", 0}, {"fail", 73}} {
		t.Run(tc.policy, func(t *testing.T) {
			dir := t.TempDir()
			lockPath, rec := filepath.Join(dir, "lock"), filepath.Join(dir, "rec")
			os.WriteFile(lockPath, []byte("sv\n"), 0o644) // the SV Server wrapper's lock
			s := startSvinit(t, modes[1], "exit", []string{"REC=" + rec}, "--lock", lockPath, "--lock-timeout", "300ms", "--lock-on-timeout", tc.policy, "--", selfBin, "0")
			if code := s.Wait(); code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, s.Stderr.String())
			}
			_, err := os.Lstat(lockPath)
			if tc.policy == "fail" && err != nil {
				t.Errorf("fail removed the foreign lock: %v", err)
			}
			if tc.policy == "takeover" && !os.IsNotExist(err) {
				t.Errorf("takeover left a lock behind: %v", err)
			}
		})
	}
}

func TestLockSignalDuringWait(t *testing.T) {
	dir := t.TempDir()
	lockPath, rec := filepath.Join(dir, "lock"), filepath.Join(dir, "rec")
	os.WriteFile(lockPath, nil, 0o644) // a legacy `touch lock`
	s := startSvinit(t, modes[1], "sleep", []string{"REC=" + rec}, "--lock", lockPath, "--", selfBin)
	poll(t, "svinit to wait", func() bool { return strings.Contains(s.Stderr.String(), "waiting") })
	sent := time.Now()
	s.Signal(unix.SIGTERM)
	code := s.Wait()
	took := time.Since(sent)
	t.Logf("SIGTERM during the lock wait to svinit's exit: %s", took)
	if code != 143 {
		t.Errorf("exit %d, want 143", code)
	}
	if took > time.Second { // the issue asks for 100 ms; a loaded CI machine gets slack
		t.Errorf("svinit took %s to end the wait", took)
	}
	if proctest.HasLine(rec, "ready") {
		t.Error("the child started")
	}
	if b, err := os.ReadFile(lockPath); err != nil || len(b) != 0 {
		t.Errorf("the foreign lock was changed: %q, %v", b, err)
	}
}

func TestLockBadPaths(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("precious"), 0o644)
	link := filepath.Join(dir, "lock")
	os.Symlink(target, link)
	for _, path := range []string{link, dir, filepath.Join(dir, "missing", "lock")} {
		s := startSvinit(t, modes[1], "exit", nil, "--lock", path, "--", selfBin, "0")
		if code := s.Wait(); code != 2 {
			t.Errorf("--lock %s: exit %d, want 2", path, code)
		}
		if !strings.Contains(s.Stderr.String(), path) {
			t.Errorf("the message does not name %s:\n%s", path, s.Stderr.String())
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "precious" {
		t.Errorf("the symlink's target was written: %q", b)
	}
}

func TestLockAsNonRootUser(t *testing.T) {
	requireRoot(t)
	vol := userDir(t, 1234) // the SV Server's user, as fsGroup would make the volume
	lockPath := filepath.Join(vol, "lock")
	s := startSvinitAs(t, 1234, "--lock", lockPath, "--", "/bin/sh", "-c", "test -O "+lockPath)
	if code := s.Wait(); code != 0 {
		t.Fatalf("exit %d: the child did not see a lock owned by 1234:\n%s", code, s.Stderr.String())
	}
	if _, err := os.Lstat(lockPath); !os.IsNotExist(err) {
		t.Errorf("lock left behind: %v", err)
	}
	os.Chown(vol, 0, 0)
	s = startSvinitAs(t, 1234, "--lock", lockPath, "--", "/bin/true")
	if code := s.Wait(); code != 2 || !strings.Contains(s.Stderr.String(), "not writable") {
		t.Errorf("a volume 1234 cannot write: exit %d, want 2 naming the problem:\n%s", code, s.Stderr.String())
	}
}
