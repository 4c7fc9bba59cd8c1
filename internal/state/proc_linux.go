package state

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// runsSvinit tells whether pid runs an svinit: the same executable as this process (what
// holds for `docker exec C svinit stop`, and for a test binary playing svinit), or, when
// that cannot be known (an upgraded binary, another copy, /proc/PID/exe not readable by
// this user), a command name of svinit's.
func runsSvinit(pid int) error {
	proc := "/proc/" + strconv.Itoa(pid)
	self, err1 := os.Stat("/proc/self/exe")
	exe, err2 := os.Stat(proc + "/exe")
	if err1 == nil && err2 == nil && os.SameFile(self, exe) {
		return nil
	}
	comm := readComm(proc)
	if comm != "" && (comm == "svinit" || comm == readComm("/proc/self")) {
		return nil
	}
	return fmt.Errorf("%w: it names pid %d, which is not svinit (it runs %q)", ErrUntrusted, pid, comm)
}

func readComm(proc string) string {
	b, _ := os.ReadFile(proc + "/comm")
	return strings.TrimSuffix(string(b), "\n")
}
