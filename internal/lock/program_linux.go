package lock

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
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
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, pgrp, ok := procGroup(pid); ok && pgrp == pgid && state != "Z" && state != "X" {
			return true
		}
	}
	return false
}

// procGroup reads the state (field 3) and process group (field 5) of /proc/PID/stat,
// counting from the last ')' since the command name may hold spaces and parentheses.
func procGroup(pid int) (state string, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 {
		return "", 0, false
	}
	pgrp, err = strconv.Atoi(string(f[2]))
	return string(f[0]), pgrp, err == nil
}
