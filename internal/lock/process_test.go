package lock

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Processes contend for one lock; each proves in a shared marker that it is alone in the
// critical section. All must get their turn, and nothing may be left at the end.
func TestContention(t *testing.T) {
	for _, n := range []int{2, 20} {
		for _, m := range modes() {
			t.Run(fmt.Sprintf("%d/%s", n, m.name), func(t *testing.T) {
				path := lockPath(t)
				work := t.TempDir()
				journal := filepath.Join(work, "journal")
				start := time.Now()
				hs := make([]*helper, n)
				for i := range hs {
					hs[i] = startHelper(t, "contend", "LOCK_PATH="+path, m.env(), "LOCK_POLICY=fail", "LOCK_TIMEOUT=60s",
						"LOCK_MARKER="+filepath.Join(work, "marker"), "LOCK_JOURNAL="+journal, "LOCK_HOLD=5ms")
				}
				for i, h := range hs {
					if code := h.wait(t, 60*time.Second); code != 0 {
						t.Errorf("contender %d exited %d; stderr:\n%s", i, code, h.stderr)
					}
				}
				t.Logf("%d processes took the lock in turn within %s", n, time.Since(start))

				lines := strings.Split(strings.TrimSpace(readFile(t, journal)), "\n")
				if len(lines) != 2*n {
					t.Fatalf("journal has %d lines, want %d:\n%s", len(lines), 2*n, strings.Join(lines, "\n"))
				}
				pids := map[string]bool{}
				for i := 0; i < len(lines); i += 2 {
					enter, leave := strings.Fields(lines[i]), strings.Fields(lines[i+1])
					if enter[0] != "enter" || leave[0] != "leave" || enter[1] != leave[1] {
						t.Fatalf("critical sections overlap at journal line %d:\n%s", i+1, strings.Join(lines, "\n"))
					}
					pids[enter[1]] = true
				}
				if len(pids) != n {
					t.Errorf("%d distinct holders, want %d", len(pids), n)
				}
				if got := dirEntries(t, filepath.Dir(path)); len(got) != 0 {
					t.Errorf("lock directory holds %v at the end", got)
				}
			})
		}
	}
}

// The holder releases; the waiter, another process, takes the lock. Figures are logged,
// the bound asserted is only a generous one.
func TestHandoffLatency(t *testing.T) {
	for _, m := range modes() {
		t.Run(m.name, func(t *testing.T) {
			path := lockPath(t)
			log, lines := testLogger(t)
			var lat []time.Duration
			for range 5 {
				h := startHelper(t, "hold", "LOCK_PATH="+path, m.env())
				h.line(t, "acquired", 10*time.Second)
				n, _ := lines.count(msgWaiting)
				ch := acquireAsync(context.Background(), Options{Path: path, Timeout: time.Minute, OnTimeout: Fail, Poll: m.poll, Logger: log})
				lines.waitFor(t, msgWaiting, n+1, 5*time.Second)
				if _, err := io.WriteString(h.stdin, "release\n"); err != nil {
					t.Fatal(err)
				}
				ns, err := strconv.ParseInt(h.line(t, "releasing", 5*time.Second), 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				r := receive(t, ch, 10*time.Second)
				if r.err != nil {
					t.Fatal(r.err)
				}
				lat = append(lat, r.at.Sub(time.Unix(0, ns)))
				if err := r.l.Release(); err != nil {
					t.Fatal(err)
				}
				if code := h.wait(t, 5*time.Second); code != 0 {
					t.Fatalf("holder exited %d; stderr:\n%s", code, h.stderr)
				}
			}
			slices.Sort(lat)
			t.Logf("release-to-acquire (%s): min %s, median %s, max %s", m.name, lat[0], lat[len(lat)/2], lat[len(lat)-1])
			if lat[len(lat)/2] > 2*time.Second {
				t.Errorf("median handoff %s", lat[len(lat)/2])
			}
		})
	}
}

// The holder is SIGKILLed: the kernel drops its flock and the waiter takes over long before
// its timeout, which here only a dead-holder detection can beat.
func TestCrashTakeover(t *testing.T) {
	const timeout = 30 * time.Second
	for _, m := range modes() {
		t.Run(m.name, func(t *testing.T) {
			path := lockPath(t)
			log, lines := testLogger(t)
			var took []time.Duration
			for round := range 3 {
				h := startHelper(t, "hold", "LOCK_PATH="+path, m.env())
				h.line(t, "acquired", 10*time.Second)
				n, _ := lines.count(msgWaiting)
				ch := acquireAsync(context.Background(), Options{Path: path, Timeout: timeout, OnTimeout: Fail, Poll: m.poll, Logger: log})
				lines.waitFor(t, msgWaiting, n+1, 5*time.Second)
				killed := time.Now()
				if err := h.cmd.Process.Signal(unix.SIGKILL); err != nil {
					t.Fatal(err)
				}
				r := receive(t, ch, timeout+10*time.Second)
				if r.err != nil {
					t.Fatal(r.err)
				}
				took = append(took, r.at.Sub(killed))
				lines.waitFor(t, `"reason":"dead"`, round+1, time.Second)
				if err := r.l.Release(); err != nil {
					t.Fatal(err)
				}
				h.wait(t, 5*time.Second)
			}
			slices.Sort(took)
			t.Logf("SIGKILL-to-acquire (%s): min %s, median %s, max %s", m.name, took[0], took[len(took)/2], took[len(took)-1])
			if took[len(took)-1] > timeout/3 {
				t.Errorf("crash takeover took %s with a %s timeout", took[len(took)-1], timeout)
			}
		})
	}
}

// SIGTERM while a process waits ends the wait at once, leaving nothing behind.
func TestSIGTERMDuringWait(t *testing.T) {
	path := lockPath(t)
	if err := os.WriteFile(path, []byte("sv\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := startHelper(t, "hold", "LOCK_PATH="+path, "LOCK_TIMEOUT=1h")
	h.stderr.waitFor(t, msgWaiting, 1, 10*time.Second)
	sent := time.Now()
	if err := h.cmd.Process.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := h.wait(t, 5*time.Second)
	t.Logf("exited %d, %s after SIGTERM (process exit included)", code, time.Since(sent))
	if code != 128+int(unix.SIGTERM) {
		t.Errorf("exit code %d, want %d; stderr:\n%s", code, 128+int(unix.SIGTERM), h.stderr)
	}
	if d := time.Since(sent); d > time.Second {
		t.Errorf("took %s to exit after SIGTERM", d)
	}
	if got := dirEntries(t, filepath.Dir(path)); len(got) != 1 || readFile(t, path) != "sv\n" {
		t.Errorf("directory after the cancelled wait: %v", got)
	}
}

// As in the SV Server document: the server runs as uid 1234 on a volume owned by it.
func TestNonRootUser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a helper as uid 1234, which needs root; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper as uid 1234")
	}
	const uid, gid = 1234, 1234
	// t.TempDir's parents are private to root; the helper needs to reach its binary.
	base, err := os.MkdirTemp("", "svinit-lock-uid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := copyExecutable(t, filepath.Join(base, "lock.test"))
	attr := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	mkdir := func(name string, owner int) string {
		d := filepath.Join(base, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, owner, owner); err != nil {
			t.Fatal(err)
		}
		return d
	}

	t.Run("volume owned by the user", func(t *testing.T) {
		path := filepath.Join(mkdir("owned", uid), "lock")
		h := startHelperExe(t, exe, "hold", attr, "LOCK_PATH="+path)
		h.line(t, "acquired", 10*time.Second)
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != uid {
			t.Errorf("lock file owned by uid %d, want %d", st.Uid, uid)
		}
		if _, err := io.WriteString(h.stdin, "release\n"); err != nil {
			t.Fatal(err)
		}
		if code := h.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("helper exited %d; stderr:\n%s", code, h.stderr)
		}
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Errorf("lock file left behind: %v", err)
		}
	})

	t.Run("volume not writable", func(t *testing.T) {
		path := filepath.Join(mkdir("rootowned", 0), "lock")
		h := startHelperExe(t, exe, "hold", attr, "LOCK_PATH="+path)
		if code := h.wait(t, 10*time.Second); code != 2 {
			t.Fatalf("helper exited %d, want 2; stderr:\n%s", code, h.stderr)
		}
		if !strings.Contains(h.stderr.String(), "not writable by uid 1234") {
			t.Errorf("stderr does not explain: %s", h.stderr)
		}
		t.Log(h.stderr)
	})

	t.Run("not writable and a symlink", func(t *testing.T) {
		dir := mkdir("both", 0)
		path := filepath.Join(dir, "lock")
		if err := os.Symlink("/etc/passwd", path); err != nil {
			t.Fatal(err)
		}
		h := startHelperExe(t, exe, "hold", attr, "LOCK_PATH="+path)
		if code := h.wait(t, 10*time.Second); code != 2 {
			t.Fatalf("helper exited %d, want 2; stderr:\n%s", code, h.stderr)
		}
		if s := h.stderr.String(); !strings.Contains(s, "not writable") || !strings.Contains(s, "symlink") {
			t.Errorf("want both problems reported, got: %s", s)
		}
		t.Log(h.stderr)
	})
}

func copyExecutable(t testing.TB, dst string) string {
	t.Helper()
	src, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}
