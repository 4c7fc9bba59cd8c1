package supervisor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/account"
	"github.com/svinit/svinit/internal/environ"
	"github.com/svinit/svinit/internal/exitcode"
)

// defaultPath is searched when PATH is unset, as Docker does for images without one.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// startError is a failure to start PROGRAM, with the exit code a shell would give it.
type startError struct {
	program string
	code    int
	err     error
}

func (e *startError) Error() string { return fmt.Sprintf("start %s: %v", e.program, e.err) }
func (e *startError) Unwrap() error { return e.err }

// spawn forks and execs argv in its own process group, handing it the terminal when svinit
// holds it. It never waits for the child: the reaper owns every exit. The child gets the
// signal mask svinit was started with and its original RLIMIT_NOFILE (the Go runtime keeps
// both for children), and the descriptors in fds (svinit's inherited ones and the lock's; -1
// is skipped) at their numbers.
// With user set, the child runs as that user, its supplementary groups set to the user's.
// The child gets SIGKILL when svinit dies, however it dies: call spawn through
// startOnOwnThread.
func spawn(argv, env []string, user *account.Account, fds []int) (int, error) {
	path, err := lookPath(argv[0], env)
	if err != nil {
		return 0, err
	}
	// Go sets the parent-death signal after the credential change, which would clear it,
	// and kills the child itself if svinit died before that.
	sys := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if user != nil {
		sys.Credential = &syscall.Credential{Uid: user.UID, Gid: user.GID, Groups: user.Groups}
	}
	if ownsTerminal() {
		// The child's group becomes the foreground group of the terminal on fd 0, so
		// Ctrl-C and job control reach it rather than svinit.
		sys.Foreground, sys.Ctty = true, 0
	}
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Env:   env,
		Files: childFiles(fds),
		Sys:   sys,
	})
	if err != nil {
		return 0, &startError{program: argv[0], code: execFailureCode(err), err: err}
	}
	return pid, nil
}

// startOnOwnThread runs start, which forks the child, on an OS thread kept for it until
// release is called, once the child has been reaped. Linux sends the parent-death signal
// when the thread that forked the child ends, not the process (golang/go#27505); the Go
// runtime ends threads, and it ends this one only when its goroutine returns, since the
// goroutine never unlocks it.
func startOnOwnThread(start func() (int, error)) (pid int, release func(), err error) {
	type started struct {
		pid int
		err error
	}
	result, done := make(chan started, 1), make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		pid, err := start()
		result <- started{pid, err}
		<-done
	}()
	r := <-result
	return r.pid, sync.OnceFunc(func() { close(done) }), r.err
}

// lookPath finds program as execvp would: names with a slash are used as given, others are
// searched in PATH. Like a shell, it tells "not found" (127) from "found but cannot be
// executed" (126).
func lookPath(program string, env []string) (string, error) {
	if strings.Contains(program, "/") {
		return program, nil
	}
	search, ok := environ.Lookup(env, "PATH")
	if !ok {
		search = defaultPath
	}
	var denied error
	for _, dir := range filepath.SplitList(search) {
		if dir == "" {
			dir = "."
		}
		candidate := filepath.Join(dir, program)
		fi, err := os.Stat(candidate)
		if err != nil || fi.IsDir() {
			continue
		}
		if err := unix.Access(candidate, unix.X_OK); err != nil {
			if denied == nil {
				denied = &startError{program: program, code: exitcode.NotExecutable, err: fmt.Errorf("%s: %w", candidate, err)}
			}
			continue
		}
		return candidate, nil
	}
	if denied != nil {
		return "", denied
	}
	return "", &startError{program: program, code: exitcode.NotFound, err: fmt.Errorf("not found in PATH %q", search)}
}

func execFailureCode(err error) int {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return exitcode.NotFound
	}
	return exitcode.NotExecutable
}

// ownsTerminal reports whether fd 0 is a terminal whose foreground process group is
// svinit's own: only then may svinit hand it to the child (not from a background job).
func ownsTerminal() bool {
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	return err == nil && fg == unix.Getpgrp()
}

// checkProgram finds program before anything is taken, as spawn will, and checks that the
// child may execute it: with user set, with that user's rights (root's would pass a program
// only root may run). What only exec can tell (a missing interpreter) is left to spawn.
func checkProgram(program string, env []string, user *account.Account) error {
	path, err := lookPath(program, env)
	if err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return &startError{program: program, code: execFailureCode(err), err: err}
	}
	cannot := func(why string) error {
		return &startError{program: program, code: exitcode.NotExecutable, err: fmt.Errorf("%s: %s", path, why)}
	}
	if fi.IsDir() {
		return cannot("is a directory")
	}
	if !fi.Mode().IsRegular() {
		return cannot("not a regular file")
	}
	if user == nil || user.UID == 0 {
		if err := unix.Access(path, unix.X_OK); err != nil {
			return cannot(err.Error())
		}
		return nil
	}
	// Every directory on the way, as given and after each symlink, must let the user in.
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return &startError{program: program, code: execFailureCode(err), err: err}
	}
	given, _ := filepath.Abs(path)
	real, _ = filepath.Abs(real)
	for _, p := range []string{given, real} {
		for dir := filepath.Dir(p); ; dir = filepath.Dir(dir) {
			if di, err := os.Stat(dir); err == nil && !permits(dir, di, user, 1) {
				return cannot(fmt.Sprintf("uid %d cannot enter %s (--user)", user.UID, dir))
			}
			if dir == "/" {
				break
			}
		}
	}
	if !permits(real, fi, user, 1) {
		return cannot(fmt.Sprintf("uid %d may not execute it (--user): chmod it, or chown it to that user", user.UID))
	}
	if isScript(path) && !permits(real, fi, user, 4) {
		return cannot(fmt.Sprintf("uid %d may not read the script (--user): chmod it, or chown it to that user", user.UID))
	}
	return nil
}

// permits reports whether user has the permission bits (4 read, 1 execute) on fi, by its
// owner, group and other bits, as the kernel decides for a process that is not root. A
// file with an access ACL is given the benefit of the doubt: the kernel decides at exec.
func permits(path string, fi os.FileInfo, user *account.Account, bits uint32) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || hasACL(path) {
		return true
	}
	perm := uint32(fi.Mode().Perm())
	switch {
	case st.Uid == user.UID:
		perm >>= 6
	case st.Gid == user.GID || slices.Contains(user.Groups, st.Gid):
		perm >>= 3
	}
	return perm&bits == bits
}

// hasACL reports whether path carries an access ACL (POSIX, or NFSv4 on an NFS mount),
// which may grant what its mode bits do not.
func hasACL(path string) bool {
	for _, name := range []string{"system.posix_acl_access", "system.nfs4_acl"} {
		if _, err := unix.Getxattr(path, name, nil); err == nil {
			return true
		}
	}
	return false
}

// isScript reports whether the file at path starts with "#!": its interpreter must read it.
func isScript(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [2]byte
	n, _ := f.Read(magic[:])
	return n == 2 && string(magic[:]) == "#!"
}
