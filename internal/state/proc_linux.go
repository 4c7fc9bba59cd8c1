package state

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/svinit/svinit/internal/proc"
)

// runsSvinit tells whether pid runs an svinit: the same executable as this process (what
// holds for `docker exec C svinit stop`, and for a test binary playing svinit), or, when
// that cannot be known (an upgraded binary, another copy, /proc/PID/exe not readable by
// this user), a command name of svinit's.
func runsSvinit(pid int) error {
	if proc.SameExecutable(pid) {
		return nil
	}
	comm := readComm("/proc/" + strconv.Itoa(pid))
	if comm != "" && (comm == "svinit" || comm == readComm("/proc/self")) {
		return nil
	}
	return fmt.Errorf("%w: it names pid %d, which is not svinit (it runs %q)", ErrUntrusted, pid, comm)
}

func readComm(dir string) string {
	b, _ := os.ReadFile(dir + "/comm")
	return strings.TrimSuffix(string(b), "\n")
}
