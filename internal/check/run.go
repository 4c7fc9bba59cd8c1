package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Runner runs one attempt of a check, bounded by Timeout.
type Runner struct {
	// Exec runs an exec: check's command (svinit's reaper-aware runner), with Env.
	Exec interface {
		Run(ctx context.Context, argv, env []string, stdout, stderr io.Writer) (int, error)
	}
	Env []string
	// Net runs a tcp:// or http(s):// check outside PID 1 (svinit-net probe).
	Net     func(ctx context.Context, c Check) error
	Timeout time.Duration
	// Redact, when set, hides the secrets svinit knows in a reason: a command may say them.
	Redact func(string) string

	stat     func(path string) error // os.Stat, but for the tests
	mu       sync.Mutex
	statting map[string]*statCall // the stats still running, by path
}

// statCall is one stat of a path, which every attempt at that path waits for until it ends.
type statCall struct {
	done chan struct{}
	err  error
}

// maxReason bounds a check's reason, which is written to the state file every round.
const maxReason = 200

// stderrTail is what is kept of an exec check's stderr: enough for its last line.
const stderrTail = 4 << 10

// Run returns nil when c passes, else why it does not.
func (r *Runner) Run(ctx context.Context, c Check) error {
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	var err error
	switch c.Kind {
	case File:
		err = r.statWithin(ctx, c.Target)
	case Exec:
		err = r.exec(ctx, c)
	default:
		err = r.Net(ctx, c)
	}
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("no answer within --check-timeout %s", r.Timeout)
	}
	if err != nil {
		// A server's or a command's words, of any size, headed for a terminal; the
		// secrets go first, as a cut secret would no longer be recognised.
		reason := err.Error()
		if r.Redact != nil {
			reason = r.Redact(reason)
		}
		return errors.New(excerpt(reason))
	}
	return nil
}

// excerpt is s cut to maxReason bytes, its control characters replaced.
func excerpt(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
	if len(s) > maxReason {
		s = strings.ToValidUTF8(s[:maxReason], "") + " ..."
	}
	return s
}

// statWithin is os.Stat, given up on when ctx ends: a hung mount must not hold the check.
// A stat stuck in the kernel holds an OS thread, so the attempts that follow wait for it
// rather than start another each: a thread every round would end at the runtime's limit.
func (r *Runner) statWithin(ctx context.Context, path string) error {
	r.mu.Lock()
	call, ok := r.statting[path]
	if !ok {
		if r.statting == nil {
			r.statting = map[string]*statCall{}
		}
		call = &statCall{done: make(chan struct{})}
		r.statting[path] = call
		stat := r.stat
		if stat == nil {
			stat = func(path string) error { _, err := os.Stat(path); return err }
		}
		go func() {
			call.err = stat(path)
			r.mu.Lock()
			delete(r.statting, path)
			r.mu.Unlock()
			close(call.done)
		}()
	}
	r.mu.Unlock()
	select {
	case <-call.done:
		if errors.Is(call.err, fs.ErrNotExist) {
			return errors.New("does not exist")
		}
		return call.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Runner) exec(ctx context.Context, c Check) error {
	var stderr bytes.Buffer
	code, err := r.Exec.Run(ctx, c.Argv, r.Env, io.Discard, &tail{&stderr, stderrTail})
	switch {
	case err != nil:
		return err
	case code != 0:
		if last := lastLine(stderr.String()); last != "" {
			return fmt.Errorf("exit %d: %s", code, last)
		}
		return fmt.Errorf("exit %d", code)
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// tail keeps the last n bytes or so written, where the last line is, without failing the
// writer.
type tail struct {
	b *bytes.Buffer
	n int
}

func (t *tail) Write(p []byte) (int, error) {
	t.b.Write(p[max(len(p)-t.n, 0):])
	if over := t.b.Len() - t.n; over > 0 {
		t.b.Next(over)
	}
	return len(p), nil
}
