// Package signals knows which signals an init catches and passes on, their names, and
// the rewrite table users configure with --rewrite.
package signals

import (
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// notForwarded are the signals an init must never pass on: SIGCHLD is its own "reap now"
// trigger, the Go runtime sends itself SIGURG to preempt goroutines, SIGKILL and SIGSTOP
// cannot be caught, the fault signals are synchronous (they describe svinit's own thread),
// 32-34 belong to the C libraries and the Go runtime (SIGCANCEL, SIGSETXID, musl's
// SIGSYNCCALL), and SIGPROF is the Go runtime's profiling clock: os/signal delivers none
// of these four, so svinit cannot forward them and leaves them as it found them.
var notForwarded = map[unix.Signal]bool{
	unix.SIGCHLD: true, unix.SIGURG: true, unix.SIGKILL: true, unix.SIGSTOP: true, unix.SIGPROF: true,
	unix.SIGSEGV: true, unix.SIGBUS: true, unix.SIGILL: true, unix.SIGFPE: true,
	unix.SIGABRT: true, unix.SIGTRAP: true, unix.SIGSYS: true,
	32: true, 33: true, 34: true,
}

const (
	rtMin = 34 // SIGRTMIN as glibc defines it: the first real-time signal left to programs
	rtMax = 64
)

// Forwardable reports whether svinit passes sig on to its child.
func Forwardable(sig unix.Signal) bool {
	return sig >= 1 && sig <= rtMax && !notForwarded[sig]
}

// Caught lists the signals svinit catches to forward, in ascending order. SIGHUP and SIGINT
// are left out when svinit was started with them ignored (nohup, a background job of a
// non-interactive shell): catching them would replace the inherited SIG_IGN, and the child
// would lose it. The Go runtime only remembers that inherited state for these two.
func Caught() []os.Signal {
	var sigs []os.Signal
	for s := unix.Signal(1); s <= rtMax; s++ {
		if !Forwardable(s) {
			continue
		}
		if (s == unix.SIGHUP || s == unix.SIGINT) && signal.Ignored(s) {
			continue
		}
		sigs = append(sigs, s)
	}
	return sigs
}

// Subscribe has every caught signal delivered to c, and returns a channel that is closed
// once all are. The Go runtime subscribes a process to one signal at a time, each a round
// trip to a thread of its own (bench/README.md has the cost), so only the signals whose
// runtime default is worse than being dropped are subscribed to before Subscribe returns:
// HUP, INT and TERM exit at once, QUIT dumps the goroutines and exits, and TSTP, TTIN and
// TTOU stop svinit. The rest, which the runtime drops until then, are subscribed to in the
// background, while svinit reads its configuration. Nothing is lost as long as the child
// is started after the returned channel is closed: before that, there is no one to forward
// a signal to.
func Subscribe(c chan<- os.Signal) (subscribed <-chan struct{}) {
	var first, rest []os.Signal
	for _, sig := range Caught() {
		switch sig {
		case unix.SIGHUP, unix.SIGINT, unix.SIGTERM, unix.SIGQUIT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
			first = append(first, sig)
		default:
			rest = append(rest, sig)
		}
	}
	signal.Notify(c, first...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		signal.Notify(c, rest...)
		dropSentFaults()
	}()
	return done
}

// dropSentFaults drops the fault signals when a process sends them with kill(2): SIGABRT,
// SIGTRAP, SIGSYS and SIGILL would otherwise make the Go runtime dump its goroutines and
// exit 2, with no clean-up and the seat left taken, even as PID 1, as it handles every
// signal. They are not forwarded, as tini does not. A fault of svinit's own still crashes it.
func dropSentFaults() {
	drop := make(chan os.Signal, 1)
	signal.Notify(drop, unix.SIGABRT, unix.SIGTRAP, unix.SIGSYS, unix.SIGILL, unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE)
	go func() {
		for range drop {
		}
	}()
}

// IsStop reports whether sig asks svinit to stop the child (and so starts the grace timer).
func IsStop(sig unix.Signal) bool { return sig == unix.SIGTERM || sig == unix.SIGINT }

// Parse reads a signal given as "TERM", "SIGTERM", "term", "15", "RTMIN+2" or "SIGRTMAX-1".
func Parse(s string) (unix.Signal, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if n, err := strconv.Atoi(name); err == nil {
		if n < 1 || n > rtMax {
			return 0, fmt.Errorf("signal %q: number out of range 1-%d", s, rtMax)
		}
		return unix.Signal(n), nil
	}
	name = strings.TrimPrefix(name, "SIG")
	if sig, ok := parseRealtime(name); ok {
		return sig, nil
	}
	if sig := unix.SignalNum("SIG" + name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("signal %q: unknown name (use a name such as TERM or SIGHUP, or a number)", s)
}

func parseRealtime(name string) (unix.Signal, bool) {
	base, off, sign := rtMin, "", 1
	switch {
	case strings.HasPrefix(name, "RTMIN"):
		off = strings.TrimPrefix(name, "RTMIN")
	case strings.HasPrefix(name, "RTMAX"):
		base, off, sign = rtMax, strings.TrimPrefix(name, "RTMAX"), -1
	default:
		return 0, false
	}
	n := 0
	if off != "" {
		want := "+"
		if sign < 0 {
			want = "-"
		}
		v, err := strconv.Atoi(strings.TrimPrefix(off, want))
		if err != nil || !strings.HasPrefix(off, want) || v < 0 {
			return 0, false
		}
		n = v
	}
	sig := base + sign*n
	return unix.Signal(sig), sig >= rtMin && sig <= rtMax
}

// Name returns the conventional name of sig ("SIGTERM", "SIGRTMIN+2").
func Name(sig unix.Signal) string {
	if sig >= rtMin && sig <= rtMax {
		return fmt.Sprintf("SIGRTMIN+%d", sig-rtMin)
	}
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return "signal " + strconv.Itoa(int(sig))
}

// Rewrites maps a received signal to the one forwarded; 0 drops it. It is a flag.Value and
// a setter of its variable: each Set adds comma-separated FROM:TO pairs.
type Rewrites map[unix.Signal]unix.Signal

// Apply returns the signal to forward for sig, and false when it is dropped.
func (r Rewrites) Apply(sig unix.Signal) (unix.Signal, bool) {
	to, ok := r[sig]
	if !ok {
		return sig, true
	}
	return to, to != 0
}

// Set adds "FROM:TO[,FROM:TO...]" pairs.
func (r *Rewrites) Set(s string) error {
	if *r == nil {
		*r = Rewrites{}
	}
	for _, pair := range splitList(s) {
		from, to, ok := strings.Cut(pair, ":")
		if !ok {
			return fmt.Errorf("rewrite %q: want FROM:TO, e.g. TERM:QUIT (TO may be 0 to drop)", pair)
		}
		f, err := Parse(from)
		if err != nil {
			return fmt.Errorf("rewrite %q: %w", pair, err)
		}
		if !Forwardable(f) {
			return fmt.Errorf("rewrite %q: %s is never forwarded, so it cannot be rewritten", pair, Name(f))
		}
		var t unix.Signal
		if strings.TrimSpace(to) != "0" {
			if t, err = Parse(to); err != nil {
				return fmt.Errorf("rewrite %q: %w", pair, err)
			}
		}
		(*r)[f] = t
	}
	return nil
}

// Reset forgets the pairs set so far, so that a command-line flag replaces its variable.
func (r *Rewrites) Reset() { *r = nil }

func (r Rewrites) String() string {
	pairs := make([]string, 0, len(r))
	for from, to := range r {
		t := "0"
		if to != 0 {
			t = strings.TrimPrefix(Name(to), "SIG")
		}
		pairs = append(pairs, strings.TrimPrefix(Name(from), "SIG")+":"+t)
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
