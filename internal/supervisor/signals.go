package supervisor

import (
	"context"
	"os"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/signals"
)

// stoppingShown is how long a stop must last before the state file says "stopping". A
// child that exits at once, the usual docker stop, costs no write, and its exit is not
// held up by one: the state file goes straight from running to exited.
const stoppingShown = 100 * time.Millisecond

// SignalSources are what the signal goroutine reads and does. The caller subscribes before
// parsing anything, so that no signal is left to the Go runtime's default (exit 2, no
// clean-up).
type SignalSources struct {
	// Signals delivers every caught signal but SIGCHLD (signals.Subscribe).
	Signals <-chan os.Signal
	// Subscribed is closed once Signals has every signal: the child is started after it,
	// so that no signal meant for it is lost.
	Subscribed <-chan struct{}
	// SIGCHLD has one slot, apart from Signals: SIGCHLDs coalesce, since one reap pass
	// collects every exit, and an orphan storm must not fill the channel that carries a
	// SIGTERM.
	SIGCHLD <-chan os.Signal
	// Reap is one reap pass (reaper.Reap): the exits it collects reach their waiters, the
	// child's and the license commands'.
	Reap func()
	Log  zerolog.Logger
	// After makes the timers of the grace, the stop delay and the stopping phase; nil:
	// time.After. Tests fire them by hand.
	After func(time.Duration) <-chan time.Time
}

// Signals is the one goroutine that receives svinit's signals, from their subscription to
// svinit's exit; nothing else reads the channels. SIGCHLD runs a reap pass in every phase.
// Before the child exists, a stop signal (SIGTERM, SIGINT) cancels Startup, which every
// start-up step that can wait takes, and any other signal is dropped: there is nobody to
// give it to. While the child runs, every signal is forwarded, and the first stop signal
// starts the grace period that ends in SIGKILL. Once the child has exited, signals are
// ignored: the clean-up runs to its end.
type Signals struct {
	startup    context.Context
	stop       atomic.Int32 // the stop signal that cancelled startup; 0: none yet
	subscribed <-chan struct{}
	starts     chan startRequest
	requests   chan struct{} // RequestStop's: one slot, as a second request adds nothing
	exits      chan ChildExit
	stopBegun  context.Context // done at the child's first stop signal
	beginStop  context.CancelFunc
	quit, done chan struct{}

	// requestStopped: a RequestStop came before the child's exit, and stopped it or its start.
	requestStopped atomic.Bool
	killNow        atomic.Bool // RequestKill: no grace for the child
}

// ChildExit is how the child ended: its status, and the end of the stop budget (zero when
// nobody asked it to stop), which the clean-up and the deactivation share.
type ChildExit struct {
	Status       unix.WaitStatus
	StopDeadline time.Time
}

// Forwarding is how signals reach the running child and how it is stopped.
type Forwarding struct {
	Rewrite   signals.Rewrites
	KillGroup bool          // to the child's process group, not the child alone
	Grace     time.Duration // from the first stop signal to the SIGKILL of the group
	StopDelay time.Duration // the first SIGTERM is held back this long
}

// OwnSignals starts the goroutine that owns src until Close.
func OwnSignals(src SignalSources) *Signals {
	if src.After == nil {
		src.After = time.After
	}
	startup, cancel := context.WithCancel(context.Background())
	o := &Signals{
		startup:    startup,
		subscribed: src.Subscribed,
		starts:     make(chan startRequest),
		requests:   make(chan struct{}, 1),
		exits:      make(chan ChildExit, 1),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	o.stopBegun, o.beginStop = context.WithCancel(context.Background())
	loop := &signalLoop{SignalSources: src, o: o, cancel: cancel}
	go loop.run()
	return o
}

// Startup is cancelled by a stop signal that comes before the child exists.
func (o *Signals) Startup() context.Context { return o.startup }

// Stopped returns the stop signal that came before the child existed, or 0.
func (o *Signals) Stopped() unix.Signal { return unix.Signal(o.stop.Load()) }

// RequestStop stops the child as a first SIGTERM does (the stop delay, the grace, SIGKILL),
// for a reason of svinit's own: a lock lost. The grace starts even when --rewrite drops
// SIGTERM, since the child must be gone by its end. Before the child exists it ends the
// start-up as a SIGTERM does; once the child has exited it does nothing. Any goroutine may
// call it, at any time: the signal goroutine acts on it in turn with the signals.
func (o *Signals) RequestStop() {
	select {
	case o.requests <- struct{}{}:
	default: // one is pending already
	}
}

// StopBegun is done once the running child was asked to stop: what runs beside it (the
// readiness checks, the template watch) ends.
func (o *Signals) StopBegun() context.Context { return o.stopBegun }

// RequestKill is RequestStop without the grace: the child's process group is SIGKILLed at
// once, for a Lease that may be another's already (svinit woke from a pause past its
// duration). The clean-up and the deactivation still get the grace.
func (o *Signals) RequestKill() {
	o.killNow.Store(true)
	o.RequestStop()
}

// StopRequested reports that a RequestStop stopped the child, or its start; one that came
// once the child had exited stopped nothing.
func (o *Signals) StopRequested() bool { return o.requestStopped.Load() }

// Close ends the goroutine; signals that come after stay in their channels.
func (o *Signals) Close() {
	select {
	case <-o.quit:
	default:
		close(o.quit)
	}
	<-o.done
}

type startRequest struct {
	child    Child
	lockFD   int
	fwd      Forwarding
	stopping func() // the phase becomes stopping
	reply    chan startReply
}

type startReply struct {
	pid     int
	stopped unix.Signal
	err     error
}

// startChild starts child from the signal goroutine, unless a stop signal came first
// (stopped): no signal can slip between the last look for a stop and the child's start, and
// the first one after it is forwarded. The child gets lockFD beside what it inherits.
func (o *Signals) startChild(child Child, lockFD int, fwd Forwarding, stopping func()) (pid int, stopped unix.Signal, err error) {
	if o.subscribed != nil {
		select {
		case <-o.subscribed: // from now on a signal has a child to go to, and is not lost
		case <-o.startup.Done():
		}
	}
	reply := make(chan startReply, 1)
	o.starts <- startRequest{child: child, lockFD: lockFD, fwd: fwd, stopping: stopping, reply: reply}
	r := <-reply
	return r.pid, r.stopped, r.err
}

// waitChild returns once the child started by startChild has exited and been reaped.
func (o *Signals) waitChild() ChildExit { return <-o.exits }

// signalLoop is the goroutine's own state: nothing else touches it.
type signalLoop struct {
	SignalSources
	o      *Signals
	cancel context.CancelFunc

	// Set while the child runs.
	child    Child
	pid      int
	exited   <-chan unix.WaitStatus
	fwd      Forwarding
	stopping func()
	// The stop: the deadline of its budget and its timers.
	deadline                    time.Time
	kill, delayed, showStopping <-chan time.Time
	childGone                   bool // exited and reaped: its pid may be another's
}

func (l *signalLoop) run() {
	defer close(l.o.done)
	defer l.cancel()
	l.reap() // children may have exited before SIGCHLD was subscribed to
	for {
		select {
		case <-l.o.quit:
			return
		case <-l.SIGCHLD:
			l.reap()
			l.collectExit()
		case sig := <-l.Signals:
			l.signal(sig.(unix.Signal))
		case <-l.o.requests:
			l.stopRequested()
		case req := <-l.o.starts:
			req.reply <- l.start(req)
		case ws := <-l.exited:
			l.childExited(ws)
		case <-l.showStopping:
			l.showStopping = nil
			l.stopping()
		case <-l.delayed:
			l.delayed = nil
			l.forward(unix.SIGTERM)
		case <-l.kill:
			l.kill = nil
			// The kill first: a log line can block (a log pipe nobody reads) and must not
			// hold back what the grace period promises.
			l.killGroup()
			l.Log.Warn().Int("pid", l.pid).Dur("grace_ms", l.fwd.Grace).Msg("child outlived the grace period, sent SIGKILL to its process group")
		}
	}
}

func (l *signalLoop) reap() {
	if l.Reap != nil {
		l.Reap()
	}
}

// signal acts on sig by phase.
func (l *signalLoop) signal(sig unix.Signal) {
	l.collectExit() // an exit already delivered comes first: the pid may be another's now
	switch {
	case l.exited != nil:
		l.forwardOrStop(sig, false)
	case l.childGone:
		l.Log.Debug().Str("signal", signals.Name(sig)).Msg("child exited, signal ignored")
	case signals.IsStop(sig):
		if l.o.stop.CompareAndSwap(0, int32(sig)) {
			l.cancel()
		}
	default:
		l.Log.Debug().Str("signal", signals.Name(sig)).Msg("no child yet, signal dropped")
	}
}

// killGroup SIGKILLs the child's process group, or the child if it has none.
func (l *signalLoop) killGroup() {
	if err := l.child.Signal(-l.pid, unix.SIGKILL); err != nil {
		l.child.Signal(l.pid, unix.SIGKILL)
	}
}

// stopRequested acts on RequestStop by phase: a SIGTERM whose grace always starts; after
// RequestKill, SIGKILL at once, the grace left to the clean-up and the deactivation.
func (l *signalLoop) stopRequested() {
	l.collectExit()
	if !l.childGone {
		l.o.requestStopped.Store(true)
	}
	switch {
	case l.exited != nil:
		l.forwardOrStop(unix.SIGTERM, true)
		if l.o.killNow.Load() {
			l.kill, l.delayed = nil, nil
			l.killGroup()
			l.Log.Warn().Int("pid", l.pid).Msg("sent SIGKILL to the child's process group at once")
		}
	case l.childGone:
	default:
		if l.o.stop.CompareAndSwap(0, int32(unix.SIGTERM)) {
			l.cancel()
		}
	}
}

// start starts the child, unless a stop signal came before.
func (l *signalLoop) start(req startRequest) startReply {
	if sig := l.o.Stopped(); sig != 0 {
		return startReply{stopped: sig}
	}
	pid, exited, err := req.child.Start(req.lockFD)
	if err != nil {
		return startReply{err: err}
	}
	l.child, l.pid, l.exited, l.fwd, l.stopping = req.child, pid, exited, req.fwd, req.stopping
	return startReply{pid: pid}
}

// collectExit takes the child's exit if a reap pass has delivered it.
func (l *signalLoop) collectExit() {
	select {
	case ws := <-l.exited:
		l.childExited(ws)
	default:
	}
}

func (l *signalLoop) childExited(ws unix.WaitStatus) {
	l.exited, l.childGone = nil, true
	l.kill, l.delayed, l.showStopping = nil, nil, nil
	l.o.exits <- ChildExit{Status: ws, StopDeadline: l.deadline}
}

// forwardOrStop forwards sig to the running child. The first stop signal starts the grace
// period, from its arrival, and with --stop-delay a first SIGTERM is held back for the
// delay (a second one goes at once). A stop signal --rewrite drops asks nothing of the
// child, and starts no grace period, unless svinit itself asked for the stop (requested).
func (l *signalLoop) forwardOrStop(sig unix.Signal, requested bool) {
	_, forwarded := l.fwd.Rewrite.Apply(sig)
	firstStop := signals.IsStop(sig) && (forwarded || requested) && l.deadline.IsZero()
	if firstStop {
		l.deadline = time.Now().Add(l.fwd.Grace)
		l.kill = l.After(l.fwd.Grace)
		l.o.beginStop() // once: the deadline is set from here on
	}
	switch {
	case firstStop && sig == unix.SIGTERM && l.fwd.StopDelay > 0:
		l.delayed = l.After(l.fwd.StopDelay)
	case sig == unix.SIGTERM && l.delayed != nil:
		l.delayed = nil // asked twice: no more waiting
		l.forward(sig)
	default:
		l.forward(sig)
	}
	if firstStop {
		// After the forward: the child's stop waits for no log line and no file.
		l.Log.Info().Str("signal", signals.Name(sig)).Dur("grace_ms", l.fwd.Grace).Dur("delay_ms", l.fwd.StopDelay).Msg("stopping the child")
		l.showStopping = l.After(stoppingShown)
	}
}

// forward passes sig on, rewritten, to the child or with --kill-group to its process group.
func (l *signalLoop) forward(sig unix.Signal) {
	to, ok := l.fwd.Rewrite.Apply(sig)
	if !ok {
		l.Log.Debug().Str("signal", signals.Name(sig)).Msg("signal dropped by rewrite")
		return
	}
	target := l.pid
	if l.fwd.KillGroup {
		target = -l.pid
	}
	if err := l.child.Signal(target, to); err != nil {
		l.Log.Debug().Err(err).Str("signal", signals.Name(to)).Int("target", target).Msg("forward failed")
		return
	}
	if signals.IsStop(sig) {
		// A program frozen by SIGSTOP would leave the stop pending until --grace ends in
		// SIGKILL: continue it, as systemd does, so that it acts on it now.
		l.child.Signal(target, unix.SIGCONT)
	}
	// Guarded: the names would be worked out for a disabled line, on every signal.
	if e := l.Log.Debug(); e.Enabled() {
		e.Str("signal", signals.Name(to)).Str("received", signals.Name(sig)).Int("target", target).Msg("signal forwarded")
	}
}
