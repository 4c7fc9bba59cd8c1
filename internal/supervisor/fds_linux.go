package supervisor

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// inheritedFDs lists the descriptors above stderr that svinit was started with. The child
// inherits them (systemd-style socket passing); svinit closes its own copies once the
// child runs, so that it never holds a pipe open or a mount busy on the child's behalf.
func inheritedFDs() []int {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil
	}
	var fds []int
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd <= 2 || fd == int(d.Fd()) {
			continue
		}
		if inheritable(fd) {
			fds = append(fds, fd)
		}
	}
	return fds
}

// inheritable reports an open descriptor without close-on-exec.
func inheritable(fd int) bool {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil && flags&unix.FD_CLOEXEC == 0
}

// childFiles is the child's descriptor table: stdio, the inherited descriptors at their
// numbers, and keep (none when -1) at its number, in the child only without close-on-exec.
// The other numbers below keep are closed in the child, as exec would close them.
func childFiles(keep int) []uintptr {
	files := []uintptr{0, 1, 2}
	for fd := 3; fd <= keep; fd++ {
		if fd == keep || inheritable(fd) {
			files = append(files, uintptr(fd))
		} else {
			files = append(files, ^uintptr(0))
		}
	}
	return files
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
