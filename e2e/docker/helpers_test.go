package docker

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proctest"
)

// Helper programs, selected by SVINIT_E2E_HELPER, run inside the containers. They talk on
// stdout (docker logs) and, for what the host must time, in files on a bind mount.
var helpers = proctest.Helpers{
	"exit":         proctest.Exit,
	"sleep":        helperSleep,
	"ignore-term":  helperIgnoreTerm,
	"record":       helperRecord,
	"tty":          helperTTY,
	"stamp":        helperStamp,
	"files":        helperFiles,
	"orphans":      helperOrphans,
	"spawner":      helperSpawner,
	"parent":       helperParent,
	"intermediate": helperIntermediate,
}

// helperSleep says "ready" and waits, every signal at its default action.
func helperSleep([]string) int {
	fmt.Println("ready")
	return proctest.Block()
}

// helperIgnoreTerm ignores SIGTERM, as a stuck server would, says "ready" and waits.
func helperIgnoreTerm([]string) int {
	signal.Ignore(unix.SIGTERM)
	fmt.Println("ready")
	return proctest.Block()
}

// helperRecord says "ready", then prints "got SIGNAME" for every signal it receives and
// exits 0 after SIGTERM. Run it with GODEBUG=asyncpreemptoff=1 (the runtime's SIGURGs).
func helperRecord([]string) int {
	ch := make(chan os.Signal, 64)
	signal.Notify(ch, unix.SIGUSR1, unix.SIGUSR2, unix.SIGHUP, unix.SIGTERM, unix.SIGINT, unix.SIGWINCH)
	fmt.Println("ready")
	for s := range ch {
		fmt.Println("got", unix.SignalName(s.(unix.Signal)))
		if s == unix.SIGTERM {
			return 0
		}
	}
	return 0
}

// helperTTY says whether it is the terminal's foreground process group (what job control
// and Ctrl-C need) and waits, SIGINT at its default action.
func helperTTY([]string) int {
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	fmt.Printf("ready foreground=%v\n", err == nil && fg == unix.Getpgrp())
	return proctest.Block()
}

// helperStamp records "$NAME start <unix ns>" in $REC, says "ready" and waits; at SIGTERM
// it records "$NAME term <unix ns>" and exits 0. The host reads the times of a handoff.
func helperStamp([]string) int {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGTERM)
	stamp("start")
	fmt.Println("ready")
	<-ch
	stamp("term")
	return 0
}

func stamp(event string) {
	proctest.AppendLine(os.Getenv("REC"), fmt.Sprintf("%s %s %d", os.Getenv("NAME"), event, time.Now().UnixNano()))
}

// helperFiles prints who it runs as, whether / is writable, whether the lock $LOCK is
// there, and the files given as arguments.
func helperFiles(args []string) int {
	fmt.Printf("uid=%d gid=%d\n", os.Getuid(), os.Getgid())
	err := os.WriteFile("/probe", nil, 0o644)
	fmt.Printf("write /: %v\n", errno(err))
	_, err = os.Stat(os.Getenv("LOCK"))
	fmt.Printf("lock: %v\n", errno(err))
	for _, path := range args {
		b, err := os.ReadFile(path)
		fmt.Printf("%s: %q %v\n", path, b, errno(err))
	}
	return 0
}

// errno names the error number of err, "ok" for nil.
func errno(err error) string {
	var e syscall.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &e):
		return unix.ErrnoName(e)
	default:
		return err.Error()
	}
}

// helperOrphans has a spawner leave $ORPHANS processes behind, orphaned to PID 1, says
// "spawned" once the spawner is gone, and waits.
func helperOrphans([]string) int { return runThenWait("spawner", "spawned", 103) }

// runThenWait runs the helper mode (named mode in its command line) to its end, says done
// and waits; it exits failed if the helper failed.
func runThenWait(mode, done string, failed int) int {
	cmd := self(mode, mode)
	cmd.Stdout = os.Stdout
	if err := cmd.Run(); err != nil {
		fmt.Println(mode+":", err)
		return failed
	}
	fmt.Println(done)
	return proctest.Block()
}

// helperSpawner starts $ORPHANS short-lived processes, never waits for them, and exits.
func helperSpawner([]string) int {
	n, _ := strconv.Atoi(os.Getenv("ORPHANS"))
	for i := 0; i < n; i++ {
		if _, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{}); err != nil {
			fmt.Println("fork:", err)
			return 105
		}
	}
	return 0
}

// helperParent runs an intermediate process that starts a daemon and exits, as a
// double-forking server does; it says "daemonized" and waits.
func helperParent([]string) int { return runThenWait("intermediate", "daemonized", 106) }

// helperIntermediate starts the daemon (in a session of its own, "svinit-e2e-daemon" in
// its command line), waits until it runs, and exits: the daemon is orphaned to PID 1.
func helperIntermediate([]string) int {
	cmd := self("sleep", "svinit-e2e-daemon")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		fmt.Println("daemon:", err)
		return 107
	}
	buf := make([]byte, len("ready"))
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "ready" {
		return 108
	}
	return 0
}

// self is the test binary as helper mode, with args (shown in its command line).
func self(mode string, args ...string) *exec.Cmd {
	cmd := exec.Command(proctest.SelfPath(), args...)
	cmd.Env = append(proctest.WithoutEnv(os.Environ(), helperEnv), helperEnv+"="+mode)
	cmd.Stderr = os.Stderr
	return cmd
}
