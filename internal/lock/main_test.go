package lock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// helperEnv selects what the test binary does when a test starts it as a child.
const helperEnv = "SVINIT_LOCK_TEST_HELPER"

func TestMain(m *testing.M) {
	switch mode := os.Getenv(helperEnv); mode {
	case "":
		os.Exit(m.Run())
	case "contend":
		os.Exit(contendHelper())
	case "hold":
		os.Exit(holdHelper())
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", helperEnv, mode)
		os.Exit(2)
	}
}

// helperOptions reads the helper's Options from the environment a test set.
func helperOptions() (Options, error) {
	opts := Options{
		Path:    os.Getenv("LOCK_PATH"),
		Poll:    os.Getenv("LOCK_POLL") == "1",
		Logger:  zerolog.New(os.Stderr).With().Timestamp().Int("pid", os.Getpid()).Logger(),
		Version: "helper",
		Timeout: 30 * time.Second,
	}
	if s := os.Getenv("LOCK_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return opts, err
		}
		opts.Timeout = d
	}
	if s := os.Getenv("LOCK_POLICY"); s != "" {
		p, err := ParsePolicy(s)
		if err != nil {
			return opts, err
		}
		opts.OnTimeout = p
	}
	return opts, nil
}

// contendHelper takes the lock, proves it is alone in the critical section (the marker is
// created with O_EXCL, so a second holder fails to create it), works for LOCK_HOLD and leaves.
func contendHelper() int {
	opts, err := helperOptions()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM)
	defer stop()
	l, err := Acquire(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "acquire:", err)
		return 1
	}
	code := criticalSection(os.Getenv("LOCK_MARKER"), os.Getenv("LOCK_JOURNAL"), os.Getenv("LOCK_HOLD"))
	if err := l.Release(); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		return 1
	}
	return code
}

func criticalSection(marker, journal, hold string) int {
	f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if errors.Is(err, fs.ErrExist) {
		fmt.Fprintln(os.Stderr, "VIOLATION: another holder is in the critical section")
		return 3
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f.Close()
	d, _ := time.ParseDuration(hold)
	if err := appendLine(journal, fmt.Sprintf("enter %d", os.Getpid())); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	time.Sleep(d) // the work done under the lock
	if err := appendLine(journal, fmt.Sprintf("leave %d", os.Getpid())); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.Remove(marker); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(line + "\n")
	return errors.Join(err, f.Close())
}

// holdHelper checks the path, takes the lock, says "acquired INSTANCE" and holds it until
// stdin says "release" or closes, or SIGTERM; before releasing it says "releasing NANOS".
func holdHelper() int {
	opts, err := helperOptions()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := Check(opts.Path); err != nil {
		fmt.Fprintln(os.Stderr, "check:", err)
		if errors.Is(err, ErrBadPath) {
			return 2
		}
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM)
	defer stop()
	l, err := Acquire(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "acquire:", err)
		if ctx.Err() != nil {
			return 128 + int(unix.SIGTERM)
		}
		return 1
	}
	fmt.Printf("acquired %s\n", l.Owner().Instance)
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	code := 0
wait:
	for {
		select {
		case <-ctx.Done():
			code = 128 + int(unix.SIGTERM)
			break wait
		case line, ok := <-lines:
			if !ok || line == "release" {
				break wait
			}
		}
	}
	fmt.Printf("releasing %d\n", time.Now().UnixNano())
	if err := l.Release(); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		return 1
	}
	return code
}

// helper is a running helper process with its stdout lines on a channel.
type helper struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout chan string
	stderr *logLines
	done   chan struct{} // closed once Wait has returned
	err    error         // Wait's result, after done
}

func startHelper(t testing.TB, mode string, env ...string) *helper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return startHelperExe(t, exe, mode, nil, env...)
}

func startHelperExe(t testing.TB, exe, mode string, attr *syscall.SysProcAttr, env ...string) *helper {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^$")
	// A race-enabled helper would otherwise sleep a second at exit, waiting for reports.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=" + mode, "GORACE=" + gorace}, env...)...)
	cmd.SysProcAttr = attr
	h := &helper{cmd: cmd, stdout: make(chan string, 16), stderr: newLogLines(nil), done: make(chan struct{})}
	cmd.Stderr = h.stderr
	var err error
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.stdout <- sc.Text()
		}
		close(h.stdout)
		h.err = cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(func() {
		select {
		case <-h.done:
		default:
			cmd.Process.Kill()
			<-h.done
		}
	})
	return h
}

// line waits for the next stdout line that starts with prefix and returns the rest.
func (h *helper) line(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-h.stdout:
			if !ok {
				<-h.done
				t.Fatalf("helper exited (%v) before printing %q; stderr:\n%s", h.err, prefix, h.stderr)
			}
			if rest, found := strings.CutPrefix(l, prefix); found {
				return strings.TrimSpace(rest)
			}
		case <-deadline:
			t.Fatalf("helper printed no %q within %s; stderr:\n%s", prefix, timeout, h.stderr)
		}
	}
}

// wait waits for the helper to exit and returns its exit code.
func (h *helper) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-h.done:
	case <-time.After(timeout):
		t.Fatalf("helper still running after %s; stderr:\n%s", timeout, h.stderr)
	}
	var ee *exec.ExitError
	if errors.As(h.err, &ee) {
		return ee.ExitCode()
	}
	if h.err != nil {
		t.Fatalf("helper: %v", h.err)
	}
	return 0
}

// logLines collects log lines (one zerolog event per Write) and lets a test wait for one.
type logLines struct {
	t       testing.TB // echo to the test log when set
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every write
}

func newLogLines(t testing.TB) *logLines { return &logLines{t: t, changed: make(chan struct{})} }

func (l *logLines) Write(p []byte) (int, error) {
	if l.t != nil {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.Split(strings.TrimRight(string(p), "\n"), "\n")...)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// count is how many lines contain s, and a channel closed at the next write.
func (l *logLines) count(s string) (int, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n, l.changed
}

// waitFor waits until at least n lines contain s.
func (l *logLines) waitFor(t testing.TB, s string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		got, changed := l.count(s)
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no %d log lines with %q within %s; log:\n%s", n, s, timeout, l)
		}
	}
}

// testLogger logs into the test's output and lets the test wait for lines.
func testLogger(t testing.TB) (zerolog.Logger, *logLines) {
	lines := newLogLines(t)
	return testLoggerTo(lines), lines
}

func testLoggerTo(lines *logLines) zerolog.Logger {
	return zerolog.New(lines).Level(zerolog.DebugLevel).With().Timestamp().Logger()
}

// Log messages the tests wait for.
const (
	msgWaiting   = "lock is held; waiting"
	msgRemoved   = "removed the lock file of a holder that is gone"
	msgPastLimit = "lock wait timed out but the holder is alive"
)

type mode struct {
	name string
	poll bool
}

func modes() []mode { return []mode{{"inotify", false}, {"poll", true}} }

func (m mode) env() string {
	if m.poll {
		return "LOCK_POLL=1"
	}
	return "LOCK_POLL=0"
}

type acquired struct {
	l   *Lock
	err error
	at  time.Time
}

// acquireAsync runs Acquire in a goroutine; the result arrives on the channel.
func acquireAsync(ctx context.Context, opts Options) <-chan acquired {
	ch := make(chan acquired, 1)
	go func() {
		l, err := Acquire(ctx, opts)
		ch <- acquired{l, err, time.Now()}
	}()
	return ch
}

func receive(t testing.TB, ch <-chan acquired, timeout time.Duration) acquired {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(timeout):
		t.Fatalf("Acquire did not return within %s", timeout)
		return acquired{}
	}
}

// writeRecord plants a lock file with a valid record, as a holder that is not running here
// would have left it, and sets its mtime.
func writeRecord(t testing.TB, path string, rec Record, mtime time.Time) {
	t.Helper()
	data, err := encodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func dirEntries(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// openFDsMatching lists this process's descriptors whose target matches.
func openFDsMatching(t testing.TB, match func(target string) bool) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && match(target) {
			found = append(found, e.Name()+" -> "+target)
		}
	}
	return found
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func lockPath(t testing.TB) string { return filepath.Join(t.TempDir(), "lock") }
