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
	"time"
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
}

// maxExcerpt bounds what an exec check's stderr adds to its error.
const maxExcerpt = 200

// Run returns nil when c passes, else why it does not.
func (r Runner) Run(ctx context.Context, c Check) error {
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	var err error
	switch c.Kind {
	case File:
		err = statWithin(ctx, c.Target)
	case Exec:
		err = r.exec(ctx, c)
	default:
		err = r.Net(ctx, c)
	}
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("no answer within --check-timeout %s", r.Timeout)
	}
	return err
}

// statWithin is os.Stat, given up on when ctx ends: a hung mount must not hold the check.
func statWithin(ctx context.Context, path string) error {
	stat := make(chan error, 1)
	go func() {
		_, err := os.Stat(path)
		stat <- err
	}()
	select {
	case err := <-stat:
		if errors.Is(err, fs.ErrNotExist) {
			return errors.New("does not exist")
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r Runner) exec(ctx context.Context, c Check) error {
	var stderr bytes.Buffer
	code, err := r.Exec.Run(ctx, c.Argv, r.Env, io.Discard, &limited{&stderr, maxExcerpt})
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

// limited keeps the first n bytes written and drops the rest, without failing the writer.
type limited struct {
	b *bytes.Buffer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
