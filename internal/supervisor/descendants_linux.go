package supervisor

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proc"
)

// stopWaiterGrace bounds how long svinit as PID 1 lets `svinit stop --wait` processes read
// "exited" before it exits, which kills them.
const stopWaiterGrace = time.Second

// signalDescendants sends sig to every process left below svinit, `svinit stop` waiters
// spared, and returns how many it signalled. As PID 1 that is every other process in the
// namespace; as a subreaper it is the tree below svinit, found through /proc.
func signalDescendants(sig unix.Signal) int {
	self := os.Getpid()
	var pids []int
	if self == 1 {
		pids = slices.DeleteFunc(proc.PIDs(), func(pid int) bool { return pid == self })
	} else {
		pids = descendants(self)
	}
	found := len(pids)
	pids = slices.DeleteFunc(pids, isStopWaiter)
	everyone := self == 1 && len(pids) == found // nobody to spare
	n := deliver(pids, everyone, sig)
	if sig == unix.SIGTERM {
		// A process frozen by SIGSTOP would sit on the SIGTERM until the SIGKILL: continue it.
		deliver(pids, everyone, unix.SIGCONT)
	}
	return n
}

// deliver sends sig to pids, or with everyone to every process but svinit, through kill(-1),
// which also reaches what forks while this runs; it returns how many were signalled.
func deliver(pids []int, everyone bool, sig unix.Signal) int {
	if everyone {
		if len(pids) == 0 || unix.Kill(-1, sig) != nil {
			return 0 // ESRCH: nobody left
		}
		return len(pids)
	}
	n := 0
	for _, pid := range pids {
		if unix.Kill(pid, sig) == nil {
			n++
		}
	}
	return n
}

// letStopWaitersSee gives `svinit stop --wait` processes in svinit's PID namespace (docker
// exec, a preStop hook) the time to read "exited" and return 0: as PID 1, svinit's exit
// ends them.
func letStopWaitersSee() {
	if os.Getpid() != 1 {
		return
	}
	deadline := time.Now().Add(stopWaiterGrace)
	for slices.ContainsFunc(proc.PIDs(), isStopWaiter) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// isStopWaiter says whether pid runs `svinit stop` from svinit's own binary. A zombie has
// no command line, so it is not one.
func isStopWaiter(pid int) bool {
	dir := "/proc/" + strconv.Itoa(pid)
	cmdline, err := os.ReadFile(dir + "/cmdline")
	args := bytes.Split(cmdline, []byte{0})
	if err != nil || len(args) < 2 || string(args[1]) != "stop" {
		return false
	}
	return proc.SameExecutable(pid)
}

// descendants lists the pids whose parent chain leads to root. A pid read here cannot be
// reused before svinit signals it while it is a zombie child of svinit's, since svinit is
// the one that would reap it.
func descendants(root int) []int {
	children := map[int][]int{}
	for _, pid := range proc.PIDs() {
		if st, err := proc.ReadStat(pid); err == nil {
			children[st.PPID] = append(children[st.PPID], pid)
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
