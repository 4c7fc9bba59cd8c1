// Package regfile opens the files that must be regular files (a secret, a journal, a state
// file), refusing by name a FIFO, device or directory in their place without blocking on it.
package regfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// ErrNotRegular is what Open's error wraps when path is not a regular file, a symlink not
// followed included.
var ErrNotRegular = errors.New("not a regular file")

// Open opens path for reading and refuses it, with an error wrapping ErrNotRegular that
// names what it is ("not a regular file (a named pipe)"), unless it is a regular file. That
// error leaves naming path, and the fix, to the caller. Opening does not block: O_NONBLOCK
// lets the open of a FIFO return so that it can be refused. Without followSymlinks a
// symlink at path is refused the same way, "(a symlink, which svinit does not follow)",
// for a path another user could plant a link at.
func Open(path string, followSymlinks bool) (*os.File, error) {
	// O_NOCTTY: a terminal planted at the path must not become svinit's controlling one.
	flag := os.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY // os.OpenFile adds O_CLOEXEC
	if !followSymlinks {
		flag |= unix.O_NOFOLLOW
	}
	f, err := os.OpenFile(path, flag, 0)
	if errors.Is(err, unix.ELOOP) && !followSymlinks {
		return nil, fmt.Errorf("%w (a symlink, which svinit does not follow)", ErrNotRegular)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%w (a %s)", ErrNotRegular, Kind(fi.Mode()))
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Kind names the type of a file mode for a message: "directory", "named pipe", "socket"...
func Kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}
