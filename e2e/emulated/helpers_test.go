package emulated

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proc"
	"github.com/svinit/svinit/internal/proctest"
)

// Helper programs, selected by SVINIT_E2E_HELPER, run natively below the emulated svinit.
// Paths they write come in the environment.
var helpers = proctest.Helpers{
	"exit":    proctest.Exit,
	"sleep":   helperSleep,
	"record":  helperRecord,
	"orphans": helperOrphans,
	"spawner": helperSpawner,
	"guarded": helperGuarded,
}

// helperSleep says "ready" in $REC and waits, every signal at its default action.
func helperSleep([]string) int {
	proctest.AppendLine(os.Getenv("REC"), "ready")
	return proctest.Block()
}

// recorded are the signals helperRecord writes down.
var recorded = []os.Signal{unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGTERM}

// helperRecord says "ready" in $REC, then writes the name of each signal in recorded that it
// receives; at SIGTERM it dies of it, as a program with the default action would.
func helperRecord([]string) int {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, recorded...)
	rec := os.Getenv("REC")
	proctest.AppendLine(rec, "ready")
	for s := range ch {
		proctest.AppendLine(rec, unix.SignalName(s.(unix.Signal)))
		if s == unix.SIGTERM {
			signal.Reset(unix.SIGTERM) // the runtime then dies of it: 128+15 for the parent
			unix.Kill(os.Getpid(), unix.SIGTERM)
		}
	}
	return proctest.Block()
}

// helperOrphans has a spawner make $ORPHANS processes that it leaves behind, reparented to
// svinit, PID 1 here. It then watches this PID namespace's /proc until every one of them is
// gone (reaped: none is this process's child) and no zombie is left anywhere in the
// namespace, records "reaped N, zombies 0" in $REC and waits. It gives up after $LIMIT,
// recording what it still sees.
func helperOrphans([]string) int {
	rec, pidsFile := os.Getenv("REC"), os.Getenv("PIDS")
	cmd := exec.Command(proctest.SelfPath())
	cmd.Env = append(proctest.WithoutEnv(os.Environ(), helperEnv), helperEnv+"=spawner")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		proctest.AppendLine(rec, "spawner: "+err.Error())
		return 1
	}
	b, _ := os.ReadFile(pidsFile)
	orphans := strings.Fields(string(b))
	limit, _ := time.ParseDuration(os.Getenv("LIMIT"))
	deadline := time.Now().Add(limit)
	for {
		left, zombies := present(orphans), namespaceZombies()
		if len(left) == 0 && zombies == 0 {
			proctest.AppendLine(rec, fmt.Sprintf("reaped %d, zombies 0", len(orphans)))
			return proctest.Block()
		}
		if time.Now().After(deadline) {
			proctest.AppendLine(rec, fmt.Sprintf("after %s: %d of %d orphans left, %d zombies", limit, len(left), len(orphans), zombies))
			return proctest.Block()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// present returns the pids of pids that /proc still shows, zombies included.
func present(pids []string) []string {
	var left []string
	for _, p := range pids {
		if _, err := os.Stat("/proc/" + p); err == nil {
			left = append(left, p)
		}
	}
	return left
}

// namespaceZombies counts the zombies of the PID namespace /proc was mounted for.
func namespaceZombies() int {
	n := 0
	for _, pid := range proc.PIDs() {
		if st, err := proc.ReadStat(pid); err == nil && st.State == "Z" {
			n++
		}
	}
	return n
}

// helperSpawner starts $ORPHANS short-lived processes (true), writes their pids to $PIDS and
// exits without waiting for them, orphaning them.
func helperSpawner([]string) int {
	n, _ := strconv.Atoi(os.Getenv("ORPHANS"))
	tru, err := exec.LookPath("true")
	if err != nil {
		return 104
	}
	pids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		pid, err := syscall.ForkExec(tru, []string{"true"}, &syscall.ProcAttr{})
		if err != nil {
			fmt.Fprintln(os.Stderr, "fork:", err)
			return 105
		}
		pids = append(pids, strconv.Itoa(pid))
	}
	if err := os.WriteFile(os.Getenv("PIDS"), []byte(strings.Join(pids, "\n")), 0o644); err != nil {
		return 106
	}
	return 0
}

// helperGuarded is a program that must never run twice at once: it holds an exclusive flock
// on $DATA for its whole life (the kernel drops it only when the process is gone), and
// records "overlap $NAME" when another run still holds it, else "ran $NAME", then waits.
func helperGuarded([]string) int {
	fd, err := unix.Open(os.Getenv("DATA"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return 111
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		proctest.AppendLine(os.Getenv("REC"), "overlap "+os.Getenv("NAME"))
		return 9
	}
	proctest.AppendLine(os.Getenv("REC"), "ran "+os.Getenv("NAME"))
	return proctest.Block()
}
