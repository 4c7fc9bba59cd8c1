package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/license/licensetest"
	"github.com/svinit/svinit/internal/proctest"
)

// Helper programs, selected by SVINIT_E2E_HELPER. Paths they write come in the environment.
var helpers = proctest.Helpers{
	"exit":        proctest.Exit,
	"record":      helperRecord,
	"sleep":       helperSleep,
	"ignore-term": helperIgnoreTerm,
	"term-count":  helperTermCount,
	"orphans":     helperOrphans,
	"spawner":     helperSpawner,
	"launcher":    helperLauncher,
	"daemon":      helperDaemon,
	"exclusive":   helperExclusive,
	"env":         helperEnvDump,
	"slow-stop":   helperSlowStop,
	"license":     helperLicense,
	"exec-seats":  func(args []string) int { return licensetest.ExecSeats(args[0]) },
	"guarded":     helperGuarded,
	"lingerer":    helperLingerer,
	"reloader":    helperReloader,
	"daemonizer":  helperDaemonizer,
	"complain":    helperComplain,
}

// helperComplain is a failing check's command that says $SAY on stderr.
func helperComplain([]string) int {
	fmt.Fprintf(os.Stderr, "connecting with %s: refused\n", os.Getenv("SAY"))
	return 1
}

// helperDaemonizer is a check's command that fails and leaves a daemon behind: a sleep in
// a session of its own, holding the command's output, its pid appended to $PIDS.
func helperDaemonizer([]string) int {
	cmd := exec.Command("sleep", "3600")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 111
	}
	proctest.AppendLine(os.Getenv("PIDS"), strconv.Itoa(cmd.Process.Pid))
	return 1
}

// helperSlowStop takes $STOP_TIME to stop after SIGTERM, as a server flushing its state
// does, writing "term" when the signal comes and "stopped" as it exits 0.
func helperSlowStop([]string) int {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGTERM)
	proctest.AppendLine(os.Getenv("REC"), "ready")
	if os.Getenv("FREEZE") != "" {
		unix.Kill(os.Getpid(), unix.SIGSTOP) // hung, until someone continues it
	}
	<-ch
	proctest.AppendLine(os.Getenv("REC"), "term")
	d, _ := time.ParseDuration(os.Getenv("STOP_TIME"))
	time.Sleep(d) // the work of stopping
	proctest.AppendLine(os.Getenv("REC"), "stopped")
	return 0
}

// helperExclusive proves mutual exclusion: it creates $MARKER with O_EXCL (failing,
// it records "overlap" and exits 9), holds it a moment, removes it and records "ran".
func helperExclusive([]string) int {
	f, err := os.OpenFile(os.Getenv("MARKER"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		proctest.AppendLine(os.Getenv("REC"), "overlap")
		return 9
	}
	f.Close()
	time.Sleep(10 * time.Millisecond) // the work done under the lock
	os.Remove(os.Getenv("MARKER"))
	proctest.AppendLine(os.Getenv("REC"), "ran")
	return 0
}

// helperEnvDump writes its environment to $REC, a variable a line, and says "ready".
func helperEnvDump([]string) int {
	proctest.AppendLine(os.Getenv("REC"), strings.Join(os.Environ(), "\n"))
	proctest.AppendLine(os.Getenv("REC"), "ready")
	return proctest.Block()
}

// helperRecord appends the name of every signal it receives to $REC, after a first line
// "ready", and exits 0 after SIGTERM. With $REC_CHILD it first starts a second recorder,
// writing there, in the same process group (the kill-group test's grandchild).
// Run it with GODEBUG=asyncpreemptoff=1: else the Go runtime's own SIGURGs would be seen.
func helperRecord([]string) int {
	var all []os.Signal
	for s := 1; s <= 64; s++ {
		if s != int(unix.SIGKILL) && s != int(unix.SIGSTOP) && s != 32 && s != 33 {
			all = append(all, unix.Signal(s))
		}
	}
	ch := make(chan os.Signal, 256)
	signal.Notify(ch, all...)
	if path := os.Getenv("REC_CHILD"); path != "" {
		cmd := exec.Command(proctest.SelfPath())
		cmd.Env = append(proctest.WithoutEnv(os.Environ(), "REC_CHILD"), "REC="+path)
		if err := cmd.Start(); err != nil {
			return 101
		}
		if !waitFile(path, "ready\n", 20*time.Second) {
			return 102
		}
	}
	rec := os.Getenv("REC")
	proctest.AppendLine(rec, "ready")
	for s := range ch {
		proctest.AppendLine(rec, unix.SignalName(s.(unix.Signal)))
		if s == unix.SIGTERM {
			return 0
		}
	}
	return 0
}

// helperSleep says "ready" on stdout and waits, every signal left at its default action.
func helperSleep([]string) int {
	fmt.Println("ready")
	if rec := os.Getenv("REC"); rec != "" {
		proctest.AppendLine(rec, "ready")
	}
	return proctest.Block()
}

// helperIgnoreTerm ignores SIGTERM, as a stuck server would, and waits.
func helperIgnoreTerm([]string) int {
	signal.Ignore(unix.SIGTERM)
	proctest.AppendLine(os.Getenv("REC"), "ready")
	return proctest.Block()
}

// helperTermCount counts the SIGTERMs it receives, says "term" at the first, and on
// SIGUSR1 writes the count to $REC and exits 0.
func helperTermCount([]string) int {
	ch := make(chan os.Signal, 64)
	signal.Notify(ch, unix.SIGTERM, unix.SIGUSR1)
	proctest.AppendLine(os.Getenv("REC"), "ready")
	n := 0
	for s := range ch {
		if s == unix.SIGUSR1 {
			proctest.AppendLine(os.Getenv("REC"), "terms "+strconv.Itoa(n))
			return 0
		}
		if n++; n == 1 {
			proctest.AppendLine(os.Getenv("REC"), "term")
		}
	}
	return 0
}

// helperOrphans has a spawner make $ORPHANS processes that it leaves behind, so that they
// are reparented to svinit, writes "spawned" to $REC once the spawner is gone, and waits.
func helperOrphans([]string) int {
	cmd := exec.Command(proctest.SelfPath())
	cmd.Env = append(proctest.WithoutEnv(os.Environ(), helperEnv), helperEnv+"=spawner")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "spawner:", err)
		return 103
	}
	proctest.AppendLine(os.Getenv("REC"), "spawned")
	return proctest.Block()
}

// helperSpawner starts $ORPHANS short-lived processes and never waits for them. It exits
// at once, orphaning them, unless $STAY is set: then it lives on as their neglectful parent
// and they stay zombies (the negative control).
func helperSpawner([]string) int {
	n, _ := strconv.Atoi(os.Getenv("ORPHANS"))
	tru, err := exec.LookPath("true")
	if err != nil {
		return 104
	}
	for i := 0; i < n; i++ {
		if _, err := syscall.ForkExec(tru, []string{"true"}, &syscall.ProcAttr{}); err != nil {
			fmt.Fprintln(os.Stderr, "fork:", err)
			return 105
		}
	}
	if os.Getenv("STAY") != "" {
		proctest.AppendLine(os.Getenv("REC"), "spawned")
		return proctest.Block()
	}
	return 0
}

// launcherBlocked and launcherIgnored are the dispositions helperLauncher starts svinit with.
var (
	launcherBlocked = []unix.Signal{unix.SIGUSR2, unix.SIGWINCH, 40}
	launcherIgnored = []unix.Signal{unix.SIGHUP}
	launcherNOFILE  = unix.Rlimit{Cur: 777, Max: 4096}
)

// helperLauncher execs svinit (its arguments) with some signals blocked, SIGHUP ignored
// and a low open-files limit, as a parent process of svinit might.
func helperLauncher(args []string) int {
	runtime.LockOSThread() // the mask is per thread, and exec keeps the calling thread's
	var set unix.Sigset_t
	for _, s := range launcherBlocked {
		set.Val[(s-1)/64] |= 1 << ((s - 1) % 64)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
		return 106
	}
	for _, s := range launcherIgnored {
		signal.Ignore(s)
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &launcherNOFILE); err != nil {
		return 107
	}
	// What svinit starts with: this thread's mask, and what this process inherited ignored
	// besides (the test's own parents may ignore signals too).
	status, _ := os.ReadFile("/proc/thread-self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 2 && (f[0] == "SigBlk:" || f[0] == "SigIgn:") {
			proctest.AppendLine(os.Getenv("REC"), f[0]+" "+f[1])
		}
	}
	if err := syscall.Exec(args[0], args, proctest.WithoutEnv(os.Environ(), helperEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "exec:", err)
	}
	return 108
}

// helperDaemon starts a grandchild in a session of its own (a daemon: $DAEMON is its
// helper mode), waits until it is ready, and exits 0, leaving it to svinit.
func helperDaemon([]string) int {
	cmd := exec.Command(proctest.SelfPath())
	cmd.Env = append(proctest.WithoutEnv(os.Environ(), helperEnv), helperEnv+"="+os.Getenv("DAEMON"), "GODEBUG=asyncpreemptoff=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 109
	}
	if !waitFile(os.Getenv("REC"), "ready\n", 20*time.Second) {
		return 110
	}
	for os.Getenv("FREEZE") != "" && procState(cmd.Process.Pid) != "T" {
		time.Sleep(5 * time.Millisecond) // the test's deadline bounds this
	}
	return 0
}

// waitFile polls until path contains want, or the deadline passes.
func waitFile(path, want string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), want) {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// helperGuarded is a server that must never run twice on the same data: it holds an
// exclusive flock on $DATA for its whole life, shared by every process it starts, and
// records "overlap $NAME" when another run holds it already, else "ran $NAME". Each process
// appends its pid to $PIDS, for the test's clean-up. $VARIANT makes it harder to contain:
// "grandchild" starts a process that outlives it by $LINGER; "daemon" does the same in a
// session of its own, out of the program's process group; "closes-fds" first closes every
// descriptor but the data file's (the lock's inherited copy too), then starts a grandchild.
func helperGuarded([]string) int {
	// Not close-on-exec: the grandchild shares the description, and with it the flock.
	fd, err := unix.Open(os.Getenv("DATA"), unix.O_RDWR|unix.O_CREAT, 0o644)
	if err != nil {
		return 111
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		proctest.AppendLine(os.Getenv("REC"), "overlap "+os.Getenv("NAME"))
		return 9
	}
	variant := os.Getenv("VARIANT")
	if variant == "closes-fds" {
		// Before anything here opens a file through package os, whose poller this would break.
		unix.CloseRange(3, uint(fd-1), 0)
		unix.CloseRange(uint(fd+1), ^uint(0), 0)
	}
	proctest.AppendLine(os.Getenv("PIDS"), strconv.Itoa(os.Getpid()))
	proctest.AppendLine(os.Getenv("REC"), "ran "+os.Getenv("NAME"))
	if variant != "plain" {
		env := append(proctest.WithoutEnv(os.Environ(), helperEnv), helperEnv+"=lingerer", "PARENT="+strconv.Itoa(os.Getpid()))
		attr := &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{Setsid: variant == "daemon"}}
		if _, err := syscall.ForkExec(proctest.SelfPath(), []string{"lingerer"}, attr); err != nil {
			return 112
		}
	}
	return proctest.Block()
}

// helperLingerer is a worker that finishes its job after its parent ($PARENT) has gone: it
// exits $LINGER after it sees its parent change.
func helperLingerer([]string) int {
	proctest.AppendLine(os.Getenv("PIDS"), strconv.Itoa(os.Getpid()))
	for strconv.Itoa(os.Getppid()) == os.Getenv("PARENT") {
		time.Sleep(5 * time.Millisecond)
	}
	d, _ := time.ParseDuration(os.Getenv("LINGER"))
	time.Sleep(d) // the work left
	return 0
}
