package supervisor

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// signalDescendants sends sig to every process left below svinit and returns how many it
// signalled. As PID 1 that is every other process in the namespace, which kill(-1) reaches
// in one call; as a subreaper it is the tree below svinit, found through /proc.
func signalDescendants(sig unix.Signal) int {
	if os.Getpid() == 1 {
		if err := unix.Kill(-1, sig); err != nil {
			return 0 // ESRCH: nobody left
		}
		return -1 // unknown how many, but some
	}
	n := 0
	for _, pid := range descendants(os.Getpid()) {
		if unix.Kill(pid, sig) == nil {
			n++
		}
	}
	return n
}

// descendants lists the pids whose parent chain leads to root. A pid read here cannot be
// reused before svinit signals it while it is a zombie child of svinit's, since svinit is
// the one that would reap it.
func descendants(root int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(pid); ok {
			children[ppid] = append(children[ppid], pid)
		}
	}
	var out []int
	queue := children[root]
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		out = append(out, pid)
		queue = append(queue, children[pid]...)
	}
	return out
}

// parentOf reads the parent pid from /proc/PID/stat, whose second field (the command name
// in parentheses) may itself contain spaces and parentheses.
func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	fields := bytes.Fields(b[i+1:])
	if len(fields) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(string(fields[1]))
	return ppid, err == nil
}
