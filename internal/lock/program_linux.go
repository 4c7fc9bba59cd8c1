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

// procIsOurs reports whether /proc shows this process's PID namespace, so that /proc/PID
// names the process this process calls PID.
func procIsOurs() bool {
	self, err := os.Readlink("/proc/self")
	return err == nil && self == strconv.Itoa(os.Getpid())
}

// leaderStart is when the leader of group pgid (the process whose pid it is) started, in
// clock ticks since boot; 0 when /proc cannot tell.
func leaderStart(pgid int) uint64 {
	if !procIsOurs() {
		return 0
	}
	st, err := proc.ReadStat(pgid)
	if err != nil {
		return 0
	}
	return st.StartTicks
}

// groupRuns reports whether a process of the holder's program still runs: process group
// pgid, whose leader started at start (0 when not recorded).
//
// Group numbers are re-used, and so are PID namespace inodes, so the number alone is not
// the program. A process with the pid pgid and another start time proves the program's group
// ended (the kernel frees a number only once no process has it as its pid or its group) and
// the number went to an unrelated leader: not the program. With the recorded leader still
// there, or gone while members remain, the group counts: a number that members hold cannot
// have been freed. The one mistake left errs on the safe side: a re-used number whose new
// leader has exited too is counted until its members end. The waiter's own group is never
// the program's: a waiter started in a group that re-used the number would wait for itself.
//
// kill(-pgid, 0) answers for the whole group at once, zombies included; a zombie holds
// nothing, and one whose parent never reaps it must not hold the lock for ever, so a "yes"
// is checked against /proc when /proc is this namespace's.
func groupRuns(pgid int, start uint64) bool {
	if pgid <= 1 || pgid == unix.Getpgrp() { // 0 and 1 are not groups a program can have; -1 would mean everyone
		return false
	}
	if err := unix.Kill(-pgid, 0); err == unix.ESRCH {
		return false
	}
	if !procIsOurs() {
		return true
	}
	if leader, err := proc.ReadStat(pgid); err == nil && start != 0 && leader.StartTicks != start {
		return false
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
