package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// helperEnv selects a helper mode: the bench binary is also every child the inits run.
const helperEnv = "BENCH_HELPER"

// Helper modes and their parameters.
const (
	helperRTT         = "rtt"          // blocks SIGUSR1, then re-execs itself as helperRTTRun
	helperRTTRun      = "rtt-run"      // the signal round trips
	helperStorm       = "storm"        // the orphan storm, from inside the namespace
	helperStormParent = "storm-parent" // starts the orphans and exits, orphaning them

	roundsEnv  = "BENCH_ROUNDS"
	orphansEnv = "BENCH_ORPHANS"
	tinyEnv    = "BENCH_TINY"
	limitEnv   = "BENCH_LIMIT" // how long the storm may take to drain
	cpuEnv     = "BENCH_CPU"   // the CPU the round-trip helper moves to; -1 stays
)

// rttTimeout is how long one round waits for its signal to come back before counting it
// as lost; rttMaxLost ends a run early, so that an init that forwards nothing costs
// seconds, not an hour.
const (
	rttTimeout = time.Second
	rttWarmUp  = 50
	rttMaxLost = 10
)

// rttResult and stormResult are what the helpers print on stdout for the harness.
type rttResult struct {
	RTT     []int64 `json:"rtt_ns"`
	Lost    int     `json:"lost"`
	Stopped bool    `json:"stopped"` // gave up after rttMaxLost
}

type stormResult struct {
	Started int   `json:"started"`
	DrainNS int64 `json:"drain_ns"`
	Left    int   `json:"left"`
}

// runHelper runs helper mode name and returns the exit code.
func runHelper(name string, stdout, stderr io.Writer) int {
	var err error
	switch name {
	case helperRTT:
		err = execWithUSR1Blocked()
	case helperRTTRun:
		err = roundTrips(stdout)
	case helperStorm:
		err = orphanStorm(stdout)
	case helperStormParent:
		err = startOrphans()
	default:
		err = fmt.Errorf("unknown %s=%q", helperEnv, name)
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench helper %s: %v\n", name, err)
		return 1
	}
	return 0
}

// execWithUSR1Blocked re-execs this binary with SIGUSR1 blocked. The Go runtime gives every
// thread it creates the signal mask the process started with, so after the exec no thread
// can take SIGUSR1 into the runtime's handler: it stays pending until sigtimedwait collects
// it, with no goroutine hand-off in the measurement. The pid, and so the init's view of
// its child, stays the same.
func execWithUSR1Blocked() error {
	runtime.LockOSThread() // the mask is per thread, and exec keeps the calling thread's
	set := sigset(unix.SIGUSR1)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
		return fmt.Errorf("block SIGUSR1: %w", err)
	}
	// The affinity, like the mask, is the calling thread's and survives the exec; every
	// thread of the new image inherits it.
	if cpu, err := strconv.Atoi(os.Getenv(cpuEnv)); err == nil && cpu >= 0 {
		var cpus unix.CPUSet
		cpus.Set(cpu)
		if err := unix.SchedSetaffinity(0, &cpus); err != nil {
			return fmt.Errorf("move to CPU %d: %w", cpu, err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	env := append(withoutEnv(os.Environ(), helperEnv), helperEnv+"="+helperRTTRun)
	return fmt.Errorf("exec %s: %w", self, syscall.Exec(self, []string{self}, env))
}

// roundTrips sends SIGUSR1 to the init (its parent, PID 1) and waits for the init to
// forward it back, BENCH_ROUNDS times after a short warm-up.
func roundTrips(stdout io.Writer) error {
	runtime.LockOSThread()
	if err := checkBlocked(unix.SIGUSR1); err != nil {
		return err
	}
	rounds, err := envInt(roundsEnv)
	if err != nil {
		return err
	}
	parent := os.Getppid()
	set := sigset(unix.SIGUSR1)
	res := rttResult{RTT: make([]int64, 0, rounds)}
	for i := 0; i < rttWarmUp+rounds && res.Lost < rttMaxLost; i++ {
		start := time.Now()
		if err := unix.Kill(parent, unix.SIGUSR1); err != nil {
			return fmt.Errorf("signal the init (pid %d): %w", parent, err)
		}
		got, err := sigtimedwait(&set, rttTimeout)
		if err != nil {
			return err
		}
		elapsed := time.Since(start)
		switch {
		case i < rttWarmUp:
		case got:
			res.RTT = append(res.RTT, elapsed.Nanoseconds())
		default:
			res.Lost++
		}
	}
	res.Stopped = res.Lost >= rttMaxLost
	return json.NewEncoder(stdout).Encode(res)
}

// kernelSigsetSize is the kernel's sigset_t (64 signals); unix.Sigset_t is glibc's larger
// one, which rt_sigtimedwait refuses with EINVAL.
const kernelSigsetSize = 8

// sigtimedwait waits up to limit for a signal of set; false when none came.
func sigtimedwait(set *unix.Sigset_t, limit time.Duration) (bool, error) {
	deadline := time.Now().Add(limit)
	for {
		ts := unix.NsecToTimespec(max(time.Until(deadline), 0).Nanoseconds())
		_, _, errno := unix.Syscall6(unix.SYS_RT_SIGTIMEDWAIT, uintptr(unsafe.Pointer(set)), 0,
			uintptr(unsafe.Pointer(&ts)), kernelSigsetSize, 0, 0)
		switch errno {
		case 0:
			return true, nil
		case unix.EAGAIN:
			return false, nil
		case unix.EINTR:
			continue
		}
		return false, fmt.Errorf("rt_sigtimedwait: %w", errno)
	}
}

func sigset(sigs ...unix.Signal) unix.Sigset_t {
	var set unix.Sigset_t
	for _, s := range sigs {
		set.Val[(s-1)/64] |= 1 << ((uint(s) - 1) % 64)
	}
	return set
}

// checkBlocked makes sure sig is blocked, as /proc sees it for the whole process.
func checkBlocked(sig unix.Signal) error {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "SigBlk:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return fmt.Errorf("SigBlk %q: %w", v, err)
			}
			if mask&(1<<(uint(sig)-1)) == 0 {
				return fmt.Errorf("signal %d is not blocked (SigBlk %s): sigtimedwait would race the Go runtime", sig, strings.TrimSpace(v))
			}
			return nil
		}
	}
	return fmt.Errorf("no SigBlk in /proc/self/status")
}

// orphanStorm runs inside the init's namespace as its child. It has an intermediate
// process start BENCH_ORPHANS tiny children blocked on a pipe and exit, so they become
// the init's orphans; then it closes the pipe, which ends them all at once, and times how
// long the init takes until none is left in /proc (living or zombie).
func orphanStorm(stdout io.Writer) error {
	if _, err := envInt(orphansEnv); err != nil {
		return err // checked here, used by the orphans' parent
	}
	limit, err := time.ParseDuration(os.Getenv(limitEnv))
	if err != nil {
		return fmt.Errorf("%s: %w", limitEnv, err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	env := append(withoutEnv(os.Environ(), helperEnv), helperEnv+"="+helperStormParent)
	parent, err := syscall.ForkExec(self, []string{self}, &syscall.ProcAttr{
		Env: env, Files: []uintptr{uintptr(p[0]), 1, 2},
	})
	if err != nil {
		return fmt.Errorf("start the orphans' parent: %w", err)
	}
	unix.Close(p[0])
	var ws unix.WaitStatus
	if _, err := unix.Wait4(parent, &ws, 0, nil); err != nil {
		return fmt.Errorf("wait for the orphans' parent: %w", err)
	}
	if ws.ExitStatus() != 0 {
		return fmt.Errorf("the orphans' parent failed (%v); its stderr says why", ws)
	}
	self1 := os.Getpid()
	started, err := countOthers(self1)
	if err != nil {
		return err
	}
	res := stormResult{Started: started}
	start := time.Now()
	unix.Close(p[1]) // every orphan's read returns 0 and it exits
	deadline := start.Add(limit)
	for {
		left, err := countOthers(self1)
		if err != nil {
			return err
		}
		res.Left = left
		if left == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	res.DrainNS = time.Since(start).Nanoseconds()
	return json.NewEncoder(stdout).Encode(res)
}

// startOrphans starts BENCH_ORPHANS tiny children with our stdin (the storm's pipe) and
// returns without waiting for them, so they are orphaned when this process exits.
func startOrphans() error {
	n, err := envInt(orphansEnv)
	if err != nil {
		return err
	}
	tiny := os.Getenv(tinyEnv)
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	attr := &syscall.ProcAttr{Files: []uintptr{0, null.Fd(), null.Fd()}}
	for i := range n {
		if _, err := syscall.ForkExec(tiny, []string{"tiny"}, attr); err != nil {
			return fmt.Errorf("start orphan %d of %d (%s): %w", i+1, n, tiny, err)
		}
	}
	return nil
}

func envInt(name string) (int, error) {
	n, err := strconv.Atoi(os.Getenv(name))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive number", name, os.Getenv(name))
	}
	return n, nil
}

// withoutEnv drops name from env, so a helper mode is never inherited by accident.
func withoutEnv(env []string, name string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}
