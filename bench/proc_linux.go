package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proc"
)

// pollEvery paces every wait on /proc: short enough to add little to a start-up, long
// enough to leave the two cores to the processes being watched.
const pollEvery = 200 * time.Microsecond

// errGone says a process exited while it was being waited for.
var errGone = errors.New("process exited")

// childrenOf lists the children of pid, over all its threads (a Go process forks from any).
func childrenOf(pid int) []int {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

func alive(pid int) bool { return unix.Kill(pid, 0) == nil }

// waitForChild polls until pid has a child and returns it; errGone when pid exits first.
func waitForChild(pid int, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	for {
		if c := childrenOf(pid); len(c) > 0 {
			return c[0], nil
		}
		if !alive(pid) || isZombie(pid) {
			return 0, fmt.Errorf("waiting for a child of pid %d: %w", pid, errGone)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("pid %d started no child within %s", pid, limit)
		}
		time.Sleep(pollEvery)
	}
}

// waitForChildRunning polls until a child of pid has exec'd a program called comm, and
// returns it; errGone when pid exits first. Other children may come first (the fork
// before the exec; svinit's license command before the program).
func waitForChildRunning(pid int, comm string, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	for {
		for _, c := range childrenOf(pid) {
			if b, err := os.ReadFile("/proc/" + strconv.Itoa(c) + "/comm"); err == nil && strings.TrimSpace(string(b)) == comm {
				return c, nil
			}
		}
		if !alive(pid) || isZombie(pid) {
			return 0, fmt.Errorf("waiting for a child of pid %d to run %s: %w", pid, comm, errGone)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no child of pid %d ran %s within %s", pid, comm, limit)
		}
		time.Sleep(pollEvery)
	}
}

func isZombie(pid int) bool {
	st, err := proc.ReadStat(pid)
	return err == nil && st.State == "Z"
}

// memSample is a process's memory, in bytes: its high-water mark of resident memory, its
// resident anonymous memory (what no other process can share), and its proportional set
// size (each resident page divided by the number of processes that map it).
type memSample struct{ hwm, anon, pss float64 }

func readMemory(pid int) (memSample, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/"
	status, err := kBFields(dir+"status", "VmHWM", "RssAnon")
	if err != nil {
		return memSample{}, err
	}
	rollup, err := kBFields(dir+"smaps_rollup", "Pss")
	if err != nil {
		return memSample{}, err
	}
	return memSample{hwm: status["VmHWM"], anon: status["RssAnon"], pss: rollup["Pss"]}, nil
}

// kBFields reads "Key:  N kB" lines of a /proc file, in bytes; each key must be there.
func kBFields(path string, keys ...string) (map[string]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	defer f.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !slices.Contains(keys, k) {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return nil, fmt.Errorf("memory: %s: %s: %w", path, k, err)
		}
		out[k] = kb * 1024
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("memory: %s: %w", path, err)
	}
	for _, k := range keys {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("memory: no %s in %s (a kernel thread, or gone)", k, path)
		}
	}
	return out, nil
}

// awaitExit blocks until pid, which need not be our child, has exited, and returns when
// the kernel said so. A pidfd becomes readable when the whole thread group is gone.
func awaitExit(pidfd int, limit time.Duration) (time.Time, error) {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	deadline := time.Now().Add(limit)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return time.Time{}, fmt.Errorf("process did not exit within %s", limit)
		}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("poll pidfd: %w", err)
		}
		if n > 0 {
			return time.Now(), nil
		}
	}
}

// countOthers counts the processes in this PID namespace's /proc other than PID 1 and
// ourselves: living or zombie, they are what the init has not reaped yet.
func countOthers(self int) (int, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return 0, err
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(4096)
		for _, name := range names {
			if name[0] < '0' || name[0] > '9' {
				continue
			}
			pid, err := strconv.Atoi(name)
			if err == nil && pid != 1 && pid != self {
				n++
			}
		}
		if err != nil {
			break // io.EOF
		}
	}
	return n, nil
}

// cpuTime is the CPU time pid's threads have run, to the nanosecond (the first field of
// each /proc/PID/task/TID/schedstat), not its children's.
func cpuTime(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/schedstat")
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("CPU time of pid %d: no schedstat (gone, or a kernel without CONFIG_SCHEDSTATS)", pid)
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that ended since the glob
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, fmt.Errorf("CPU time: %s: empty", t)
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("CPU time: %s: %w", t, err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}
