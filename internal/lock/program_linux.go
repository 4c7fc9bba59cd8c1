package lock

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proc"
)

// pidNamespace identifies this process's PID namespace ("pid:[4026531836]"): process group
// numbers mean the same to two processes only when these are equal (and so are their boot
// IDs). Empty when /proc does not show this process's own namespace.
func pidNamespace() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return ns
}

// groupRuns reports whether a process of process group pgid is still running. kill(-pgid, 0)
// answers for the whole group at once, zombies included; a zombie holds nothing, and one
// whose parent never reaps it must not hold the lock for ever, so a "yes" is checked
// against /proc when /proc is this namespace's.
func groupRuns(pgid int) bool {
	if pgid <= 1 { // 0 and 1 are not groups a program can have; -1 would mean everyone
		return false
	}
	if err := unix.Kill(-pgid, 0); err == unix.ESRCH {
		return false
	}
	if self, err := os.Readlink("/proc/self"); err != nil || self != strconv.Itoa(os.Getpid()) {
		return true
	}
	pids := proc.PIDs()
	if pids == nil {
		return true
	}
	for _, pid := range pids {
		if st, err := proc.ReadStat(pid); err == nil && st.PGRP == pgid && !st.Exited() {
			return true
		}
	}
	return false
}
