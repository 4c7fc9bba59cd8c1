// Package ptytest gives tests a pseudo-terminal to run a program on (Ctrl-C, job control)
// and a record of what the program printed there.
package ptytest

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/logbuf"
)

// Open opens a pseudo-terminal pair: master is the test's end (the keyboard and the
// screen), slave the terminal the program gets. Both are closed when the test ends.
func Open(t testing.TB) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

// Screen records everything written to the terminal of master, until it is closed or
// every slave descriptor is gone.
func Screen(master *os.File) *logbuf.Buffer {
	screen := new(logbuf.Buffer)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			screen.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	return screen
}

// OnTerminal makes slave the standard streams and the controlling terminal of cmd, started
// in a session of its own, as a terminal emulator starts a shell. The caller closes its
// copy of slave once cmd has started, so that the screen ends when cmd's side is gone.
func OnTerminal(cmd *exec.Cmd, slave *os.File) {
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
}
