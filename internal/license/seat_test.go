package license

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/svinit/svinit/internal/license/licensetest"
)

// execSeats is the exec provider over licensetest.ExecSeats in dir: a server that knows each
// activation by an id of its own, so a seat whose id svinit never learned can be given back
// only by instance. Its leases last ttl.
func execSeats(t *testing.T, dir string, ttl time.Duration) Provider {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "ttl"), []byte(ttl.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	log, _ := testLog(t)
	argv := helperArgv(t, "exec-seats", dir)
	return newProvider(t, Config{Provider: ProviderExec, Key: testKey, Log: log, Exec: ExecConfig{
		Activate: argv, Heartbeat: argv, Deactivate: argv, Env: []string{helperEnv + "=1"}, Runner: cmdRunner{},
	}})
}

// frozenStore stands for a journal whose writer was SIGKILLed: once frozen, nothing more
// reaches it.
type frozenStore struct {
	Store
	mu     sync.Mutex
	frozen bool
}

func (s *frozenStore) freeze() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = true
}

func (s *frozenStore) Save(ctx context.Context, rec Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozen {
		return nil
	}
	return s.Store.Save(ctx, rec)
}

func (s *frozenStore) Delete(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozen {
		return nil
	}
	return s.Store.Delete(ctx)
}

// onActivation runs hook after the activation number n has taken its seat.
type onActivation struct {
	Provider
	mu   sync.Mutex
	n    int
	hook func()
}

func (p *onActivation) Activate(ctx context.Context, instance string) (Lease, error) {
	l, err := p.Provider.Activate(ctx, instance)
	p.mu.Lock()
	p.n--
	hit := p.n == 0
	p.mu.Unlock()
	if hit {
		p.hook()
	}
	return l, err
}

// svinit SIGKILLed while a heartbeat re-activates a lost lease, after the server took the new
// seat and before the journal learned its id: the next start gives that seat back too, by
// instance, with SVINIT_ACTIVATION_ID unset as the exec contract says.
func TestReactivationKilledLeaksNoSeat(t *testing.T) {
	dir := t.TempDir()
	log, _ := testLog(t)
	_, journal := journalIn(t)
	store := &frozenStore{Store: journal}
	killed := make(chan struct{})
	p := &onActivation{Provider: execSeats(t, dir, 300*time.Millisecond), n: 2, hook: func() {
		store.freeze()
		close(killed)
	}}
	m := NewManager(p, store, "web-0", log, fastOptions(ProviderExec))
	lease, err := m.Start(context.Background())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := licensetest.ExecSeatsLapse(dir, lease.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-killed:
	case <-time.After(30 * time.Second):
		t.Fatal("no re-activation after the lease lapsed")
	}
	m.abandon()
	if live := licensetest.ExecSeatsLive(dir); len(live) != 1 {
		t.Fatalf("seats held by the killed run: %v; want the re-activation's one", live)
	}

	stopLeavesNoSeat(t, startAgain(t, execSeats(t, dir, 300*time.Millisecond), journal, log), dir)
	if b, _ := os.ReadFile(filepath.Join(dir, "by-instance")); !strings.Contains(string(b), "web-0") {
		t.Error("the seat whose id was never learned was not given back by instance")
	}
}

// SIGTERM while a heartbeat re-activates: the command took the seat and has not answered.
// Stop gives back whatever may have been taken.
func TestReactivationStoppedLeaksNoSeat(t *testing.T) {
	dir := t.TempDir()
	log, _ := testLog(t)
	_, journal := journalIn(t)
	m := NewManager(execSeats(t, dir, 300*time.Millisecond), journal, "web-0", log, fastOptions(ProviderExec))
	lease, err := m.Start(context.Background())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hold-activate"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := licensetest.ExecSeatsLapse(dir, lease.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the re-activation to take a seat", 30*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "held"))
		return strings.Contains(string(b), "activate")
	})
	stopLeavesNoSeat(t, m, dir)
	if _, found := loadRecord(t, journal); found {
		t.Error("journal record left after a successful Stop")
	}
}

// Every id a heartbeat learned stays in the journal until given back: a server that answers
// a heartbeat with a new id may still hold the old one.
func TestEveryActivationIDIsGivenBack(t *testing.T) {
	f := &fakeProvider{live: map[string]bool{}}
	log, _ := testLog(t)
	_, journal := journalIn(t)
	renew := &renewingProvider{fakeProvider: f}
	m := NewManager(renew, journal, "web-0", log, fastOptions("fake"))
	if _, err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a heartbeat with a new id", 10*time.Second, func() bool { live, _ := f.state(); return live >= 2 })
	m.abandon()
	m2 := NewManager(f, journal, "web-0", log, fastOptions("fake"))
	if _, err := m2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m2.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if live, _ := f.state(); live != 0 {
		t.Errorf("fake server: %d activations live; want 0", live)
	}
}

// renewingProvider answers the first heartbeat with a new activation, keeping the old one.
type renewingProvider struct {
	*fakeProvider
	once sync.Once
}

func (r *renewingProvider) Heartbeat(ctx context.Context, instance string, l Lease) (Lease, error) {
	renewed := false
	r.once.Do(func() { renewed = true })
	if renewed {
		return r.fakeProvider.Activate(ctx, instance)
	}
	return r.fakeProvider.Heartbeat(ctx, instance, l)
}

// With the server unreachable, Start keeps trying until --license-timeout, its last attempt
// shorter than the request timeout if need be, and then fails with exit 75.
func TestStartRetriesUntilTheDeadline(t *testing.T) {
	log, _ := testLog(t)
	_, journal := journalIn(t)
	opts := ManagerOptions{Provider: "fake", Timeout: 2 * time.Second, RequestTimeout: 10 * time.Second,
		MinBackoff: 400 * time.Millisecond, MaxBackoff: time.Second}
	m := NewManager(unreachable{}, journal, "web-0", log, opts)
	began := time.Now()
	_, err := m.Start(context.Background())
	elapsed := time.Since(began)
	if code := ExitCode(err); code != ExitTempFail {
		t.Fatalf("Start = %v (exit %d); want exit 75", err, code)
	}
	// The last attempt starts as late as the one before allows (twice the time it took, here
	// next to nothing); only a call that took longer than the slack can make it earlier.
	// No upper bound: a slow machine can only make it later.
	if earliest := opts.Timeout - opts.MinBackoff/2; elapsed < earliest {
		t.Errorf("gave up after %s; want not before %s (--license-timeout %s)", elapsed, earliest, opts.Timeout)
	}
}

// unreachable is a license server that cannot be reached: every request fails at once.
type unreachable struct{}

func (unreachable) Activate(context.Context, string) (Lease, error) {
	return Lease{}, fmt.Errorf("%w: connection refused", ErrRetryable)
}

func (unreachable) Heartbeat(context.Context, string, Lease) (Lease, error) {
	return Lease{}, fmt.Errorf("%w: connection refused", ErrRetryable)
}

func (unreachable) Deactivate(context.Context, string, Lease) error {
	return fmt.Errorf("%w: connection refused", ErrRetryable)
}

// A key in a server's answer is redacted before the answer is escaped or cut: a key with a
// tab, and a key that straddles the excerpt's cut, leave nothing of themselves in the error.
func TestServerBodyNeverShowsTheKey(t *testing.T) {
	const key = "ABCD1234\tEFGH5678"
	for _, tc := range []struct{ name, body string }{
		{"tab", "bad key " + key + " refused"},
		{"straddling the cut", strings.Repeat("x", 196) + key},
		{"escaped on the cut", strings.Repeat("x", 199) + "\x01" + key},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, tc.body, http.StatusForbidden)
			}))
			t.Cleanup(srv.Close)
			log, logs := testLog(t)
			p := newProvider(t, Config{Provider: ProviderHTTP, URL: srv.URL, Key: key, Log: log, HTTP: HTTPConfig{
				Activate: HTTPRequest{URL: "{{.URL}}/a"}, Deactivate: HTTPRequest{URL: "{{.URL}}/d"},
			}})
			_, err := p.Activate(context.Background(), "web-0")
			if !errors.Is(err, ErrPermanent) {
				t.Fatalf("Activate = %v; want ErrPermanent", err)
			}
			for _, part := range []string{"ABCD", "5678"} {
				if strings.Contains(err.Error(), part) || strings.Contains(logs.String(), part) {
					t.Errorf("the key's %q shows: %v", part, err)
				}
			}
		})
	}
}

// A symlink planted where the journal goes is refused, never followed: root's svinit would
// otherwise read or replace any file the link names.
func TestJournalNeverFollowsASymlink(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	const content = `{"version": 1, "instance": "x", "provider": "opswat", "state": "active"}`
	if err := os.WriteFile(target, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "license.json")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	j := NewJournal(path)
	if _, _, err := j.Load(ctx); err == nil || !strings.Contains(err.Error(), "symlink") || !strings.Contains(err.Error(), path) {
		t.Errorf("Load through a symlink = %v; want an error naming the symlink", err)
	}
	if err := j.Save(ctx, Record{Instance: "web-0", Provider: ProviderOPSWAT, State: StateActivating}); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("Save over a symlink = %v; want an error naming the symlink", err)
	}
	if err := j.Delete(ctx); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("Delete of a symlink = %v; want an error naming the symlink", err)
	}
	if b, _ := os.ReadFile(target); string(b) != content {
		t.Errorf("the symlink's target was changed: %q", b)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the planted symlink was replaced or removed (%v, %v); want it left for a person to look at", fi, err)
	}
}

// Deactivating an activation whose id was never learned runs the command with
// SVINIT_ACTIVATION_ID unset, not empty, even when svinit's own environment has one.
func TestExecByInstanceLeavesActivationIDUnset(t *testing.T) {
	out := filepath.Join(t.TempDir(), "record.json")
	log, _ := testLog(t)
	p := newProvider(t, Config{Provider: ProviderExec, Log: log, Exec: ExecConfig{
		Activate: helperArgv(t, "exit", "0"), Deactivate: helperArgv(t, "record", out),
		Env: []string{helperEnv + "=1", EnvActivationID + "=inherited"}, Runner: cmdRunner{},
	}})
	if err := p.Deactivate(context.Background(), "web-0", Lease{}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), EnvActivationID) {
		t.Errorf("the command got %s: %s", EnvActivationID, data)
	}
}

// answerLost takes a seat on its first activation and then reports the answer lost, as a
// request timeout does after the server acted: the seat is held under an id svinit never
// learns.
type answerLost struct {
	Provider
	once sync.Once
}

func (p *answerLost) Activate(ctx context.Context, instance string) (Lease, error) {
	l, err := p.Provider.Activate(ctx, instance)
	lost := false
	p.once.Do(func() { lost = true })
	if lost && err == nil {
		return Lease{}, fmt.Errorf("%w: %w: killed after the request timeout", ErrRetryable, ErrUncertain)
	}
	return l, err
}

// An activation attempt that timed out may have taken a seat: when a retry succeeds with
// another id, the stop (or, after a SIGKILL, the next start) gives that seat back too.
func TestTimedOutActivationSeatIsGivenBack(t *testing.T) {
	for _, kill := range []bool{false, true} {
		t.Run(map[bool]string{false: "stop", true: "killed"}[kill], func(t *testing.T) {
			dir := t.TempDir()
			log, _ := testLog(t)
			_, journal := journalIn(t)
			m := NewManager(&answerLost{Provider: execSeats(t, dir, 0)}, journal, "web-0", log, fastOptions(ProviderExec))
			if _, err := m.Start(context.Background()); err != nil {
				t.Fatalf("Start: %v", err)
			}
			if live := licensetest.ExecSeatsLive(dir); len(live) != 2 {
				t.Fatalf("seats held after Start: %v; want the lost attempt's and the retry's", live)
			}
			if kill {
				m.abandon()
				m = startAgain(t, execSeats(t, dir, 0), journal, log)
			}
			stopLeavesNoSeat(t, m, dir)
		})
	}
}

// reKeying answers its first heartbeat with a new activation; the old one ends with it
// unless keepOld. hook runs once the server has switched, before svinit hears of it.
type reKeying struct {
	Provider
	dir     string
	keepOld bool
	hook    func()
	once    sync.Once
}

func (p *reKeying) Heartbeat(ctx context.Context, instance string, l Lease) (Lease, error) {
	first := false
	p.once.Do(func() { first = true })
	if !first {
		return p.Provider.Heartbeat(ctx, instance, l)
	}
	nl, err := p.Provider.Activate(ctx, instance)
	if err == nil && !p.keepOld {
		err = licensetest.ExecSeatsLapse(p.dir, l.ID)
	}
	if p.hook != nil {
		p.hook()
	}
	return nl, err
}

// mayReKey is the wrapped provider's: the exec provider's own declaration is under test.
func (p *reKeying) mayReKey() bool {
	rk, ok := p.Provider.(reKeyer)
	return ok && rk.mayReKey()
}

// svinit SIGKILLed after a heartbeat moved the lease to a new id on the server and before the
// journal learned it: the next start still gives the new seat back (by instance), though the
// old id is gone.
func TestReKeyingHeartbeatKilledLeaksNoSeat(t *testing.T) {
	dir := t.TempDir()
	log, _ := testLog(t)
	_, journal := journalIn(t)
	store := &frozenStore{Store: journal}
	killed := make(chan struct{})
	p := &reKeying{Provider: execSeats(t, dir, 300*time.Millisecond), dir: dir, hook: func() {
		store.freeze()
		close(killed)
	}}
	m := NewManager(p, store, "web-0", log, fastOptions(ProviderExec))
	if _, err := m.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	select {
	case <-killed:
	case <-time.After(30 * time.Second):
		t.Fatal("no heartbeat")
	}
	m.abandon()
	if live := licensetest.ExecSeatsLive(dir); len(live) != 1 {
		t.Fatalf("seats held by the killed run: %v; want the heartbeat's new one", live)
	}
	stopLeavesNoSeat(t, startAgain(t, execSeats(t, dir, 0), journal, log), dir)
}

// refusing fails every deactivation of the ids in refused with err. It hides the wrapped
// provider's mayReKey: its seats are given back by id only, the order under test.
type refusing struct {
	Provider
	mu      sync.Mutex
	refused map[string]error
}

func (p *refusing) refuse(id string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		delete(p.refused, id)
		return
	}
	p.refused[id] = err
}

func (p *refusing) Deactivate(ctx context.Context, instance string, l Lease) error {
	p.mu.Lock()
	err := p.refused[l.ID]
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("deactivate %s: %w", l.ID, err)
	}
	return p.Provider.Deactivate(ctx, instance, l)
}

// A server that refuses to give back an old id (a heartbeat moved the lease from A to B)
// does not keep the current seat B: the stop gives B back and keeps A alone in the journal;
// the next start cannot give A back either, starts anyway and keeps A in the journal, and a
// later stop gives it back once the server lets it go.
func TestRefusedOldIDDoesNotBlockTheCurrentSeat(t *testing.T) {
	dir := t.TempDir()
	log, logs := testLog(t)
	_, journal := journalIn(t)
	refuse := &refusing{refused: map[string]error{}}
	refuse.Provider = &reKeying{Provider: execSeats(t, dir, 300*time.Millisecond), dir: dir, keepOld: true}
	m := NewManager(refuse, journal, "web-0", log, fastOptions(ProviderExec))
	first, err := m.Start(context.Background())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	refuse.refuse(first.ID, fmt.Errorf("%w: exit 1", ErrPermanent))
	waitFor(t, "a heartbeat with a new id", 10*time.Second, func() bool { return m.Lease().ID != first.ID })
	current := m.Lease().ID
	if err := m.Stop(context.Background()); err == nil {
		t.Error("Stop succeeded although the server refused to give back an id")
	}
	if live := licensetest.ExecSeatsLive(dir); len(live) != 1 || live[0] != first.ID {
		t.Fatalf("seats held after Stop: %v; want only the refused %s (the current %s given back)", live, first.ID, current)
	}
	rec, found := loadRecord(t, journal)
	if names := rec.seats(); !found || len(names) != 1 || names[0].ID != first.ID {
		t.Fatalf("journal after Stop = %+v; want exactly the refused %s", rec, first.ID)
	}

	m2 := NewManager(refuse, journal, "web-0", log, fastOptions(ProviderExec))
	if _, err := m2.Start(context.Background()); err != nil {
		t.Fatalf("Start with a refused id in the journal: %v", err)
	}
	if !strings.Contains(logs.String(), "cannot deactivate the activation a previous run left behind") {
		t.Error("the refused id was not logged")
	}
	rec, _ = loadRecord(t, journal)
	if !slices.ContainsFunc(rec.seats(), func(s Seat) bool { return s.ID == first.ID }) {
		t.Fatalf("journal after the next Start = %+v; want the refused %s kept", rec, first.ID)
	}
	refuse.refuse(first.ID, nil)
	if err := m2.Stop(context.Background()); err != nil {
		t.Fatalf("Stop once the server lets the id go: %v", err)
	}
	if live := licensetest.ExecSeatsLive(dir); len(live) != 0 {
		t.Errorf("seats leaked: %v", live)
	}
	if _, found := loadRecord(t, journal); found {
		t.Error("journal record left after everything was given back")
	}
}

// An id whose deactivation never succeeds (the server keeps answering 503 for it) gets its
// share of the stop budget and no more: the ids after it are given back too.
func TestDeadIDDoesNotEatTheStopBudget(t *testing.T) {
	f := &fakeProvider{live: map[string]bool{"act-a": true, "act-b": true, "act-c": true}}
	p := &refusing{Provider: f, refused: map[string]error{"act-a": fmt.Errorf("%w: 503", ErrRetryable)}}
	log, _ := testLog(t)
	m := NewManager(p, nil, "web-0", log, fastOptions("fake"))
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	rec := Record{Instance: "web-0", Provider: "fake", State: StateActive, ActivationID: "act-b", Earlier: []string{"act-a", "act-c"}}
	if _, err := m.Release(ctx, rec); !errors.Is(err, ErrRetryable) {
		t.Errorf("Release = %v; want the dead id's ErrRetryable", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.live) != 1 || !f.live["act-a"] {
		t.Errorf("live after Release: %v; want only the dead act-a", f.live)
	}
}

// startAgain is the start after a kill: a Manager for web-0 on the same journal, which gives
// back what the killed run left before it activates.
func startAgain(t *testing.T, p Provider, journal Store, log zerolog.Logger) *Manager {
	t.Helper()
	m := NewManager(p, journal, "web-0", log, fastOptions(ProviderExec))
	if _, err := m.Start(context.Background()); err != nil {
		t.Fatalf("Start after the kill: %v", err)
	}
	return m
}

// stopLeavesNoSeat stops m and fails unless the exec double in dir holds no seat after it.
func stopLeavesNoSeat(t *testing.T, m *Manager, dir string) {
	t.Helper()
	if err := m.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if live := licensetest.ExecSeatsLive(dir); len(live) != 0 {
		t.Errorf("seats leaked: %v", live)
	}
}
