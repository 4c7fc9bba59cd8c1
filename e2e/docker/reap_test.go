package docker

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proc"
	"github.com/svinit/svinit/internal/proctest"
)

func TestOrphanStormLeavesNoZombie(t *testing.T) {
	const n = 500
	c := newContainer(t)
	opts := append(helper("orphans"), "-e", "ORPHANS="+strconv.Itoa(n))
	c.start(opts, "--log-level", "debug", "--", helperPath)
	c.waitLog("spawned")
	poll(t, fmt.Sprintf("svinit to reap %d orphans", n), func() bool {
		return strings.Count(c.logs(), `"orphan reaped"`) == n
	})
	pid := c.hostPid()
	if z := zombies(pid); len(z) != 0 {
		t.Errorf("zombies under svinit (host pid %d): %v", pid, z)
	}
	mustDocker(t, "stop", c.name)
	if code := c.wait(); code != 143 {
		t.Errorf("exit code %d, want 143", code)
	}
}

// A child that double-forks a daemon: the daemon's parent exits, the daemon is orphaned to
// svinit, PID 1. docker top shows svinit, the child and the daemon, no exited parent; when
// the daemon exits too, svinit reaps it: docker top shows svinit and the child only.
func TestDaemonizingChild(t *testing.T) {
	c := newContainer(t)
	c.start(helper("parent"), "--", helperPath)
	c.waitLog("daemonized")
	pid := c.hostPid()
	procs := waitTop(t, c, pid, "svinit child daemon")
	t.Logf("docker top: %+v", procs)
	for _, p := range procs {
		if role(p, pid) == "daemon" {
			if err := unix.Kill(p.pid, unix.SIGTERM); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitTop(t, c, pid, "svinit child")
	mustDocker(t, "stop", c.name)
	if code := c.wait(); code != 143 {
		t.Errorf("exit code %d, want 143", code)
	}
}

// waitTop polls docker top until the roles of c's processes (svinit is host pid pid), in
// any order, are those in want, and returns the processes.
func waitTop(t *testing.T, c *container, pid int, want string) []process {
	t.Helper()
	wanted := strings.Fields(want)
	slices.Sort(wanted)
	var procs []process
	var got []string
	defer func() {
		if t.Failed() {
			t.Logf("docker top last showed %q: %+v", got, procs)
		}
	}()
	poll(t, "docker top to show "+want, func() bool {
		procs, got = top(t, c), nil
		for _, p := range procs {
			got = append(got, role(p, pid))
		}
		slices.Sort(got)
		return slices.Equal(got, wanted)
	})
	return procs
}

// role names a process of docker top: svinit (host pid pid), its child, the daemon it
// adopted, or a zombie or another process.
func role(p process, pid int) string {
	switch {
	case strings.HasPrefix(p.stat, "Z"):
		return "zombie:" + p.args
	case p.pid == pid && strings.HasPrefix(p.args, svinitPath):
		return "svinit"
	case p.ppid == pid && p.args == helperPath:
		return "child"
	case p.ppid == pid && p.args == helperPath+" svinit-e2e-daemon":
		return "daemon"
	}
	return "other:" + p.args
}

// process is one line of docker top.
type process struct {
	pid, ppid  int
	stat, args string
}

// top lists c's processes as docker top shows them (host pids).
func top(t *testing.T, c *container) []process {
	t.Helper()
	out := mustDocker(t, "top", c.name, "-eo", "pid,ppid,stat,args")
	var procs []process
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 {
			t.Fatalf("docker top: %q", line)
		}
		var p process
		p.pid, _ = strconv.Atoi(f[0])
		p.ppid, _ = strconv.Atoi(f[1])
		p.stat, p.args = f[2], strings.Join(f[3:], " ")
		procs = append(procs, p)
	}
	return procs
}

// zombies lists the zombies among pid's descendants, read from the host's /proc.
func zombies(pid int) []int {
	var found []int
	for _, k := range proctest.Children(pid) {
		if state(k) == "Z" {
			found = append(found, k)
		}
		found = append(found, zombies(k)...)
	}
	return found
}

// state returns the state letter of pid (R, S, Z...), "" if it is gone.
func state(pid int) string {
	st, _ := proc.ReadStat(pid)
	return st.State
}

func fileUID(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
