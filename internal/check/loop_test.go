package check

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// fakeChecks answers each check by its raw text: the errors to give, in turn, then nil.
type fakeChecks struct {
	mu       sync.Mutex
	fails    map[string][]error
	attempts map[string]int
	block    map[string]bool // attempts that wait for their context
}

func (f *fakeChecks) attempt(ctx context.Context, c Check) error {
	f.mu.Lock()
	f.attempts[c.Raw()]++
	block := f.block[c.Raw()]
	var err error
	if q := f.fails[c.Raw()]; len(q) > 0 {
		err, f.fails[c.Raw()] = q[0], q[1:]
	}
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

func (f *fakeChecks) count(raw string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[raw]
}

func mustList(t *testing.T, s ...string) []Check {
	t.Helper()
	var l List
	for _, c := range s {
		if err := l.Set(c); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func newFake() *fakeChecks {
	return &fakeChecks{fails: map[string][]error{}, attempts: map[string]int{}, block: map[string]bool{}}
}

// Wait returns once every check has passed; a check that passed is not tried again, and
// every progress line names what is still missing and its last error.
func TestWaitRetriesOnlyWhatFails(t *testing.T) {
	f := newFake()
	f.fails["tcp://db:5432"] = []error{errors.New("connection refused"), errors.New("connection refused"), errors.New("connection refused")}
	var log bytes.Buffer
	err := Wait(context.Background(), mustList(t, "tcp://db:5432", "file:/x"), WaitOptions{
		Attempt: f.attempt, Retry: time.Millisecond, Progress: time.Nanosecond, Log: zerolog.New(&log),
	})
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if n := f.count("tcp://db:5432"); n != 4 {
		t.Errorf("tcp check tried %d times, want 4", n)
	}
	if n := f.count("file:/x"); n != 1 {
		t.Errorf("passed check tried %d times, want 1", n)
	}
	lines := log.String()
	if !strings.Contains(lines, `"check":"tcp://db:5432","error":"connection refused"`) || !strings.Contains(lines, `"waiting for dependency"`) {
		t.Errorf("no progress line naming the missing check and its error:\n%s", lines)
	}
	if strings.Contains(lines, `"check":"file:/x","error"`) {
		t.Errorf("a progress line names a check that passed:\n%s", lines)
	}
}

// When --wait-timeout passes, the error says which checks still fail and why.
func TestWaitTimeoutNamesWhatStillFails(t *testing.T) {
	f := newFake()
	for range 1000 {
		f.fails["http://api/health"] = append(f.fails["http://api/health"], errors.New("answered 503 Service Unavailable"))
	}
	err := Wait(context.Background(), mustList(t, "http://api/health", "file:/x"), WaitOptions{
		Attempt: f.attempt, Retry: time.Millisecond, Timeout: 50 * time.Millisecond, Log: zerolog.Nop(),
	})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Wait = %v, want ErrTimeout", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "http://api/health: answered 503 Service Unavailable") || strings.Contains(msg, "file:/x") {
		t.Errorf("error %q", msg)
	}
}

// A stop signal (the start-up context) ends the wait at once, the check running included.
func TestWaitEndsAtOnceWithItsContext(t *testing.T) {
	f := newFake()
	f.block["exec:slow"] = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Wait(ctx, mustList(t, "exec:slow"), WaitOptions{Attempt: f.attempt, Log: zerolog.Nop()})
	}()
	for f.count("exec:slow") == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Wait = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not end with its context")
	}
}

// Readiness is reported every round, the first at once; a change between ready and not
// ready is logged once; the watch ends with its context, its running check cancelled.
func TestWatchReportsEveryRoundLogsChangesOnce(t *testing.T) {
	f := newFake()
	down := errors.New("connection refused")
	f.fails["tcp://db:5432"] = []error{down, down, nil, nil, down}
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var got []Result
	var log bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, mustList(t, "tcp://db:5432"), WatchOptions{Attempt: f.attempt, Interval: time.Millisecond, Log: zerolog.New(&log),
			Report: func(r Result) {
				mu.Lock()
				defer mu.Unlock()
				if got = append(got, r); len(got) == 6 {
					f.mu.Lock()
					f.block["tcp://db:5432"] = true // the next round hangs until the watch ends
					f.mu.Unlock()
				}
			}})
	}()
	for f.count("tcp://db:5432") < 7 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not end with its context")
	}
	var ready []bool
	for _, r := range got {
		ready = append(ready, r.Ready)
		if r.Checked.IsZero() || r.Ready != (r.Reason == "") {
			t.Errorf("result %+v", r)
		}
	}
	if want := []bool{false, false, true, true, false, true}; !equalBools(ready, want) {
		t.Errorf("ready %v, want %v", ready, want)
	}
	if got[0].Reason != "tcp://db:5432: connection refused" {
		t.Errorf("reason %q", got[0].Reason)
	}
	if n := strings.Count(log.String(), `"not ready"`); n != 2 {
		t.Errorf("%d not-ready lines, want 2:\n%s", n, log.String())
	}
	if n := strings.Count(log.String(), `"message":"ready"`); n != 2 {
		t.Errorf("%d ready lines, want 2:\n%s", n, log.String())
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type fakeExec struct {
	code   int
	stderr string
	argv   []string
}

func (e *fakeExec) Run(ctx context.Context, argv, env []string, stdout, stderr io.Writer) (int, error) {
	e.argv = argv
	io.WriteString(stderr, e.stderr)
	if e.code < 0 {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return e.code, nil
}

// Each kind is run where it belongs: a file in PID 1, a command through the runner, the
// network through Net; one attempt is bounded by Timeout.
func TestRunnerRunsEachKind(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "ready")
	os.WriteFile(present, nil, 0o644)
	ex := &fakeExec{code: 1, stderr: "db:5432 - no response\n"}
	var netGot string
	r := Runner{Exec: ex, Timeout: 20 * time.Millisecond, Net: func(ctx context.Context, c Check) error {
		netGot = c.Raw()
		<-ctx.Done()
		return ctx.Err()
	}}
	run := func(s string) error { return r.Run(context.Background(), mustList(t, s)[0]) }
	if err := run("file:" + present); err != nil {
		t.Errorf("present file: %v", err)
	}
	if err := run("file:" + filepath.Join(dir, "absent")); err == nil || err.Error() != "does not exist" {
		t.Errorf("absent file: %v", err)
	}
	if err := run("exec:pg_isready -h db"); err == nil || err.Error() != "exit 1: db:5432 - no response" || strings.Join(ex.argv, " ") != "pg_isready -h db" {
		t.Errorf("failing command: %v, argv %q", err, ex.argv)
	}
	ex.code = 0
	if err := run("exec:true"); err != nil {
		t.Errorf("passing command: %v", err)
	}
	if err := run("http://u:pw@api/health"); err == nil || !strings.Contains(err.Error(), "--check-timeout 20ms") || netGot != "http://u:pw@api/health" {
		t.Errorf("network check: %v (net got %q)", err, netGot)
	}
	ex.code = -1
	if err := run("exec:sleep 100"); err == nil || !strings.Contains(err.Error(), "--check-timeout") {
		t.Errorf("hung command: %v", err)
	}
}

// A check stuck where no cancellation reaches (a stat on a hung NFS mount) holds back
// neither the wait's end nor the watch's: both give up on it once their context ends.
func TestStuckCheckHoldsNothingBack(t *testing.T) {
	stuck := make(chan struct{})
	defer close(stuck)
	started := make(chan struct{}, 2)
	attempt := func(ctx context.Context, c Check) error {
		started <- struct{}{}
		<-stuck
		return nil
	}
	checks := mustList(t, "file:/hung/mount")
	for name, run := range map[string]func(ctx context.Context){
		"wait": func(ctx context.Context) { Wait(ctx, checks, WaitOptions{Attempt: attempt, Log: zerolog.Nop()}) },
		"watch": func(ctx context.Context) {
			Watch(ctx, checks, WatchOptions{Attempt: attempt, Interval: time.Hour, Log: zerolog.Nop()})
		},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			run(ctx)
		}()
		<-started
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: still held by the stuck check", name)
		}
	}
}

// What is still missing is reported after a round only when it changed (a check passed, an
// error changed), so that the state file is not rewritten every second for nothing.
func TestWaitReportsWhatIsMissingWhenItChanges(t *testing.T) {
	f := newFake()
	refused, noHost := errors.New("connection refused"), errors.New("no such host")
	f.fails["tcp://db:5432"] = []error{refused, refused, noHost, noHost}
	f.fails["file:/x"] = []error{errors.New("does not exist")}
	var got []string
	err := Wait(context.Background(), mustList(t, "tcp://db:5432", "file:/x"), WaitOptions{
		Attempt: f.attempt, Retry: time.Millisecond, Log: zerolog.Nop(),
		Missing: func(m []Missing) {
			var s []string
			for _, x := range m {
				s = append(s, x.Check+" "+x.Error)
			}
			got = append(got, strings.Join(s, ", "))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"tcp://db:5432 connection refused, file:/x does not exist",
		"tcp://db:5432 connection refused",
		"tcp://db:5432 no such host",
		"",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("reported\n  %q\nwant\n  %q", got, want)
	}
}
