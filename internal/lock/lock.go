// Package lock hands a lock file over between generations of a pod that share a volume: the
// new svinit waits until the old one has released (or died), then takes the lock atomically.
package lock

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// Defaults for the caller's flags.
const (
	DefaultTimeout   = 60 * time.Second // what the SV Server's bash loop waited
	DefaultHeartbeat = 5 * time.Second
)

// MinHeartbeat is the shortest heartbeat: shorter, refreshing the lock would be most of
// the holder's work.
const MinHeartbeat = 10 * time.Millisecond

// staleBeats is how many heartbeats a holder may miss before its lock counts as stale.
const staleBeats = 3

// Policy says what Acquire does when the wait times out.
type Policy int

const (
	// Takeover removes a lock nobody provably holds (a foreign file) and takes it, as the
	// bash loop did. A holder that is provably alive (its flock held, or its heartbeat
	// fresh) is never broken: the wait goes on past the timeout until that holder lets go
	// or dies, which frees the lock at once.
	Takeover Policy = iota
	// Fail gives up: Acquire returns ErrTimeout.
	Fail
)

// ParsePolicy reads "takeover" or "fail".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "takeover":
		return Takeover, nil
	case "fail":
		return Fail, nil
	}
	return 0, fmt.Errorf("lock timeout policy %q: want takeover or fail", s)
}

func (p Policy) String() string {
	switch p {
	case Takeover:
		return "takeover"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ErrTimeout is returned (wrapped) by Acquire when the wait timed out and the policy is Fail.
var ErrTimeout = errors.New("timed out waiting for the lock")

// Options configures Acquire.
type Options struct {
	Path      string        // absolute path of the lock file
	Timeout   time.Duration // how long to respect a foreign or live holder; zero waits not at all
	OnTimeout Policy
	// Heartbeat is how often the holder refreshes the file's mtime (DefaultHeartbeat when
	// zero). Waiters that cannot rely on the flock treat a lock not refreshed for three
	// heartbeats as stale.
	Heartbeat time.Duration
	// Poll disables inotify: the waiter polls, for file systems whose other clients' changes
	// inotify does not see (NFS, some CSI drivers).
	Poll    bool
	Logger  zerolog.Logger
	Version string // svinit version, written into the owner record
}

func (o *Options) validate() error {
	var errs []error
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("lock %s: timeout %s is negative: use 0 to not wait", o.Path, o.Timeout))
	}
	switch {
	case o.Heartbeat == 0:
		o.Heartbeat = DefaultHeartbeat
	case o.Heartbeat < MinHeartbeat:
		errs = append(errs, fmt.Errorf("lock %s: heartbeat %s is too short: use %s or more", o.Path, o.Heartbeat, MinHeartbeat))
	}
	if o.OnTimeout != Takeover && o.OnTimeout != Fail {
		errs = append(errs, fmt.Errorf("lock %s: unknown timeout policy %s", o.Path, o.OnTimeout))
	}
	return combine(errs...)
}

// combine reports one problem as itself and several together.
func combine(errs ...error) error {
	var found []error
	for _, err := range errs {
		if err != nil {
			found = append(found, err)
		}
	}
	switch len(found) {
	case 0:
		return nil
	case 1:
		return found[0]
	}
	return multierror.Append(nil, found...)
}

// Acquire waits until it owns the lock at opts.Path. It gives up when the wait times out
// and the policy is Fail (ErrTimeout), when the path is unusable (ErrBadPath, also for a
// symlink planted during the wait), or when ctx is done: then it returns ctx's error
// wrapped, at once, having created nothing.
func Acquire(ctx context.Context, opts Options) (*Lock, error) {
	if err := combine(opts.validate(), Check(opts.Path)); err != nil {
		return nil, err
	}
	opts.Path = filepath.Clean(opts.Path)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lock %s: not taken: %w", opts.Path, err)
	}
	w := newWaiter(opts)
	return w.run(ctx)
}

// Lock is a held lock. It keeps the file's flock and refreshes its mtime until Release.
type Lock struct {
	path string
	fd   int // read-only: holds the flock, and is handed to the program
	wfd  int // write-only, svinit's alone: the record and the heartbeat
	id   fileID
	rec  Record
	log  zerolog.Logger

	stop chan struct{}
	done chan struct{}

	watch     *dirWatch // the wait's directory watch, until DropWatch; nil when polling
	dropWatch sync.Once

	once sync.Once
	err  error
}

func newLock(path string, fd, wfd int, id fileID, rec Record, log zerolog.Logger) *Lock {
	l := &Lock{path: path, fd: fd, wfd: wfd, id: id, rec: rec, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go l.heartbeat()
	return l
}

// Owner is the record this instance wrote into the lock file.
func (l *Lock) Owner() Record { return l.rec }

// FD is the read-only descriptor that holds the flock, or -1 without a lock. Hand it to the
// program (without close-on-exec, in the program only): the flock belongs to the open file
// description, so the kernel keeps the lock held until the last process holding a copy has
// exited, whatever killed svinit. It stays close-on-exec here, so that no other command
// svinit runs holds the lock. Being read-only, it lets the program change nothing in the
// record; the program can still LOCK_UN it, which frees the flock for everyone holding it,
// and then only the group in the record (ProgramStarted) keeps waiters off.
func (l *Lock) FD() int {
	if l == nil {
		return -1
	}
	return l.fd
}

// ProgramStarted adds the program's process group and its leader's start time to the owner
// record, for a program that closes the descriptor it inherited: a waiter in the same PID
// namespace then counts the lock held while any process of that group runs. Call it before
// the leader (the program, pgid its pid) is reaped. No fsync: the group means nothing after
// a reboot.
func (l *Lock) ProgramStarted(pgid int) error {
	if l == nil {
		return nil
	}
	rec := l.rec
	rec.Group, rec.GroupStart = pgid, leaderStart(pgid)
	data, err := encodeRecord(rec)
	if err != nil {
		return err
	}
	// The group comes last in the record, so the new record only lengthens the old one and
	// is written over it in one call.
	if err := writeAt(l.wfd, data, 0); err != nil {
		return fmt.Errorf("lock %s: record the program's group: %w", l.path, err)
	}
	return nil
}

// DropWatch closes the directory watch the wait used, in the background. Call it once the
// child has started: closing an inotify descriptor waits for a kernel grace period (5-20 ms
// here), and a close while the child is being spawned held the child's start back by that
// much. Release drops the watch too.
func (l *Lock) DropWatch() {
	if l == nil {
		return
	}
	l.dropWatch.Do(func() {
		if l.watch != nil {
			go l.watch.close()
		}
	})
}

// Release stops the heartbeat, removes the file if it still carries this instance's id (a
// slow old pod never deletes its successor's lock) and closes it, dropping the flock.
// It is safe to call more than once, and on a nil *Lock.
func (l *Lock) Release() error {
	if l == nil {
		return nil
	}
	l.once.Do(func() { l.err = l.release() })
	return l.err
}

func (l *Lock) release() error {
	l.DropWatch()
	close(l.stop)
	<-l.done
	var errs []error
	// The file is removed before the descriptor is closed, so that no waiter ever sees our
	// record with a free flock and mistakes a clean release for a crash.
	switch cur, err := readOwner(l.path); {
	case errors.Is(err, unix.ENOENT):
		l.log.Warn().Msg("lock file was already removed by someone else")
	case err != nil:
		errs = append(errs, fmt.Errorf("lock %s: not removed: %w", l.path, err))
	case cur.id != l.id || !cur.valid || cur.rec.Instance != l.rec.Instance:
		l.log.Warn().Str("holder_instance", cur.rec.Instance).Str("holder_host", cur.rec.Hostname).
			Msg("lock file now belongs to another holder; leaving it in place")
	default:
		if err := unlink(l.path); err != nil {
			errs = append(errs, fmt.Errorf("lock %s: %w", l.path, unwrapPathError(err)))
		}
	}
	for _, fd := range []int{l.wfd, l.fd} {
		if err := unix.Close(fd); err != nil {
			errs = append(errs, fmt.Errorf("lock %s: close: %w", l.path, err))
		}
	}
	l.log.Info().Dur("held_ms", time.Since(l.rec.Started)).Msg("lock released")
	return combine(errs...)
}

// heartbeat refreshes the mtime for waiters that cannot see our flock, and notices when the
// file at the path is no longer ours.
func (l *Lock) heartbeat() {
	defer close(l.done)
	t := time.NewTicker(l.rec.Heartbeat)
	defer t.Stop()
	var touchFailed, lost bool
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if err := touchNow(l.wfd); err != nil && !touchFailed {
			touchFailed = true
			l.log.Warn().Err(err).Msg("lock heartbeat failed; waiters on other nodes may take the lock as stale")
		}
		if id, err := lstatID(l.path); !lost && (err != nil || id != l.id) {
			lost = true
			l.log.Error().Err(err).Msg("lock file was removed or replaced by someone else; another instance may start")
		}
	}
}
