package render

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// watchMask is every change of a watched directory's entries or of a watched file. One mask
// for all: inotify keeps one watch per inode, and a path may be watched as both.
const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_CLOSE_WRITE | unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

// WatchOptions say how a Watch reports changes.
type WatchOptions struct {
	// Debounce is how quiet the sources must stay after a change before Changed is called:
	// a ConfigMap update is a burst of operations, and is one change.
	Debounce time.Duration
	// Stop, once closed, ends the watch; Changed is not called after.
	Stop <-chan struct{}
	// Changed is called from the watch's goroutine, one call at a time, after the watches
	// were set again, so that a change during the call is seen.
	Changed func()
	// CheckFirst calls Changed once at the start, for a change made before the watch began.
	CheckFirst bool
	Log        zerolog.Logger
}

// Watcher follows the sources of the templates with inotify: each SRC, every directory and
// file under a directory SRC, and SRC's own directory, which sees a ConfigMap volume's
// ..data swap and a SRC removed or created again. The watches are set again after every
// change, because a swap replaces the very inodes watched.
type Watcher struct {
	specs []Spec
	opts  WatchOptions
	f     *os.File // the inotify descriptor, in the runtime's poller: Close ends a Read
	rc    syscall.RawConn
	// wds are the watches set, by descriptor: only the goroutine touches them once started.
	wds       map[int32]watched
	full      bool // the watch limit was reached, said once
	quit      chan struct{}
	closeOnce sync.Once
	done      chan struct{}
}

// watched is one inotify watch: names, when not nil, are the entries whose events count
// (SRC in its directory); nil counts them all.
type watched struct {
	path  string
	names map[string]bool
}

// Watch sets the watches and starts the goroutine that calls opts.Changed; Close or
// opts.Stop end it.
func Watch(specs []Spec, opts WatchOptions) (*Watcher, error) {
	w, err := newWatcher(specs, opts)
	if err != nil {
		return nil, err
	}
	go w.closeOnStop()
	go w.run()
	return w, nil
}

// newWatcher sets the watches; nothing reads them yet.
func newWatcher(specs []Spec, opts WatchOptions) (*Watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("template watch: inotify: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("template watch: inotify is not pollable: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("template watch: %w", err)
	}
	w := &Watcher{specs: specs, opts: opts, f: f, rc: rc, wds: map[int32]watched{}, quit: make(chan struct{}), done: make(chan struct{})}
	w.arm()
	return w, nil
}

// Done is closed once the watch's goroutine has returned.
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Close ends the watch without waiting: a Changed call under way runs to its end, and Done
// is closed after it.
func (w *Watcher) Close() { w.closeOnce.Do(func() { close(w.quit) }) }

// closeOnStop closes the descriptor, which ends a blocked Read at once.
func (w *Watcher) closeOnStop() {
	select {
	case <-w.opts.Stop:
	case <-w.quit:
	}
	w.f.Close()
}

func (w *Watcher) stopped() bool {
	select {
	case <-w.opts.Stop:
		return true
	case <-w.quit:
		return true
	default:
		return false
	}
}

// run reads events until the descriptor is closed. The debounce is the read deadline: no
// timer, no polling.
func (w *Watcher) run() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	var first, due time.Time
	if w.opts.CheckFirst {
		first, due = time.Now(), time.Now()
	}
	maxDelay := 10 * w.opts.Debounce // a source that never stays quiet is still rendered
	for {
		w.f.SetReadDeadline(due)
		n, err := w.f.Read(buf)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			first, due = time.Time{}, time.Time{}
			w.arm()
			if w.stopped() {
				return
			}
			w.opts.Changed()
			continue
		case err != nil:
			if !errors.Is(err, os.ErrClosed) {
				w.opts.Log.Error().Err(err).Msg("template watch failed: changes of the templates are no longer rendered")
			}
			return
		}
		if w.relevant(buf[:n]) {
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			due = now.Add(w.opts.Debounce)
			if limit := first.Add(maxDelay); due.After(limit) {
				due = limit
			}
		}
	}
}

// relevant reads a batch of events and reports whether any is a change of a source.
func (w *Watcher) relevant(b []byte) bool {
	changed := false
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			break
		}
		name := strings.TrimRight(string(b[unix.SizeofInotifyEvent:end]), "\x00")
		b = b[end:]
		if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
			changed = true // events were lost: render to be sure
			continue
		}
		wt, ok := w.wds[ev.Wd]
		if !ok {
			continue // a watch removed by arm
		}
		if ev.Mask&unix.IN_IGNORED != 0 {
			delete(w.wds, ev.Wd) // its inode is gone: set the watches again
			changed = true
			continue
		}
		if wt.names == nil || name == "" || wt.names[name] {
			changed = true
		}
	}
	return changed
}

// arm sets a watch on every path the templates are read from, and removes those no longer
// wanted.
func (w *Watcher) arm() {
	want := map[int32]watched{}
	add := func(path string, names map[string]bool) bool {
		var wd int
		var err error
		ctlErr := w.rc.Control(func(fd uintptr) {
			wd, err = unix.InotifyAddWatch(int(fd), path, watchMask)
		})
		switch {
		case ctlErr != nil: // closed by the stop
			return false
		case errors.Is(err, unix.ENOSPC) && !w.full:
			w.full = true
			w.opts.Log.Warn().Str("path", path).Msg("template watch: the inotify watch limit is reached (fs.inotify.max_user_watches); some changes will not be seen")
			return false
		case err != nil:
			return false
		}
		prev, seen := want[int32(wd)]
		switch {
		case !seen:
			want[int32(wd)] = watched{path: path, names: names}
		case prev.names != nil && names == nil:
			want[int32(wd)] = watched{path: path}
		case prev.names != nil:
			for n := range names {
				prev.names[n] = true
			}
		}
		return true
	}
	for _, spec := range w.specs {
		src := filepath.Clean(spec.Src)
		// SRC's directory, or the nearest one that exists: SRC replaced, removed or created
		// again, and for a key of a ConfigMap volume its ..data swap. Only those entries
		// count, so that a DST beside SRC is no change.
		for child, dir := src, filepath.Dir(src); ; child, dir = dir, filepath.Dir(dir) {
			names := map[string]bool{filepath.Base(child): true, "..data": true}
			if add(dir, names) || dir == "/" {
				break
			}
		}
		fi, err := os.Stat(src)
		if err != nil {
			continue
		}
		add(src, nil)
		if fi.IsDir() {
			w.addTree(src, []fs.FileInfo{fi}, add)
		}
	}
	for wd := range w.wds {
		if _, keep := want[wd]; !keep {
			w.rc.Control(func(fd uintptr) { unix.InotifyRmWatch(int(fd), uint32(wd)) })
		}
	}
	w.wds = want
}

// addTree watches what the render reads under dir: the same entries (.. ones skipped,
// symlinks followed, loops cut).
func (w *Watcher) addTree(dir string, ancestors []fs.FileInfo, add func(string, map[string]bool) bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		fi, err := os.Stat(path)
		if err != nil {
			continue
		}
		switch {
		case fi.IsDir() && !loops(fi, ancestors):
			add(path, nil)
			w.addTree(path, append(ancestors[:len(ancestors):len(ancestors)], fi), add)
		case fi.Mode().IsRegular():
			// The file itself too: a file bind-mounted from elsewhere changes where its
			// directory here sees nothing.
			add(path, nil)
		}
	}
}
