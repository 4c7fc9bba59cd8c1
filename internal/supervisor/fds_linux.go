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
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			fds = append(fds, fd)
		}
	}
	return fds
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
