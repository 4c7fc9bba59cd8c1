package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/logbuf"
)

// bashLoop is the SV Server document's start-up, with its 60 s limit: wait while the lock
// file exists, create it, run the program, remove it. $1 is the lock, $2 the program.
const bashLoop = `i=0; while [ "$i" -lt 60 -a -f "$1" ]; do i=$((i+1)); sleep 1; done && echo sv > "$1" && "$2" && rm "$1"`

// msgLockWaiting is what svinit logs once it sees the lock held and starts waiting.
const msgLockWaiting = "lock is held; waiting"

// handoff modes: the holder's child ends and the holder releases, or the holder and its
// child are SIGKILLed and leave the lock file behind.
type handoffMode int

const (
	graceful handoffMode = iota
	killed
)

func (m handoffMode) String() string { return [...]string{"graceful", "after SIGKILL"}[m] }

// locker is one way of holding a lock: svinit --lock, or the bash loop.
type locker struct {
	name string
	// argv runs tiny under the lock at path.
	argv func(path, tiny string) []string
	// waiting reports whether the waiter started with argv is waiting for the lock.
	waiting func(w *lockProc) bool
	limit   time.Duration // longest handoff expected: past it the run fails
}

func (b *bench) lockers(svinit string) []locker {
	return []locker{
		{
			name: nameSvinit,
			argv: func(path, tiny string) []string { return []string{svinit, "--lock", path, "--", tiny} },
			waiting: func(w *lockProc) bool {
				return strings.Contains(w.stderr.String(), msgLockWaiting)
			},
			limit: 10 * time.Second,
		},
		{
			name: nameBashLoop,
			argv: func(path, tiny string) []string { return []string{"/bin/bash", "-c", bashLoop, "bash", path, tiny} },
			waiting: func(w *lockProc) bool {
				for _, c := range childrenOf(w.cmd.Process.Pid) {
					if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c)); err == nil && strings.TrimSpace(string(b)) == "sleep" {
						return true
					}
				}
				return false
			},
			limit: 70 * time.Second,
		},
	}
}

// lockRows: time from the holder's child ending (or the holder being SIGKILLed) until the
// waiter's child runs, svinit --lock against the bash loop.
func (b *bench) lockRows(svinit string) ([]*row, error) {
	if b.tiny == "" {
		return nil, nil
	}
	help, err := exec.Command(svinit, "--help").CombinedOutput()
	if err != nil || !bytes.Contains(help, []byte("--lock")) {
		b.log.Warn().Msg("svinit has no --lock option yet: lock handoff left out")
		return nil, nil
	}
	rows := map[handoffMode]*row{}
	for _, m := range []handoffMode{graceful, killed} {
		rows[m] = newRow("lock handoff, "+m.String(), kindDuration, budget{}, nameBashLoop)
	}
	for _, l := range b.lockers(svinit) {
		for _, m := range []handoffMode{graceful, killed} {
			runs := b.plan.lockRuns
			if l.name == nameBashLoop {
				runs = b.plan.bashRuns
				if m == killed {
					if !b.plan.bashKill {
						rows[m].notes[nameBashLoop] = "not run in -quick: 60 s, the loop's limit"
						continue
					}
					runs = 1 // it waits out the loop's 60 s, by design: once is enough
				}
			}
			var lat []float64
			for range runs {
				d, err := b.handoff(l, m)
				if err != nil {
					return nil, fmt.Errorf("lock handoff %s, %s: %w", l.name, m, err)
				}
				lat = append(lat, float64(d))
			}
			rows[m].cells[l.name] = spreadOf(lat)
		}
	}
	return []*row{rows[graceful], rows[killed]}, nil
}

// lockProc is a holder or a waiter: a locker running tiny, whose "x" on stdout says the
// child runs.
type lockProc struct {
	cmd    *exec.Cmd
	out    *os.File // read end of the child's stdout
	stdin  *os.File // write end of the child's stdin; nil when it is /dev/null
	stderr logbuf.Buffer
}

func (b *bench) startLocker(l locker, path string, holder bool) (*lockProc, error) {
	argv := l.argv(path, b.tiny)
	p := &lockProc{cmd: exec.Command(argv[0], argv[1:]...)}
	p.cmd.Env = b.env
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer outW.Close()
	p.out = outR
	p.cmd.Stdout = outW
	p.cmd.Stderr = &p.stderr
	if holder {
		inR, inW, err := os.Pipe()
		if err != nil {
			outR.Close()
			return nil, err
		}
		defer inR.Close()
		p.cmd.Stdin, p.stdin = inR, inW
	}
	if err := p.cmd.Start(); err != nil {
		p.close()
		return nil, fmt.Errorf("start %s: %w", l.name, err)
	}
	return p, nil
}

// awaitChild blocks until the child wrote its "x", and returns when it read it.
func (p *lockProc) awaitChild(limit time.Duration) (time.Time, error) {
	p.out.SetReadDeadline(time.Now().Add(limit))
	var buf [1]byte
	if _, err := io.ReadFull(p.out, buf[:]); err != nil {
		return time.Time{}, fmt.Errorf("child did not start within %s: %w; stderr: %s", limit, err, tail([]byte(p.stderr.String())))
	}
	return time.Now(), nil
}

func (p *lockProc) close() {
	p.out.Close()
	if p.stdin != nil {
		p.stdin.Close()
	}
}

// stop ends p and everything it started, and waits for it.
func (p *lockProc) stop() {
	for _, c := range childrenOf(p.cmd.Process.Pid) {
		unix.Kill(c, unix.SIGKILL)
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()
	p.close()
}

// handoff times one handoff between a holder and a waiter already waiting.
func (b *bench) handoff(l locker, m handoffMode) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "svinit-bench-lock-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "lock")

	holder, err := b.startLocker(l, path, true)
	if err != nil {
		return 0, err
	}
	defer holder.stop()
	if _, err := holder.awaitChild(10 * time.Second); err != nil {
		return 0, fmt.Errorf("holder: %w", err)
	}
	waiter, err := b.startLocker(l, path, false)
	if err != nil {
		return 0, err
	}
	defer waiter.stop()
	if err := pollUntil(10*time.Second, func() bool { return l.waiting(waiter) }); err != nil {
		return 0, fmt.Errorf("waiter never waited: %w; stderr: %s", err, tail([]byte(waiter.stderr.String())))
	}

	// The bash loop looks once a second, so its latency depends on where in that second
	// the holder lets go; a random phase makes its runs sample that, as real pods do.
	time.Sleep(rand.N(time.Second))

	holderGone := make(chan time.Time, 1)
	go func() { holder.cmd.Process.Wait(); holderGone <- time.Now() }()
	start := time.Now()
	switch m {
	case graceful:
		holder.stdin.Close() // the child's read returns 0: it exits, and the holder releases
		holder.stdin = nil
	case killed:
		children := childrenOf(holder.cmd.Process.Pid)
		holder.cmd.Process.Kill()
		for _, c := range children {
			unix.Kill(c, unix.SIGKILL)
		}
	}
	end, err := waiter.awaitChild(l.limit)
	if err != nil {
		return 0, fmt.Errorf("waiter: %w", err)
	}
	select {
	case gone := <-holderGone:
		b.log.Debug().Str("locker", l.name).Stringer("mode", m).Str("holder_exit", gone.Sub(start).String()).
			Str("waiter_child", end.Sub(start).String()).Msg("lock handoff")
	case <-time.After(10 * time.Second):
		return 0, fmt.Errorf("holder did not exit within 10s; stderr: %s", tail([]byte(holder.stderr.String())))
	}
	return end.Sub(start), nil
}

func pollUntil(limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("not within " + limit.String())
		}
		time.Sleep(pollEvery)
	}
	return nil
}
