// Package proc reads what svinit needs to know of other processes from /proc: one line,
// /proc/PID/stat, parsed in one place.
package proc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Stat holds the fields of /proc/PID/stat that svinit uses.
type Stat struct {
	State      string // R, S, D, Z...
	PPID       int
	PGRP       int
	StartTicks uint64 // clock ticks since boot: tells the process from a later one with its pid
}

// Exited reports whether the process has ended (a zombie, or dead) and so holds nothing.
func (s Stat) Exited() bool { return s.State == "Z" || s.State == "X" }

// Frozen reports whether the process is stopped by a signal (SIGSTOP, SIGTSTP): alive, but
// doing nothing until it is continued. A tracer's stop ("t") is not counted: strace or gdb
// on a program being debugged must not make a probe restart it.
func (s Stat) Frozen() bool { return s.State == "T" }

// ReadStat reads /proc/PID/stat. A process that is gone gives an error wrapping
// fs.ErrNotExist (or ESRCH, when it went while being read).
func ReadStat(pid int) (Stat, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	b, err := os.ReadFile(path)
	if err != nil {
		return Stat{}, err
	}
	st, ok := parseStat(b)
	if !ok {
		return Stat{}, fmt.Errorf("%s: unexpected format %q", path, b)
	}
	return st, nil
}

// parseStat parses a /proc/PID/stat line. The command name (field 2, in parentheses) may
// hold spaces and parentheses, so fields are counted from its last ')'.
func parseStat(line []byte) (Stat, bool) {
	i := bytes.LastIndexByte(line, ')')
	if i < 0 {
		return Stat{}, false
	}
	f := bytes.Fields(line[i+1:]) // f[0] is field 3
	if len(f) < 20 {
		return Stat{}, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgrp, err2 := strconv.Atoi(string(f[2]))
	ticks, err3 := strconv.ParseUint(string(f[19]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Stat{}, false
	}
	return Stat{State: string(f[0]), PPID: ppid, PGRP: pgrp, StartTicks: ticks}, true
}
