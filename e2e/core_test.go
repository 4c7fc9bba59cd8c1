package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/e2e/e2etest"
	"github.com/svinit/svinit/internal/proctest"
	"github.com/svinit/svinit/internal/ptytest"
	"github.com/svinit/svinit/internal/signals"
)

// recorder starts svinit over a signal-recording child and waits until it is ready.
func recorder(t *testing.T, m mode, extraEnv []string, args ...string) (*svinit, string) {
	t.Helper()
	rec := filepath.Join(t.TempDir(), "rec")
	env := append([]string{"REC=" + rec, "GODEBUG=asyncpreemptoff=1"}, extraEnv...)
	s := startSvinit(t, m, "record", env, append(args, "--", selfBin)...)
	waitLine(t, rec, "ready")
	return s, rec
}

func TestEveryForwardableSignalReachesTheChild(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s, rec := recorder(t, m, nil)
			for sig := unix.Signal(1); sig <= 64; sig++ {
				if !signals.Forwardable(sig) || signals.IsStop(sig) {
					continue
				}
				s.Signal(sig)
				waitLine(t, rec, unix.SignalName(sig))
			}
			s.Signal(unix.SIGINT) // starts the stop, so it comes last
			waitLine(t, rec, "SIGINT")
			// Never forwarded: SIGURG is the Go runtime's, SIGCHLD svinit's own trigger.
			s.Signal(unix.SIGURG)
			s.Signal(unix.SIGCHLD)
			s.Signal(unix.SIGTERM)
			if code := s.Wait(); code != 0 {
				t.Fatalf("exit code %d, want the child's 0", code)
			}
			for _, never := range []string{"SIGURG", "SIGCHLD"} {
				if proctest.HasLine(rec, never) {
					t.Errorf("%s reached the child", never)
				}
			}
		})
	}
}

func TestRewriteAndDrop(t *testing.T) {
	s, rec := recorder(t, modes[1], []string{"SVINIT_REWRITE=HUP:0"}, "--rewrite", "USR1:USR2", "--rewrite", "WINCH:0", "--rewrite", "QUIT:RTMIN+3")
	s.Signal(unix.SIGUSR1)
	waitLine(t, rec, "SIGUSR2")
	s.Signal(unix.SIGQUIT)
	waitLine(t, rec, unix.SignalName(37))
	s.Signal(unix.SIGWINCH)
	s.Signal(unix.SIGHUP) // the flags replaced the variable: HUP goes through
	waitLine(t, rec, "SIGHUP")
	s.Signal(unix.SIGTERM)
	if code := s.Wait(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	for _, never := range []string{"SIGUSR1", "SIGWINCH", "SIGQUIT"} {
		if proctest.HasLine(rec, never) {
			t.Errorf("%s reached the child although it was rewritten", never)
		}
	}
}

func TestKillGroupReachesGrandchildren(t *testing.T) {
	for _, group := range []bool{true, false} {
		t.Run(fmt.Sprintf("kill-group=%v", group), func(t *testing.T) {
			grand := filepath.Join(t.TempDir(), "grand")
			s, rec := recorder(t, modes[1], []string{"REC_CHILD=" + grand}, "--kill-group="+strconv.FormatBool(group))
			s.Signal(unix.SIGUSR1)
			waitLine(t, rec, "SIGUSR1")
			if group {
				waitLine(t, grand, "SIGUSR1")
			} else {
				// A barrier: a SIGUSR1 forwarded to the grandchild would have been recorded
				// before this later SIGWINCH, which the test sends to the group itself.
				unix.Kill(-s.ChildPid(), unix.SIGWINCH)
				waitLine(t, grand, "SIGWINCH")
				if proctest.HasLine(grand, "SIGUSR1") {
					t.Error("the grandchild got SIGUSR1 without --kill-group")
				}
			}
			s.Signal(unix.SIGTERM)
			s.Wait()
		})
	}
}

func TestChildIgnoringTermIsKilledAfterGrace(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "rec")
			s := startSvinit(t, m, "ignore-term", []string{"REC=" + rec}, "--grace", "300ms", "--", selfBin)
			waitLine(t, rec, "ready")
			child := s.ChildPid()
			sent := time.Now()
			s.Signal(unix.SIGTERM)
			if code := s.Wait(); code != 137 {
				t.Fatalf("exit code %d, want 137 (SIGKILL after the grace)", code)
			}
			if elapsed := time.Since(sent); elapsed < 300*time.Millisecond {
				t.Errorf("svinit exited %s after SIGTERM, before the 300ms grace", elapsed)
			}
			if alive(child) {
				t.Errorf("child %d still alive", child)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	for _, code := range []int{0, 1, 2, 42, 255} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			s := startSvinit(t, modes[1], "exit", nil, "--", selfBin, strconv.Itoa(code))
			if got := s.Wait(); got != code {
				t.Errorf("exit code %d, want %d", got, code)
			}
		})
	}
	t.Run("remap", func(t *testing.T) {
		s := startSvinit(t, modes[1], "exit", []string{"SVINIT_REMAP_EXIT=42:0"}, "--remap-exit", "3:4", "--remap-exit", "143:0", "--", selfBin, "143")
		if got := s.Wait(); got != 0 {
			t.Errorf("exit code %d, want 143 remapped to 0", got)
		}
	})
}

func TestKilledChildGives128PlusSignal(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name+"/TERM", func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "rec")
			s := startSvinit(t, m, "sleep", []string{"REC=" + rec}, "--", selfBin)
			waitLine(t, rec, "ready")
			s.Signal(unix.SIGTERM)
			if code := s.Wait(); code != 143 {
				t.Errorf("exit code %d, want 143", code)
			}
		})
		t.Run(m.name+"/KILL", func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "rec")
			s := startSvinit(t, m, "sleep", []string{"REC=" + rec}, "--", selfBin)
			waitLine(t, rec, "ready")
			unix.Kill(s.ChildPid(), unix.SIGKILL)
			if code := s.Wait(); code != 137 {
				t.Errorf("exit code %d, want 137", code)
			}
		})
	}
}

func TestProgramCannotStart(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "not-executable")
	os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644)
	noInterp := filepath.Join(dir, "bad-interpreter")
	os.WriteFile(noInterp, []byte("#!/nonexistent/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "in-path"), []byte("#!/bin/sh\n"), 0o644)
	for _, tc := range []struct {
		name string
		argv []string
		env  []string
		code int
	}{
		{"missing", []string{"no-such-program-svinit"}, nil, 127},
		{"missing path", []string{filepath.Join(dir, "nope")}, nil, 127},
		{"not executable", []string{plain}, nil, 126},
		{"directory", []string{dir}, nil, 126},
		{"not executable in PATH", []string{"in-path"}, []string{"PATH=" + dir}, 126},
		{"bad interpreter", []string{noInterp}, nil, 127},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSvinit(t, modes[1], "", tc.env, append([]string{"--"}, tc.argv...)...)
			if code := s.Wait(); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			if !strings.Contains(s.Stderr.String(), tc.argv[0]) {
				t.Errorf("the message does not name %s:\n%s", tc.argv[0], s.Stderr.String())
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	s := startSvinit(t, modes[1], "", []string{"SVINIT_GRACE=soon", "SVINIT_KILL_GROUP=perhaps"}, "--rewrite", "TERM:NOPE", "--unknown", "--log-format=xml")
	if code := s.Wait(); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	for _, want := range []string{"SVINIT_GRACE", "SVINIT_KILL_GROUP", "--rewrite", "--unknown", "--log-format", "no PROGRAM"} {
		if !strings.Contains(s.Stderr.String(), want) {
			t.Errorf("stderr does not name %s:\n%s", want, s.Stderr.String())
		}
	}
}

func TestOrphansAreReaped(t *testing.T) {
	const n = 1000
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "rec")
			s := startSvinit(t, m, "orphans", []string{"REC=" + rec, "ORPHANS=" + strconv.Itoa(n)}, "--log-level", "debug", "--", selfBin)
			waitLine(t, rec, "spawned")
			s.WaitOrphansReaped(n)
			s.Signal(unix.SIGTERM)
			if code := s.Wait(); code != 143 {
				t.Errorf("exit code %d, want 143", code)
			}
		})
	}
	// The negative control: a parent that neither reaps nor exits leaves zombies, so the
	// count above can see them.
	t.Run("control", func(t *testing.T) {
		rec := filepath.Join(t.TempDir(), "rec")
		cmd := exec.Command(selfBin)
		cmd.Env = append(os.Environ(), helperEnv+"=spawner", "ORPHANS=50", "STAY=1", "REC="+rec)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		waitLine(t, rec, "spawned")
		poll(t, "50 zombies under a parent that does not reap", func() bool { return proctest.ZombiesOf(cmd.Process.Pid) == 50 })
	})
}

func TestTermStorm(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "rec")
			s := startSvinit(t, m, "term-count", []string{"REC=" + rec}, "--", selfBin)
			waitLine(t, rec, "ready")
			for i := 0; i < 1000; i++ {
				s.Signal(unix.SIGTERM)
			}
			// Go hands pending signals to a program in signal-number order: USR1 (10) would
			// overtake TERM (15) if both were pending at once.
			waitLine(t, rec, "term")
			s.Signal(unix.SIGUSR1)
			if code := s.Wait(); code != 0 {
				t.Fatalf("exit code %d, want 0: svinit must survive the storm", code)
			}
			b, _ := os.ReadFile(rec)
			var terms int
			fmt.Sscanf(strings.SplitN(string(b), "terms ", 2)[1], "%d", &terms)
			if terms < 1 {
				t.Errorf("the child got no SIGTERM")
			}
			t.Logf("1000 SIGTERMs sent, %d reached the child (the kernel coalesces equal pending signals)", terms)
			if strings.Contains(s.Stderr.String(), "panic") {
				t.Errorf("svinit panicked:\n%s", s.Stderr.String())
			}
		})
	}
}

func TestChildInheritsMaskIgnoresAndLimits(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "rec")
	// The child is cat, reading its own state: a Go helper would raise its open-files limit
	// at start, and a shell may clear its signal mask.
	cmd := exec.Command(selfBin, svinitBin, "--", "cat", "/proc/self/status", "/proc/self/limits")
	cmd.Env = append(proctest.WithoutEnv(os.Environ(), helperEnv), helperEnv+"=launcher", "REC="+rec)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("svinit: %v\n%s", err, stderr.String())
	}
	var got []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && (f[0] == "SigBlk:" || f[0] == "SigIgn:") {
			got = append(got, strings.Join(f, " "))
		} else if strings.HasPrefix(line, "Max open files") {
			got = append(got, "NOFILE: "+strings.Join(f[3:5], " "))
		}
	}
	b, _ := os.ReadFile(rec)
	want := strings.Split(strings.TrimSpace(string(b)), "\n")
	want = append(want, fmt.Sprintf("NOFILE: %d %d", launcherNOFILE.Cur, launcherNOFILE.Max))
	if len(want) != 3 {
		t.Fatalf("the launcher did not record its state: %q", b)
	}
	var blk, ign uint64
	fmt.Sscanf(want[0], "SigBlk: %x", &blk)
	fmt.Sscanf(want[1], "SigIgn: %x", &ign)
	if blk&mask(launcherBlocked) != mask(launcherBlocked) || ign&mask(launcherIgnored) != mask(launcherIgnored) {
		t.Fatalf("the launcher did not set up the mask it meant to: %q", want)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("child's view:\n%s\nwant what svinit was started with:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func mask(sigs []unix.Signal) uint64 {
	var m uint64
	for _, s := range sigs {
		m |= 1 << (s - 1)
	}
	return m
}

func TestLeftoverProcessesAreStopped(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name+"/term", func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "rec")
			s := startSvinit(t, m, "daemon", []string{"REC=" + rec, "DAEMON=record"}, "--", selfBin)
			if code := s.Wait(); code != 0 {
				t.Fatalf("exit code %d, want the child's 0", code)
			}
			if !proctest.HasLine(rec, "SIGTERM") {
				t.Errorf("the daemon left behind was not sent SIGTERM")
			}
		})
		t.Run(m.name+"/kill", func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "rec")
			s := startSvinit(t, m, "daemon", []string{"REC=" + rec, "DAEMON=ignore-term"}, "--", selfBin)
			if code := s.Wait(); code != 0 {
				t.Fatalf("exit code %d, want the child's 0", code)
			}
			if z := proctest.ZombiesOf(s.Pid); z != 0 || !strings.Contains(s.Stderr.String(), "sent SIGKILL") {
				t.Errorf("the daemon ignoring SIGTERM was not killed:\n%s", s.Stderr.String())
			}
			// One process was left, and the log says so, as PID 1 too (not "-1").
			if !strings.Contains(s.Stderr.String(), `"count":1,`) {
				t.Errorf("the log does not count the one process left:\n%s", s.Stderr.String())
			}
		})
	}
}

func TestCtrlCOnTerminal(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			master, slave := ptytest.Open(t)
			argv := []string{svinitBin, "--", selfBin}
			if m.pid1 {
				requireRoot(t)
				argv = append([]string{"unshare", "--pid", "--fork", "--mount-proc"}, argv...)
			}
			s := &e2etest.Svinit{T: t, Cmd: exec.Command(argv[0], argv[1:]...), Limit: waitLimit}
			s.Cmd.Env = append(proctest.WithoutEnv(os.Environ(), helperEnv), helperEnv+"=sleep")
			ptytest.OnTerminal(s.Cmd, slave)
			s.Start(m.pid1)
			slave.Close()
			screen := ptytest.Screen(master)
			poll(t, "the child on the terminal", func() bool { return strings.Contains(screen.String(), "ready") })
			master.Write([]byte{3}) // Ctrl-C
			if code := s.Wait(); code != 130 {
				t.Errorf("exit code %d, want 130; terminal:\n%s", code, screen.String())
			}
		})
	}
}

// SIGABRT, SIGTRAP, SIGSYS, SIGILL and the fault signals, sent to svinit by another process,
// are dropped: the Go runtime's default would dump its goroutines and exit 2, with no
// clean-up, even as PID 1. svinit goes on, and stops as asked.
func TestSentFaultSignalsAreDropped(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "rec")
			s := startSvinit(t, m, "sleep", []string{"REC=" + rec}, "--", selfBin)
			waitLine(t, rec, "ready")
			for _, sig := range []unix.Signal{unix.SIGABRT, unix.SIGTRAP, unix.SIGSYS, unix.SIGILL, unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE} {
				s.Signal(sig)
			}
			s.Signal(unix.SIGTERM)
			if code := s.Wait(); code != 143 {
				t.Errorf("exit code %d, want 143 (the child's, after SIGTERM):\n%s", code, s.Stderr.String())
			}
		})
	}
}
