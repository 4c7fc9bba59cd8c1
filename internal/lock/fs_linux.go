package lock

import (
	"errors"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// fileID names an inode. Comparing the ID of an open descriptor with the ID the path resolves
// to now is how every step here makes sure it acts on the file it judged, not on a successor.
type fileID struct {
	dev uint64
	ino uint64
}

func statID(st *unix.Stat_t) fileID { return fileID{dev: st.Dev, ino: st.Ino} }

// lockFileMode lets a contender running as another user read the owner record; the record
// holds nothing secret.
const lockFileMode = 0o644

// createExclusive is the atomic take: it fails with EEXIST when anything, a symlink included,
// is already at path. The descriptor is write-only and svinit's alone, for the record and
// the heartbeat; its close is the IN_CLOSE_WRITE that wakes waiters when svinit dies.
func createExclusive(path string) (int, error) {
	fd, err := openRetrying(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, lockFileMode)
	if err != nil {
		return -1, &os.PathError{Op: "create", Path: path, Err: err}
	}
	return fd, nil
}

// openForInspection opens an existing lock file read-only, so that its close never raises the
// IN_CLOSE_WRITE that other waiters take as "the holder went away". O_NONBLOCK keeps a FIFO
// planted at the path from hanging the open.
func openForInspection(path string) (int, error) {
	fd, err := openRetrying(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// openSameFile opens the file at path read-only and makes sure it is the inode id: errHeld
// when the path names another file now (or none), which is the case of a file removed and
// replaced since it was created or judged.
func openSameFile(path string, id fileID) (int, error) {
	fd, err := openForInspection(path)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) {
		return -1, errHeld
	}
	if err != nil {
		return -1, err
	}
	st, err := fstat(fd)
	if err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if statID(&st) != id {
		unix.Close(fd)
		return -1, errHeld
	}
	return fd, nil
}

// openRetrying retries an open interrupted by a signal, as package os does: the Go runtime
// preempts with SIGURG, and opens on NFS and FUSE can be interrupted.
func openRetrying(path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// ignoringEINTR retries a call interrupted by a signal.
func ignoringEINTR(call func() error) error {
	for {
		if err := call(); err != unix.EINTR {
			return err
		}
	}
}

// holdExclusive blocks until this descriptor holds the flock. The only others that can hold
// a flock on a freshly created lock file are contenders inspecting or removing it, for
// microseconds, so blocking here is bounded.
func holdExclusive(fd int) error {
	return ignoringEINTR(func() error { return unix.Flock(fd, unix.LOCK_EX) })
}

// tryExclusive takes the flock if nobody holds it, without waiting.
func tryExclusive(fd int) error { return flockNB(fd, unix.LOCK_EX) }

// tryShared probes the flock: it succeeds unless someone holds it exclusively, and several
// inspecting waiters never get in each other's way.
func tryShared(fd int) error { return flockNB(fd, unix.LOCK_SH) }

func flockNB(fd, how int) error {
	return ignoringEINTR(func() error { return unix.Flock(fd, how|unix.LOCK_NB) })
}

// isLockHeld reports a flock refused because someone else holds it.
func isLockHeld(err error) bool { return errors.Is(err, unix.EWOULDBLOCK) }

// flockUnsupported reports a file system that has no flock at all (some FUSE and NFS mounts
// without a lock manager). The heartbeat alone then tells a live holder from a dead one.
func flockUnsupported(err error) bool {
	return errors.Is(err, unix.ENOLCK) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)
}

// writeAt writes all of data at offset off.
func writeAt(fd int, data []byte, off int64) error {
	for len(data) > 0 {
		n, err := unix.Pwrite(fd, data, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		data, off = data[n:], off+int64(n)
	}
	return nil
}

// readUpTo reads at most limit bytes from the start of the file.
func readUpTo(fd int, limit int) ([]byte, error) {
	buf := make([]byte, limit)
	n := 0
	for n < limit {
		m, err := unix.Pread(fd, buf[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], nil
}

func fsync(fd int) error {
	return ignoringEINTR(func() error { return unix.Fsync(fd) })
}

// fsyncDir makes the new directory entry durable, so that a node crash right after the take
// cannot bring back a directory without the lock file while the server already runs. File
// systems that cannot sync a directory say EINVAL; there is nothing more to do on those.
func fsyncDir(dir string) error {
	fd, err := openRetrying(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := fsync(fd); err != nil && err != unix.EINVAL {
		return &os.PathError{Op: "fsync", Path: dir, Err: err}
	}
	return nil
}

func fstat(fd int) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) })
	return st, err
}

// lstatID is the inode the path names right now, without following a symlink.
func lstatID(path string) (fileID, error) {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Lstat(path, &st) }); err != nil {
		return fileID{}, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return statID(&st), nil
}

func mtimeOf(st *unix.Stat_t) time.Time { return time.Unix(st.Mtim.Unix()) }

func isRegular(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFREG }

// touchNow sets the file's times to now through the descriptor (utimensat with a NULL path),
// so a heartbeat never touches a file that replaced ours at the path. On NFS "now" is the
// server's clock.
func touchNow(fd int) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, 0, 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

func unlink(path string) error {
	if err := ignoringEINTR(func() error { return unix.Unlink(path) }); err != nil {
		return &os.PathError{Op: "remove", Path: path, Err: err}
	}
	return nil
}

// writableDir checks with the effective IDs, which are the ones the create will use.
func writableDir(dir string) error {
	return unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS)
}

// bootID identifies the running kernel. Two processes with the same boot ID share one flock
// table, so a free flock proves the holder dead; across nodes only the heartbeat can tell.
func bootID() string {
	f, err := os.Open("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
