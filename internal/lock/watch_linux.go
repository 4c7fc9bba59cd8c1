package lock

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// watchMask wakes a waiter when the lock file may have become free:
//   - IN_DELETE, IN_MOVED_FROM: the holder released it (or someone removed it);
//   - IN_MOVED_TO: a file was renamed onto the name, judge it afresh;
//   - IN_CLOSE_WRITE: the holder's write descriptor was closed, which is how a SIGKILLed
//     holder shows up (the kernel closes its files); waiters open read-only so they never
//     raise it.
//
// IN_CLOSE_NOWRITE is left out although the flock's own description is read-only: every
// waiter's inspection raises it. When the program outlives its killed svinit, the last close
// of that description (the program's end) raises no watched event: the quick checks after
// svinit's own close, and then the recheck every second, find the flock free.
// IN_ATTRIB is left out on purpose: every heartbeat raises it, and waking every waiter each
// heartbeat for nothing is what a timer does better. The *_SELF events end the watch (the
// directory went away), after which the waiter polls.
const watchMask = unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_CLOSE_WRITE |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// dirWatch reports inotify events for one name in one directory. The descriptor is
// non-blocking and owned by an *os.File, so the runtime poller serves the read and Close
// interrupts it at once.
type dirWatch struct {
	f     *os.File
	wake  chan struct{} // capacity 1: a burst of events is one wake-up
	ended chan struct{} // closed when the reader stops, whether by close or by the watch ending
}

func watchDir(dir, name string) (*dirWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, watchMask); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify_add_watch %s: %w", dir, err)
	}
	w := &dirWatch{
		f:     os.NewFile(uintptr(fd), "inotify "+dir),
		wake:  make(chan struct{}, 1),
		ended: make(chan struct{}),
	}
	go w.read(name)
	return w, nil
}

func (w *dirWatch) read(name string) {
	defer close(w.ended)
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return // closed by the waiter, or the watch is unusable: the waiter polls
		}
		relevant, over := scanEvents(buf[:n], name)
		if relevant || over {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
		if over {
			return
		}
	}
}

// scanEvents reports whether the batch concerns name (or may have: a queue overflow), and
// whether the watch is over (the directory was deleted, moved or unmounted).
func scanEvents(buf []byte, name string) (relevant, over bool) {
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		mask := binary.NativeEndian.Uint32(buf[off+4:])
		nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
		start := off + unix.SizeofInotifyEvent
		end := min(start+nameLen, len(buf))
		evName := string(bytes.TrimRight(buf[start:end], "\x00"))
		off = end
		switch {
		case mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_UNMOUNT) != 0:
			over = true
		case mask&unix.IN_Q_OVERFLOW != 0 || evName == name:
			relevant = true
		}
	}
	return relevant, over
}

// close stops the reader and waits for it, so nothing of the watch outlives the wait.
func (w *dirWatch) close() {
	w.f.Close()
	<-w.ended
}
