package lock

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proc"
)

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Policy
		ok   bool
	}{
		{"takeover", Takeover, true},
		{"fail", Fail, true},
		{"Fail", 0, false},
		{"", 0, false},
		{"wait", 0, false},
	} {
		got, err := ParsePolicy(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParsePolicy(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
}

func TestOptionsReportsEveryProblem(t *testing.T) {
	_, err := Acquire(context.Background(), Options{Path: lockPath(t), Timeout: -time.Second, Heartbeat: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "negative") || !strings.Contains(err.Error(), "too short") {
		t.Fatalf("want both the timeout and the heartbeat reported, got %v", err)
	}
}

func TestAcquireWritesRecordAndHoldsFlock(t *testing.T) {
	log, _ := testLogger(t)
	path := lockPath(t)
	l, err := Acquire(context.Background(), Options{Path: path, Heartbeat: 20 * time.Millisecond, Logger: log, Version: "v-test"})
	if err != nil {
		t.Fatal(err)
	}
	owner := l.Owner()
	rec, ok := decodeRecord([]byte(readFile(t, path)))
	switch {
	case !ok:
		t.Fatalf("lock file holds no valid record: %q", readFile(t, path))
	case rec.Instance != owner.Instance || len(rec.Instance) != 32:
		t.Errorf("instance %q, owner says %q", rec.Instance, owner.Instance)
	case rec.PID != os.Getpid() || rec.Version != "v-test" || rec.Heartbeat != 20*time.Millisecond:
		t.Errorf("record %+v", rec)
	case rec.BootID == "" || rec.BootID != bootID():
		t.Errorf("boot id %q, this kernel is %q", rec.BootID, bootID())
	case time.Since(rec.Started) > time.Minute || !rec.Started.Equal(owner.Started):
		t.Errorf("started %v, owner says %v", rec.Started, owner.Started)
	}

	// Another open file description cannot take the flock while we hold it.
	fd, err := openForInspection(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := tryShared(fd); !isLockHeld(err) {
		t.Errorf("flock probe on a held lock: %v, want EWOULDBLOCK", err)
	}
	unix.Close(fd)

	// The heartbeat moves the mtime forward.
	first, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.ModTime().After(first.ModTime()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("heartbeat did not refresh the mtime")
		}
		time.Sleep(5 * time.Millisecond)
	}

	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file still there after Release: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	var none *Lock
	if err := none.Release(); err != nil {
		t.Errorf("Release on nil: %v", err)
	}
}

// A holder that died on this kernel left its record and let go of the flock: the waiter
// takes over at once. The record's heartbeat is an hour and its mtime fresh, so only the
// flock can be what tells.
func TestDeadHolderOnThisKernelIsTakenOverAtOnce(t *testing.T) {
	for _, m := range modes() {
		t.Run(m.name, func(t *testing.T) {
			log, lines := testLogger(t)
			path := lockPath(t)
			dead := newRecord("old", time.Hour)
			dead.Started = time.Now().Add(-time.Minute)
			writeRecord(t, path, dead, time.Now())

			start := time.Now()
			l, err := Acquire(context.Background(), Options{Path: path, Timeout: time.Hour, OnTimeout: Fail, Poll: m.poll, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Release()
			t.Logf("dead holder taken over after %s", time.Since(start))
			lines.waitFor(t, `"reason":"dead"`, 1, time.Second)
			if l.Owner().Instance == dead.Instance {
				t.Fatal("took the dead holder's instance")
			}
		})
	}
}

// The promise: a holder is dead only when no process of its program is left. Its flock is
// free (svinit was SIGKILLed and the program closed its copy), but the program's process
// group, recorded in this PID namespace, still runs: the waiter waits until it is gone.
func TestHolderWhoseProgramRunsIsNotDead(t *testing.T) {
	for _, m := range modes() {
		t.Run(m.name, func(t *testing.T) {
			log, lines := testLogger(t)
			path := lockPath(t)
			program := exec.Command("sleep", "60")
			program.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := program.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { program.Process.Kill(); program.Wait() })
			gone := newRecord("old", time.Hour)
			gone.Started, gone.Group = time.Now().Add(-time.Minute), program.Process.Pid
			writeRecord(t, path, gone, time.Now())

			_, err := Acquire(context.Background(), Options{Path: path, Timeout: 300 * time.Millisecond, OnTimeout: Fail, Poll: m.poll, Logger: log})
			if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "live-program") {
				t.Fatalf("Acquire over a running program: %v, want a timeout naming live-program", err)
			}
			got := acquireAsync(context.Background(), Options{Path: path, Timeout: time.Hour, OnTimeout: Fail, Poll: m.poll, Logger: log})
			lines.waitFor(t, `"state":"live-program"`, 2, 5*time.Second)
			program.Process.Kill()
			program.Wait()
			r := receive(t, got, 5*time.Second)
			if r.err != nil {
				t.Fatal(r.err)
			}
			defer r.l.Release()
			lines.waitFor(t, `"reason":"dead"`, 1, time.Second)
		})
	}
}

// The promise: the live-program check counts the holder's program and nothing else. A group
// number is the program's only while the recorded leader (by its start time) or members of
// its group without a leader hold it; the waiter's own group, and a number re-used by an
// unrelated leader, are not the program.
func TestProgramGroupIsTheHoldersOnly(t *testing.T) {
	sleeper := func(t *testing.T) int {
		cmd := exec.Command("sleep", "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd.Process.Pid
	}
	// leaderGone leaves a member running in a group whose leader has exited and been reaped.
	leaderGone := func(t *testing.T) (pgid int, start uint64) {
		cmd := exec.Command("sh", "-c", "sleep 60 >/dev/null & echo $!; read x; exit 0")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pgid = cmd.Process.Pid
		t.Cleanup(func() { unix.Kill(-pgid, unix.SIGKILL) })
		st, err := proc.ReadStat(pgid)
		if err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat("/proc/" + strings.TrimSpace(out.String())); err != nil {
			t.Fatalf("the member did not outlive its leader: %v", err)
		}
		return pgid, st.StartTicks
	}
	startOf := func(t *testing.T, pid int) uint64 {
		st, err := proc.ReadStat(pid)
		if err != nil {
			t.Fatal(err)
		}
		return st.StartTicks
	}
	for _, tc := range []struct {
		name    string
		program func(t *testing.T) (pgid int, start uint64)
		counts  bool
	}{
		{"the waiter's own group", func(t *testing.T) (int, uint64) {
			// Its leader (the shell that ran go test) may have exited: then no start is known.
			st, _ := proc.ReadStat(unix.Getpgrp())
			return unix.Getpgrp(), st.StartTicks
		}, false},
		{"a group number re-used by another leader", func(t *testing.T) (int, uint64) {
			pid := sleeper(t)
			return pid, startOf(t, pid) + 1
		}, false},
		{"the recorded leader", func(t *testing.T) (int, uint64) {
			pid := sleeper(t)
			return pid, startOf(t, pid)
		}, true},
		{"a member whose leader has gone", leaderGone, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, lines := testLogger(t)
			path := lockPath(t)
			pgid, start := tc.program(t)
			gone := newRecord("old", time.Hour)
			gone.Started, gone.Group, gone.GroupStart = time.Now().Add(-time.Minute), pgid, start
			writeRecord(t, path, gone, time.Now())
			l, err := Acquire(context.Background(), Options{Path: path, Timeout: 300 * time.Millisecond, OnTimeout: Fail, Logger: log})
			switch {
			case tc.counts && (!errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "live-program")):
				t.Fatalf("Acquire over the running program: %v, want a timeout naming live-program", err)
			case !tc.counts && err != nil:
				t.Fatalf("Acquire over a group that is not the program's: %v, want the lock taken as dead", err)
			case !tc.counts:
				l.Release()
				lines.waitFor(t, `"reason":"dead"`, 1, time.Second)
			}
		})
	}
}

// ProgramStarted names the program's group and its leader's start in the record, which keeps
// every other field.
func TestProgramStartedRecordsTheGroup(t *testing.T) {
	path := lockPath(t)
	l, err := Acquire(context.Background(), Options{Path: path, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if err := l.ProgramStarted(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	rec, ok := decodeRecord([]byte(readFile(t, path)))
	want := l.Owner()
	want.Group = os.Getpid()
	if st, err := proc.ReadStat(os.Getpid()); err != nil || st.StartTicks == 0 {
		t.Fatalf("ReadStat(self) = %+v, %v", st, err)
	} else {
		want.GroupStart = st.StartTicks
	}
	if !ok || !rec.Started.Equal(want.Started) {
		t.Fatalf("record %+v (valid %v), want %+v", rec, ok, want)
	}
	rec.Started = want.Started
	if rec != want || want.PIDNamespace == "" {
		t.Errorf("record %+v, want %+v with a PID namespace", rec, want)
	}
	if (*Lock)(nil).FD() != -1 || l.FD() < 0 {
		t.Errorf("FD: nil lock %d, held lock %d", (*Lock)(nil).FD(), l.FD())
	}
	// What the program inherits cannot change the record.
	if _, err := unix.Write(l.FD(), []byte("XXXXXXXX")); err != unix.EBADF {
		t.Errorf("write to the program's descriptor: %v, want EBADF", err)
	}
}

// On a file system whose flock is not shared with the holder's node, a free flock proves
// nothing; the waiter goes by the heartbeat. The holder's record names another kernel.
func TestStaleHeartbeat(t *testing.T) {
	const beat = 50 * time.Millisecond
	remote := func() Record {
		r := newRecord("remote", beat)
		r.BootID = "another-node"
		r.Started = time.Now().Add(-time.Hour)
		return r
	}

	t.Run("old mtime", func(t *testing.T) {
		log, lines := testLogger(t)
		path := lockPath(t)
		writeRecord(t, path, remote(), time.Now().Add(-time.Hour))
		start := time.Now()
		l, err := Acquire(context.Background(), Options{Path: path, Timeout: time.Hour, OnTimeout: Fail, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
		t.Logf("stale lock taken over after %s (holder heartbeat %s)", time.Since(start), beat)
		lines.waitFor(t, `"reason":"stale"`, 1, time.Second)
	})

	t.Run("refreshed until it stops", func(t *testing.T) {
		log, lines := testLogger(t)
		path := lockPath(t)
		writeRecord(t, path, remote(), time.Now())
		ch := acquireAsync(context.Background(), Options{Path: path, Timeout: time.Hour, OnTimeout: Fail, Logger: log})
		lines.waitFor(t, msgWaiting, 1, 5*time.Second)

		// Refresh like a live remote holder for 20 heartbeats: the waiter must not take it.
		var stopped time.Time
		for end := time.Now().Add(20 * beat); ; {
			now := time.Now()
			if err := os.Chtimes(path, now, now); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-ch:
				t.Fatalf("took a lock whose heartbeat is alive (err %v)", r.err)
			default:
			}
			if now.After(end) {
				stopped = now
				break
			}
			time.Sleep(beat / 5)
		}
		r := receive(t, ch, 10*time.Second)
		if r.err != nil {
			t.Fatal(r.err)
		}
		defer r.l.Release()
		t.Logf("taken over %s after the last refresh (holder heartbeat %s, stale after %d)", r.at.Sub(stopped), beat, staleBeats)
		if r.at.Sub(stopped) < staleBeats*beat {
			t.Errorf("taken %s after the last refresh, before %d heartbeats passed", r.at.Sub(stopped), staleBeats)
		}
	})

	// A holder whose flock is held is alive, however old its mtime: frozen or stopped, it
	// cannot be broken without its flock outliving the break.
	t.Run("flock held", func(t *testing.T) {
		log, _ := testLogger(t)
		path := lockPath(t)
		writeRecord(t, path, remote(), time.Now().Add(-time.Hour))
		fd, err := openForInspection(path)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		if err := tryExclusive(fd); err != nil {
			t.Fatal(err)
		}
		_, err = Acquire(context.Background(), Options{Path: path, Timeout: 20 * beat, OnTimeout: Fail, Logger: log})
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("want ErrTimeout for a frozen holder, got %v", err)
		}
		t.Log(err)
	})
}

func TestForeignLockFile(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, content := range []string{"", "sv\n", `{"half":`} {
		for _, policy := range []Policy{Takeover, Fail} {
			t.Run(policy.String()+"/"+strings.TrimSpace(content), func(t *testing.T) {
				log, lines := testLogger(t)
				path := lockPath(t)
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				l, err := Acquire(context.Background(), Options{Path: path, Timeout: timeout, OnTimeout: policy, Logger: log})
				waited := time.Since(start)
				t.Logf("returned after %s", waited)
				if waited < timeout {
					t.Errorf("returned after %s, before the %s timeout", waited, timeout)
				}
				lines.waitFor(t, msgWaiting, 1, time.Second)
				if policy == Fail {
					if !errors.Is(err, ErrTimeout) {
						t.Fatalf("want ErrTimeout, got %v", err)
					}
					t.Log(err)
					if got := readFile(t, path); got != content {
						t.Errorf("foreign file changed to %q", got)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				defer l.Release()
				lines.waitFor(t, `"reason":"foreign"`, 1, time.Second)
				if rec, ok := decodeRecord([]byte(readFile(t, path))); !ok || rec.Instance != l.Owner().Instance {
					t.Errorf("lock file after takeover: %q", readFile(t, path))
				}
			})
		}
	}
}

// The legacy preStop hook removes the file: the waiter takes the lock at once, long before
// the timeout.
func TestForeignLockFileRemovedDuringWait(t *testing.T) {
	for _, m := range modes() {
		t.Run(m.name, func(t *testing.T) {
			log, lines := testLogger(t)
			path := lockPath(t)
			if err := os.WriteFile(path, []byte("sv\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			ch := acquireAsync(context.Background(), Options{Path: path, Timeout: time.Hour, OnTimeout: Fail, Poll: m.poll, Logger: log})
			lines.waitFor(t, msgWaiting, 1, 5*time.Second)
			removed := time.Now()
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			r := receive(t, ch, 10*time.Second)
			if r.err != nil {
				t.Fatal(r.err)
			}
			defer r.l.Release()
			t.Logf("taken %s after the foreign file was removed", r.at.Sub(removed))
		})
	}
}

// Past the timeout, takeover still never breaks a holder that is alive; it takes the lock
// the moment that holder lets go. fail gives up with ErrTimeout naming the holder.
func TestLiveHolderIsNeverBroken(t *testing.T) {
	log, lines := testLogger(t)
	path := lockPath(t)
	holder, err := Acquire(context.Background(), Options{Path: path, Logger: log})
	if err != nil {
		t.Fatal(err)
	}

	_, err = Acquire(context.Background(), Options{Path: path, Timeout: 100 * time.Millisecond, OnTimeout: Fail, Logger: log})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), holder.Owner().Instance) {
		t.Fatalf("want ErrTimeout naming the holder, got %v", err)
	}
	t.Log(err)

	ch := acquireAsync(context.Background(), Options{Path: path, Timeout: 100 * time.Millisecond, OnTimeout: Takeover, Logger: log})
	lines.waitFor(t, msgPastLimit, 1, 5*time.Second)
	select {
	case r := <-ch:
		t.Fatalf("takeover broke a live holder (err %v)", r.err)
	default:
	}
	released := time.Now()
	if err := holder.Release(); err != nil {
		t.Fatal(err)
	}
	r := receive(t, ch, 5*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Logf("taken %s after the live holder released", r.at.Sub(released))
	r.l.Release()
}

// A wait that is cancelled returns at once and leaves nothing behind: no file, no
// descriptor, the foreign file untouched.
func TestCancelDuringWait(t *testing.T) {
	for _, m := range modes() {
		t.Run(m.name, func(t *testing.T) {
			log, lines := testLogger(t)
			path := lockPath(t)
			if err := os.WriteFile(path, []byte("sv\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			// Earlier tests' inotify descriptors may still be closing in the background.
			waitNoLeftovers(t, filepath.Dir(path))

			ctx, cancel := context.WithCancel(context.Background())
			ch := acquireAsync(ctx, Options{Path: path, Timeout: time.Hour, Poll: m.poll, Logger: log})
			lines.waitFor(t, msgWaiting, 1, 5*time.Second)
			cancelled := time.Now()
			cancel()
			r := receive(t, ch, 5*time.Second)
			took := r.at.Sub(cancelled)
			t.Logf("returned %s after the cancel: %v", took, r.err)
			if !errors.Is(r.err, context.Canceled) || r.l != nil {
				t.Fatalf("want context.Canceled and no lock, got %v", r.err)
			}
			if took > 100*time.Millisecond {
				t.Errorf("returned %s after the cancel, want under 100ms", took)
			}
			if got := dirEntries(t, filepath.Dir(path)); len(got) != 1 || got[0] != "lock" {
				t.Errorf("directory holds %v after the cancelled wait", got)
			}
			if got := readFile(t, path); got != "sv\n" {
				t.Errorf("foreign file changed to %q", got)
			}
			// The inotify descriptor is closed in the background, within milliseconds.
			waitNoLeftovers(t, filepath.Dir(path))
		})
	}
}

// A slow old pod whose lock was removed (by the legacy preStop hook) and taken by its
// successor must not delete the successor's lock when it finally releases.
func TestReleaseKeepsSuccessorsLock(t *testing.T) {
	log, lines := testLogger(t)
	path := lockPath(t)
	old, err := Acquire(context.Background(), Options{Path: path, Heartbeat: 20 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	lines.waitFor(t, "removed or replaced by someone else", 1, 5*time.Second)
	successor, err := Acquire(context.Background(), Options{Path: path, Timeout: time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Release(); err != nil {
		t.Fatal(err)
	}
	rec, ok := decodeRecord([]byte(readFile(t, path)))
	if !ok || rec.Instance != successor.Owner().Instance {
		t.Fatalf("successor's lock file after the old Release: %q", readFile(t, path))
	}
	if err := successor.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file still there: %v", err)
	}

	// Replaced by a foreign file: left alone too.
	old, err = Acquire(context.Background(), Options{Path: path, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("sv\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := old.Release(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != "sv\n" {
		t.Errorf("foreign file after Release: %q", got)
	}
}

func TestSymlinkIsRefused(t *testing.T) {
	log, lines := testLogger(t)

	t.Run("to a file", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(dir, "precious")
		if err := os.WriteFile(target, []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "lock")
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
		_, err := Acquire(context.Background(), Options{Path: path, Logger: log})
		if !errors.Is(err, ErrBadPath) || !strings.Contains(err.Error(), "symlink") {
			t.Fatalf("want ErrBadPath for a symlink, got %v", err)
		}
		t.Log(err)
		if got := readFile(t, target); got != "precious" {
			t.Errorf("symlink target changed to %q", got)
		}
		if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("symlink gone: %v", err)
		}
	})

	t.Run("dangling", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(dir, "elsewhere")
		path := filepath.Join(dir, "lock")
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
		// Bypass Check: the create itself must not follow the link.
		w := newWaiter(Options{Path: path, Heartbeat: DefaultHeartbeat, Logger: log})
		if _, err := w.tryTake(); !errors.Is(err, errHeld) {
			t.Fatalf("create over a dangling symlink: %v, want it refused as existing", err)
		}
		if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the symlink's target was created: %v", err)
		}
	})

	t.Run("planted during the wait", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(dir, "precious")
		if err := os.WriteFile(target, []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "lock")
		if err := os.WriteFile(path, []byte("sv\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		n, _ := lines.count(msgWaiting)
		ch := acquireAsync(context.Background(), Options{Path: path, Timeout: time.Hour, Logger: log})
		lines.waitFor(t, msgWaiting, n+1, 5*time.Second)
		// Renamed over the file, so that the path is never free for the waiter to take.
		link := filepath.Join(dir, "link")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(link, path); err != nil {
			t.Fatal(err)
		}
		r := receive(t, ch, 5*time.Second)
		if !errors.Is(r.err, ErrBadPath) {
			t.Fatalf("want ErrBadPath once a symlink is planted, got %v", r.err)
		}
		t.Log(r.err)
		if got := readFile(t, target); got != "precious" {
			t.Errorf("symlink target changed to %q", got)
		}
	})
}

// waitNoLeftovers waits until this process has no inotify descriptor and no descriptor of
// a file in dir open.
func waitNoLeftovers(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := openFDsMatching(t, func(target string) bool {
			return target == "anon_inode:inotify" || strings.HasPrefix(target, dir+"/")
		})
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("descriptors left open: %v", left)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	mustWrite := func(p string) string {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := mustWrite(filepath.Join(dir, "file"))
	existing := mustWrite(filepath.Join(dir, "existing-lock"))
	subdir := filepath.Join(dir, "sub")
	if err := os.Mkdir(subdir, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(existing, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, path, want string // want is "" for no error
	}{
		{"new file", filepath.Join(dir, "lock"), ""},
		{"existing lock", existing, ""},
		{"empty", "", "empty"},
		{"relative", "work/lock", "relative"},
		{"root", "/", "root directory"},
		{"missing directory", filepath.Join(dir, "nope", "lock"), "does not exist"},
		{"directory is a file", filepath.Join(file, "lock"), "is not a directory"},
		{"path is a directory", subdir, "is a directory"},
		{"symlink", link, "is a symlink"},
		{"named pipe", fifo, "named pipe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.path)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrBadPath) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want ErrBadPath with %q, got %v", tc.want, err)
			}
			if tc.path != "" && !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error does not name the path: %v", err)
			}
			t.Log(err)
		})
	}
}

// Goroutines of one process contend with no timeout and the takeover policy, many times
// over: past the timeout a waiter may remove only a file that stays foreign, so a holder
// caught between its create and its record write is never broken.
func TestTakeoverNeverBreaksAHolderBeingCreated(t *testing.T) {
	path := lockPath(t)
	const workers, rounds = 6, 40
	var inside, violations atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				l, err := Acquire(context.Background(), Options{Path: path, Timeout: 0, OnTimeout: Takeover})
				if err != nil {
					errs <- err
					return
				}
				if inside.Add(1) != 1 {
					violations.Add(1)
				}
				time.Sleep(50 * time.Microsecond) // the work done under the lock
				inside.Add(-1)
				if err := l.Release(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v := violations.Load(); v != 0 {
		t.Fatalf("%d times two holders at once", v)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left behind: %v", err)
	}
}

// While waiting, a line every five seconds says who holds the lock, for how long, and how
// much of the wait is left.
func TestProgressIsLogged(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the five-second progress line; skipped with -short")
	}
	log, lines := testLogger(t)
	path := lockPath(t)
	holder, err := Acquire(context.Background(), Options{Path: path, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := acquireAsync(ctx, Options{Path: path, Timeout: time.Hour, Poll: true, Logger: log})
	lines.waitFor(t, "still waiting for the lock", 1, progressEvery+5*time.Second)
	cancel()
	if r := receive(t, ch, 5*time.Second); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", r.err)
	}
	for _, line := range strings.Split(lines.String(), "\n") {
		if !strings.Contains(line, "still waiting for the lock") {
			continue
		}
		for _, field := range []string{`"state":"live"`, `"holder_instance":"` + holder.Owner().Instance, `"holder_pid":`, `"held_for_ms":`, `"waited_ms":`, `"left_ms":`} {
			if !strings.Contains(line, field) {
				t.Errorf("progress line lacks %s: %s", field, line)
			}
		}
	}
}
