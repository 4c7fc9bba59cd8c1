package proc

import (
	"os"
	"strconv"
)

// PIDs lists the pids in /proc: every process of the PID namespace /proc was mounted for.
func PIDs() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// SameExecutable reports whether pid runs the very file this process runs. False when it
// cannot be known: pid is gone, or its /proc/PID/exe is not readable by this user.
func SameExecutable(pid int) bool {
	exe, err := os.Stat("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return false
	}
	self, err := os.Stat("/proc/self/exe")
	return err == nil && os.SameFile(exe, self)
}
