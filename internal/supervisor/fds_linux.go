package supervisor

import (
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// inheritedFDs lists the descriptors above stderr that svinit was started with, and makes
// them close-on-exec: the child gets them at their numbers (childFiles, systemd-style
// socket passing), and no other command svinit runs (the license commands) gets any.
// svinit closes its own copies once the child runs, so that it never holds a pipe open or
// a mount busy on the child's behalf.
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
			unix.CloseOnExec(fd)
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

// childFiles is the child's descriptor table: stdio, and each of keep (-1 is skipped) at its
// own number, where the child clears its close-on-exec. The other numbers below the highest
// kept are closed in the child, as exec would close them.
func childFiles(keep []int) []uintptr {
	files := []uintptr{0, 1, 2}
	top := slices.Max(append([]int{2}, keep...))
	for fd := 3; fd <= top; fd++ {
		if slices.Contains(keep, fd) {
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
