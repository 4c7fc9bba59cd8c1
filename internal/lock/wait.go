package lock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

const (
	// pollInterval paces a waiter without inotify (the bash loop it replaces polled once a
	// second).
	pollInterval = 100 * time.Millisecond
	// recheckInterval paces a waiter with inotify too, because some changes raise no event
	// here: a holder on another node, a flock the kernel drops just after the close event.
	recheckInterval = time.Second
	// progressEvery paces the "still waiting" log lines.
	progressEvery = 5 * time.Second
	// foreignGrace is how long a file must look foreign before a timed-out waiter removes it:
	// longer than the instant between another svinit's create and its record write.
	foreignGrace = 200 * time.Millisecond
)

// followUps is how many quick checks follow an inotify wake-up, 1, 2, 4 ... 256 ms apart:
// the kernel reports a dying holder's close a moment before it drops the holder's flock
// (fsnotify_close comes before locks_remove_file in __fput), and the teardown of a killed
// container takes a few milliseconds more; checks that double in spacing find the lock free
// within about as long again, for nine cheap looks over half a second.
const followUps = 9

func followUpDelay(left int) time.Duration { return time.Millisecond << (followUps - left) }

// errHeld says the lock file exists (or was replaced under us): judge it and wait.
var errHeld = errors.New("lock is held")

type verdict int

const (
	live          verdict = iota // a holder whose flock is held: alive, never broken
	liveHeartbeat                // flock says nothing, but the mtime is being refreshed
	liveProgram                  // flock free, but a process of the holder's program runs
	foreign                      // no svinit record: respected until the timeout
	dead                         // our kernel, our record, flock free, its program gone
	stale                        // not refreshed for staleBeats heartbeats
)

func (v verdict) String() string {
	return [...]string{"live", "live-heartbeat", "live-program", "foreign", "dead", "stale"}[v]
}

type flockState int

const (
	flockHeld flockState = iota
	flockFree
	flockUnknown // the file system has no flock
)

// holding is what a waiter learned about the lock file in one look.
type holding struct {
	id      fileID
	valid   bool // carries an svinit record
	rec     Record
	preview string // start of a foreign file's content, for the log
	mtime   time.Time
	flock   flockState
}

// inspect looks at the lock file without changing it. The record is read before the flock
// is probed: a holder takes the flock before it writes its record, so a valid record with a
// free flock means the writer has let go since.
func inspect(path string, probe bool) (holding, error) {
	fd, err := openForInspection(path)
	switch {
	case errors.Is(err, unix.ELOOP):
		return holding{}, badPath("lock %s: a symlink appeared at the lock path; svinit refuses to follow it: remove it", path)
	case err != nil:
		return holding{}, err
	}
	defer unix.Close(fd)
	st, err := fstat(fd)
	if err != nil {
		return holding{}, fmt.Errorf("lock %s: fstat: %w", path, err)
	}
	if !isRegular(&st) {
		return holding{}, badPath("lock %s: something other than a regular file appeared at the lock path: remove it", path)
	}
	data, err := readUpTo(fd, maxRecordSize)
	if err != nil {
		return holding{}, fmt.Errorf("lock %s: read: %w", path, err)
	}
	h := holding{id: statID(&st), mtime: mtimeOf(&st), flock: flockUnknown}
	h.rec, h.valid = decodeRecord(data)
	if !h.valid {
		h.preview = preview(data)
	}
	if probe {
		switch err := tryShared(fd); {
		case err == nil:
			h.flock = flockFree
		case isLockHeld(err):
			h.flock = flockHeld
		case flockUnsupported(err):
		default:
			return holding{}, fmt.Errorf("lock %s: probe flock: %w", path, err)
		}
	}
	return h, nil
}

// readOwner is inspect without the flock probe, for Release.
func readOwner(path string) (holding, error) { return inspect(path, false) }

func preview(b []byte) string {
	const max = 32
	if len(b) > max {
		b = b[:max]
	}
	for !utf8.Valid(b) && len(b) > 0 {
		b = b[:len(b)-1]
	}
	return string(b)
}

// waiter runs one Acquire.
type waiter struct {
	opts      Options
	log       zerolog.Logger
	dir, name string
	rec       Record // ours; Started is set when the lock is taken
	start     time.Time
	deadline  time.Time

	// The heartbeat of the current holder as this waiter has watched it, on its own clock,
	// so that clock skew between nodes cannot make a live holder look stale.
	beatID    fileID
	beatMtime time.Time
	beatSince time.Time

	// How long the current file has looked foreign.
	foreignID    fileID
	foreignSince time.Time

	nextProgress time.Time // zero until the first "waiting" line
	pastTimeout  bool      // the "timed out, holder alive" warning was logged
	tookOver     string    // why a lock file was removed during this wait, for the final log
}

func newWaiter(opts Options) *waiter {
	now := time.Now()
	return &waiter{
		opts:     opts,
		log:      opts.Logger.With().Str("lock", opts.Path).Logger(),
		dir:      filepath.Dir(opts.Path),
		name:     filepath.Base(opts.Path),
		rec:      newRecord(opts.Version, opts.Heartbeat),
		start:    now,
		deadline: now.Add(opts.Timeout),
	}
}

func (w *waiter) run(ctx context.Context) (*Lock, error) {
	// The watch is set up before the first attempt, so that a release between a failed
	// attempt and the wait cannot be missed.
	var (
		wake, ended <-chan struct{}
		dw          *dirWatch
	)
	if !w.opts.Poll {
		var err error
		if dw, err = watchDir(w.dir, w.name); err != nil {
			w.log.Warn().Err(err).Msg("cannot watch the lock directory; polling instead")
		} else {
			wake, ended = dw.wake, dw.ended
		}
	}
	// The watch outlives a successful wait: the Lock closes it once the caller has started
	// its child (see Lock.DropWatch).
	handedOver := false
	defer func() {
		if dw != nil && !handedOver {
			go dw.close()
		}
	}()
	quickChecks := 0
	for {
		l, err := w.tryTake()
		switch {
		case err == nil:
			if cerr := ctx.Err(); cerr != nil {
				return nil, combine(fmt.Errorf("lock %s: not taken: %w", w.opts.Path, cerr), l.Release())
			}
			w.log.Info().Str("instance", l.rec.Instance).Dur("waited_ms", time.Since(w.start)).
				Str("took_over", w.tookOver).Msg("lock acquired")
			l.watch, handedOver = dw, true
			return l, nil
		case !errors.Is(err, errHeld):
			return nil, err
		}

		h, err := inspect(w.opts.Path, true)
		if errors.Is(err, fs.ErrNotExist) {
			continue // released since the attempt: try again at once
		}
		if err != nil {
			return nil, err
		}
		now := time.Now()
		v := w.judge(h, now)
		freed, soon, err := w.act(h, v, now)
		if err != nil {
			return nil, err
		}
		if freed {
			continue
		}
		w.progress(h, v, now)

		delay := pollInterval
		if wake != nil {
			delay = recheckInterval
			if quickChecks > 0 {
				delay = followUpDelay(quickChecks)
				quickChecks--
			}
		}
		if soon >= 0 {
			delay = min(delay, soon)
		}
		if left := w.deadline.Sub(now); left > 0 {
			delay = min(delay, left)
		}
		delay = max(0, min(delay, w.nextProgress.Sub(now)))

		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("lock %s: wait cancelled after %s, nothing taken: %w",
				w.opts.Path, time.Since(w.start).Round(time.Millisecond), ctx.Err())
		case <-wake:
			quickChecks = followUps
		case <-ended:
			w.log.Warn().Msg("the lock directory's watch ended; polling instead")
			wake, ended = nil, nil
		case <-t.C:
		}
		t.Stop()
	}
}

// act does what the verdict calls for: it removes the lock file of a holder that is gone,
// and applies the timeout policy. freed says the path is free, try to take it at once;
// otherwise soon, when not negative, asks for the next look sooner than the usual pace.
func (w *waiter) act(h holding, v verdict, now time.Time) (freed bool, soon time.Duration, err error) {
	// A holder judged by its heartbeat is looked at several times per heartbeat, so that
	// staleness is noticed on time.
	pace := time.Duration(-1)
	switch v {
	case liveHeartbeat:
		pace = max(h.heartbeat(w.opts.Heartbeat)/4, time.Millisecond)
	case liveProgram:
		pace = pollInterval // the end of a process raises no event here
	}
	switch {
	case v == dead || v == stale:
	case now.Before(w.deadline):
		return false, pace, nil
	case w.opts.OnTimeout == Fail:
		return false, 0, fmt.Errorf("lock %s: %s, still there after %s; remove the file if its owner is gone: %w",
			w.opts.Path, h.describe(v), w.opts.Timeout, ErrTimeout)
	case v != foreign || h.flock == flockHeld:
		w.warnPastTimeout(h, v, now)
		return false, pace, nil
	case now.Sub(w.foreignSince) < foreignGrace:
		return false, w.foreignSince.Add(foreignGrace).Sub(now), nil
	}
	freed, err = w.breakLock(h, v)
	if err != nil || freed {
		return freed, 0, err
	}
	return false, jitter(), nil // another waiter is looking at it or removing it
}

// tryTake is the atomic take. The lock counts as taken only once the record is durable and
// the path still names our file while we hold its flock: a waiter that removed the file in
// the instant between our create and our flock (it saw no record yet) makes us try again.
//
// Two descriptions of the file are open: the flock is held on a read-only one, which the
// program inherits (it cannot write the record through it, whatever user it runs as), and
// the record and the heartbeat go through a write-only one that only svinit holds. The
// flock is taken before the record is written, as waiters rely on (see inspect).
func (w *waiter) tryTake() (*Lock, error) {
	path := w.opts.Path
	wfd, err := createExclusive(path)
	if errors.Is(err, unix.EEXIST) {
		return nil, errHeld
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, unwrapPathError(err))
	}
	st, err := fstat(wfd)
	if err != nil {
		unix.Close(wfd)
		return nil, fmt.Errorf("lock %s: fstat: %w", path, err)
	}
	id := statID(&st)
	fd := -1
	// abandon undoes a take that cannot complete, removing the file only while it is ours.
	abandon := func(step string, err error) (*Lock, error) {
		if cur, lerr := lstatID(path); lerr == nil && cur == id {
			unlink(path)
		}
		unix.Close(wfd)
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("lock %s: %s: %w", path, step, err)
	}

	switch fd, err = openSameFile(path, id); {
	case errors.Is(err, errHeld):
		unix.Close(wfd)
		w.log.Debug().Msg("lock file was replaced while being created; trying again")
		return nil, errHeld
	case err != nil:
		return abandon("open to hold", unwrapPathError(err))
	}
	if err := holdExclusive(fd); err != nil {
		if !flockUnsupported(err) {
			return abandon("flock", err)
		}
		w.log.Debug().Err(err).Msg("no flock on this file system; waiters rely on the heartbeat")
	}
	rec := w.rec
	rec.Started = time.Now()
	data, err := encodeRecord(rec)
	if err != nil {
		return abandon("write owner record", err)
	}
	if err := writeAt(wfd, data, 0); err != nil {
		return abandon("write owner record", err)
	}
	if err := fsync(wfd); err != nil {
		return abandon("fsync", err)
	}
	if err := fsyncDir(w.dir); err != nil {
		return abandon("sync directory", unwrapPathError(err))
	}
	if cur, err := lstatID(path); err != nil || cur != id {
		unix.Close(wfd)
		unix.Close(fd)
		w.log.Debug().Msg("lock file was removed while being written; trying again")
		return nil, errHeld
	}
	return newLock(path, fd, wfd, id, rec, w.log), nil
}

// judge decides what the file in h is to this waiter.
func (w *waiter) judge(h holding, now time.Time) verdict {
	if !h.valid {
		if h.id != w.foreignID {
			w.foreignID, w.foreignSince = h.id, now
		}
		return foreign
	}
	w.foreignID = fileID{}
	switch {
	case h.flock == flockHeld:
		// Alive as far as the kernel (or the NFS lock manager) knows, even if it stopped
		// refreshing: a frozen holder cannot be broken safely, its flock would outlive us.
		return live
	case h.flock == flockFree && h.rec.BootID != "" && h.rec.BootID == w.rec.BootID:
		// Every copy of the holder's flock is closed; a program that closed its own copy
		// may still run, and counts as long as its group is seen.
		if h.rec.PIDNamespace != "" && h.rec.PIDNamespace == w.rec.PIDNamespace && groupRuns(h.rec.Group, h.rec.GroupStart) {
			return liveProgram
		}
		return dead
	}
	// The flock tells nothing (another node, or no flock here): the heartbeat decides.
	if h.id != w.beatID || !h.mtime.Equal(w.beatMtime) {
		w.beatID, w.beatMtime, w.beatSince = h.id, h.mtime, now
	}
	beat := h.heartbeat(w.opts.Heartbeat)
	unchanged := now.Sub(w.beatSince)
	// Stale once this waiter has watched the mtime stand still for staleBeats heartbeats, or
	// for one heartbeat when the mtime was already that old by the clock: a waiter arriving
	// long after a crash need not sit out the full three, and a skewed clock alone never
	// condemns a holder that keeps refreshing.
	if unchanged >= staleBeats*beat || (now.Sub(h.mtime) >= staleBeats*beat && unchanged >= beat) {
		return stale
	}
	return liveHeartbeat
}

// breakLock removes a lock file judged dead, stale, or (past the timeout) foreign. It holds
// the file's flock while it makes sure the path still names the inode it judged, unchanged,
// and only then removes it: of two waiters judging the same dead holder at the same moment
// the second finds the flock taken or another file at the path, so exactly one removes it
// and exactly one wins the create that follows. freed reports the path is free now.
func (w *waiter) breakLock(h holding, v verdict) (freed bool, err error) {
	path := w.opts.Path
	fd, err := openForInspection(path)
	switch {
	case errors.Is(err, unix.ENOENT):
		return true, nil
	case errors.Is(err, unix.ELOOP):
		return false, badPath("lock %s: a symlink appeared at the lock path; svinit refuses to follow it: remove it", path)
	case err != nil:
		return false, err
	}
	defer unix.Close(fd)
	if err := tryExclusive(fd); err != nil {
		if isLockHeld(err) {
			return false, nil
		}
		if !flockUnsupported(err) {
			return false, fmt.Errorf("lock %s: flock: %w", path, err)
		}
	}
	st, err := fstat(fd)
	if err != nil {
		return false, fmt.Errorf("lock %s: fstat: %w", path, err)
	}
	if statID(&st) != h.id || !mtimeOf(&st).Equal(h.mtime) {
		return false, nil // refreshed or replaced since it was judged
	}
	switch cur, err := lstatID(path); {
	case errors.Is(err, unix.ENOENT):
		return true, nil
	case err != nil:
		return false, err
	case cur != h.id:
		return false, nil
	}
	if err := unlink(path); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return true, nil
		}
		return false, fmt.Errorf("lock %s: remove %s lock: %w", path, v, unwrapPathError(err))
	}
	w.tookOver = v.String()
	e := w.log.Warn().Str("reason", v.String())
	h.fields(e, time.Now()).Msg("removed the lock file of a holder that is gone")
	return true, nil
}

func (w *waiter) warnPastTimeout(h holding, v verdict, now time.Time) {
	if w.pastTimeout {
		return
	}
	w.pastTimeout = true
	e := w.log.Warn().Str("state", v.String()).Dur("timeout_ms", w.opts.Timeout)
	h.fields(e, now).Msg("lock wait timed out but the holder is alive; waiting on, a live holder is never broken")
}

// progress logs the first sight of a held lock, then a line every progressEvery.
func (w *waiter) progress(h holding, v verdict, now time.Time) {
	if !w.nextProgress.IsZero() && now.Before(w.nextProgress) {
		return
	}
	msg := "still waiting for the lock"
	if w.nextProgress.IsZero() {
		msg = "lock is held; waiting"
		w.nextProgress = now
	}
	for !w.nextProgress.After(now) {
		w.nextProgress = w.nextProgress.Add(progressEvery)
	}
	e := w.log.Info().Str("state", v.String()).
		Dur("waited_ms", now.Sub(w.start).Round(time.Millisecond)).
		Dur("left_ms", max(0, w.deadline.Sub(now)).Round(time.Millisecond))
	h.fields(e, now).Msg(msg)
}

func (h holding) fields(e *zerolog.Event, now time.Time) *zerolog.Event {
	if !h.valid {
		return e.Str("content", h.preview).Dur("age_ms", now.Sub(h.mtime).Round(time.Millisecond))
	}
	return e.Str("holder_host", h.rec.Hostname).Int("holder_pid", h.rec.PID).
		Str("holder_instance", h.rec.Instance).Str("holder_version", h.rec.Version).
		Dur("held_for_ms", now.Sub(h.rec.Started).Round(time.Millisecond)).
		Dur("refreshed_ago_ms", now.Sub(h.mtime).Round(time.Millisecond))
}

// describe names the holder for an error message.
func (h holding) describe(v verdict) string {
	if !h.valid {
		return "held by a foreign file (content " + strconv.Quote(h.preview) + ")"
	}
	return fmt.Sprintf("held by svinit pid %d on %s (instance %s, since %s, %s)",
		h.rec.PID, h.rec.Hostname, h.rec.Instance, h.rec.Started.UTC().Format(time.RFC3339), v)
}

func (h holding) heartbeat(fallback time.Duration) time.Duration {
	if h.rec.Heartbeat > 0 {
		return h.rec.Heartbeat
	}
	return fallback
}

// jitter spreads the retries of waiters that collided on the same file.
func jitter() time.Duration { return time.Millisecond + rand.N(3*time.Millisecond) }
