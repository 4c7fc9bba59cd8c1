package license

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/svinit/svinit/internal/license/licensetest"
)

func startServer(t *testing.T, seats int, ttl time.Duration) *licensetest.Server {
	// ShortTTL: the heartbeat scenarios run with a TTL of seconds, which the relay refuses.
	return licensetest.Start(t, licensetest.Options{Seats: seats, Keys: []string{testKey}, TTL: ttl, ShortTTL: true})
}

// noLeak is the check every scenario ends with.
func noLeak(t *testing.T, srv *licensetest.Server) {
	t.Helper()
	if n := srv.Live(); n != 0 {
		t.Errorf("the server holds %d activations after the scenario; want 0", n)
	}
}

func TestManagerActivateDeactivate(t *testing.T) {
	for _, s := range setups() {
		t.Run(s.name, func(t *testing.T) {
			srv := startServer(t, 1, 0)
			log, _ := testLog(t)
			_, journal := journalIn(t)
			m := NewManager(newProvider(t, s.config(t, srv, log)), journal, "pod-0-uid", log, fastOptions(s.provider))

			lease, err := m.Start(context.Background())
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			if !srv.Holds("pod-0-uid") {
				t.Fatal("the server holds no activation for the instance after Start")
			}
			if len(lease.File) == 0 {
				t.Error("lease has no license file")
			}
			rec, found := loadRecord(t, journal)
			if !found || rec.State != StateActive || rec.ActivationID != lease.ID || rec.Instance != "pod-0-uid" || rec.Provider != s.provider {
				t.Errorf("journal after Start = %+v, %v; want active record of %s", rec, found, lease.ID)
			}

			if err := m.Stop(context.Background()); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if _, found := loadRecord(t, journal); found {
				t.Error("journal record left after a successful Stop")
			}
			noLeak(t, srv)
		})
	}
}

func TestManagerNoSeats(t *testing.T) {
	for _, s := range setups() {
		t.Run(s.name, func(t *testing.T) {
			srv := startServer(t, 1, 0)
			log, _ := testLog(t)
			p := newProvider(t, s.config(t, srv, log))
			other, err := p.Activate(context.Background(), "other-pod")
			if err != nil {
				t.Fatalf("activate the other instance: %v", err)
			}
			_, journal := journalIn(t)
			m := NewManager(p, journal, "pod-0-uid", log, fastOptions(s.provider))

			_, err = m.Start(context.Background())
			if !errors.Is(err, ErrNoSeats) {
				t.Fatalf("Start = %v; want ErrNoSeats", err)
			}
			if code := ExitCode(err); code != ExitNoSeats {
				t.Errorf("ExitCode = %d; want %d", code, ExitNoSeats)
			}
			t.Logf("error: %v", err)
			if srv.Holds("pod-0-uid") {
				t.Error("the refused instance holds an activation")
			}
			if _, found := loadRecord(t, journal); found {
				t.Error("journal record left after a refused activation")
			}
			if err := m.Stop(context.Background()); err != nil {
				t.Errorf("Stop after a failed Start: %v", err)
			}
			if err := p.Deactivate(context.Background(), "other-pod", other); err != nil {
				t.Fatalf("deactivate the other instance: %v", err)
			}
			noLeak(t, srv)
		})
	}
}

func TestManagerServerDownAtStart(t *testing.T) {
	for _, mode := range []string{"refused", "503"} {
		for _, s := range setups() {
			t.Run(mode+"/"+s.name, func(t *testing.T) {
				srv := startServer(t, 1, 0)
				if mode == "refused" {
					srv.Down()
				} else {
					srv.SetUnavailable(true)
				}
				log, logs := testLog(t)
				_, journal := journalIn(t)
				opts := fastOptions(s.provider)
				opts.Timeout = 1500 * time.Millisecond
				m := NewManager(newProvider(t, s.config(t, srv, log)), journal, "pod-0-uid", log, opts)

				began := time.Now()
				_, err := m.Start(context.Background())
				elapsed := time.Since(began)
				if !errors.Is(err, ErrRetryable) {
					t.Fatalf("Start = %v; want ErrRetryable", err)
				}
				if code := ExitCode(err); code != ExitTempFail {
					t.Errorf("ExitCode = %d; want %d", code, ExitTempFail)
				}
				retries := strings.Count(logs.String(), "retrying")
				t.Logf("gave up after %s and %d retries: %v", elapsed, retries, err)
				if retries < 2 {
					t.Errorf("%d retries logged; want several within the deadline", retries)
				}
				if elapsed > opts.Timeout+5*time.Second {
					t.Errorf("Start took %s; want about the %s deadline", elapsed, opts.Timeout)
				}
				// Only an attempt that the deadline cut short may have reached the server.
				if _, found := loadRecord(t, journal); found && !strings.Contains(logs.String(), "may have taken a seat") {
					t.Error("journal record left although no attempt reached a working server")
				}
				if mode == "refused" {
					if err := srv.Up(); err != nil {
						t.Fatal(err)
					}
				} else {
					srv.SetUnavailable(false)
				}
				noLeak(t, srv)
			})
		}
	}
}

func TestManagerServerDownAtStop(t *testing.T) {
	for _, s := range setups() {
		t.Run(s.name, func(t *testing.T) {
			srv := startServer(t, 1, 0)
			log, _ := testLog(t)
			_, journal := journalIn(t)
			opts := fastOptions(s.provider)
			m := NewManager(newProvider(t, s.config(t, srv, log)), journal, "pod-0-uid", log, opts)
			lease, err := m.Start(context.Background())
			if err != nil {
				t.Fatalf("Start: %v", err)
			}

			srv.Down()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err = m.Stop(ctx)
			cancel()
			if !errors.Is(err, ErrRetryable) {
				t.Fatalf("Stop with the server down = %v; want ErrRetryable", err)
			}
			rec, found := loadRecord(t, journal)
			if !found || rec.ActivationID != lease.ID {
				t.Fatalf("journal after a failed Stop = %+v, %v; want the record of %s kept", rec, found, lease.ID)
			}
			if err := srv.Up(); err != nil {
				t.Fatal(err)
			}
			if srv.Live() != 1 {
				t.Fatalf("server holds %d activations; the failed Stop should have left 1", srv.Live())
			}

			// The next run (a new process: new provider, new Manager) reclaims it first.
			log2, logs2 := testLog(t)
			m2 := NewManager(newProvider(t, s.config(t, srv, log2)), journal, "pod-0-uid", log2, opts)
			if _, err := m2.Start(context.Background()); err != nil {
				t.Fatalf("second Start: %v", err)
			}
			if !strings.Contains(logs2.String(), "reclaimed the activation a previous run left behind") {
				t.Error("the second Start did not reclaim the journaled activation")
			}
			if err := m2.Stop(context.Background()); err != nil {
				t.Fatalf("second Stop: %v", err)
			}
			noLeak(t, srv)
		})
	}
}

// A SIGTERM while the activation request is in flight: the server took the seat, the
// answer never came; Start must give the seat back before returning.
func TestManagerCancelDuringActivation(t *testing.T) {
	for _, s := range setups() {
		t.Run(s.name, func(t *testing.T) {
			srv := startServer(t, 1, 0)
			srv.SetActivationDelay(time.Minute)
			log, _ := testLog(t)
			_, journal := journalIn(t)
			m := NewManager(newProvider(t, s.config(t, srv, log)), journal, "pod-0-uid", log, fastOptions(s.provider))

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				// Cancel once the server has taken the seat (or give up waiting, and let
				// the assertions below report it).
				for deadline := time.Now().Add(10 * time.Second); srv.Activations() == 0 && time.Now().Before(deadline); {
					time.Sleep(5 * time.Millisecond)
				}
				cancel()
			}()
			_, err := m.Start(ctx)
			if srv.Activations() == 0 {
				t.Fatal("the activation never reached the server")
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Start = %v; want context.Canceled", err)
			}
			t.Logf("error: %v", err)
			if _, found := loadRecord(t, journal); found {
				t.Error("journal record left after the cancelled activation was deactivated")
			}
			noLeak(t, srv)
		})
	}
}

// A SIGTERM that came before Start: nothing is sent.
func TestManagerStartCancelledBeforehand(t *testing.T) {
	srv := startServer(t, 1, 0)
	log, _ := testLog(t)
	_, journal := journalIn(t)
	m := NewManager(newProvider(t, Config{Provider: ProviderKeygenRelay, URL: srv.URL}), journal, "web-0", log, fastOptions(ProviderKeygenRelay))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start = %v; want context.Canceled", err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("the server got %d requests", n)
	}
	if _, found := loadRecord(t, journal); found {
		t.Error("journal record left")
	}
}

// svinit SIGKILLed (or its node dead) with the child running: the next start, possibly
// under a new pod UID, finds the journal and reclaims the seat.
func TestManagerCrashReclaim(t *testing.T) {
	for _, s := range setups() {
		t.Run(s.name, func(t *testing.T) {
			srv := startServer(t, 1, 0)
			log, _ := testLog(t)
			_, journal := journalIn(t)
			m := NewManager(newProvider(t, s.config(t, srv, log)), journal, "web-0-uid1", log, fastOptions(s.provider))
			if _, err := m.Start(context.Background()); err != nil {
				t.Fatalf("Start: %v", err)
			}
			m.abandon()

			// With one seat, the new pod only gets one if the old pod's seat is reclaimed.
			m2 := NewManager(newProvider(t, s.config(t, srv, log)), journal, "web-0-uid2", log, fastOptions(s.provider))
			if _, err := m2.Start(context.Background()); err != nil {
				t.Fatalf("Start after the crash: %v", err)
			}
			if srv.Holds("web-0-uid1") || !srv.Holds("web-0-uid2") {
				t.Errorf("after reclaim: old holds %v, new holds %v; want false, true", srv.Holds("web-0-uid1"), srv.Holds("web-0-uid2"))
			}
			if err := m2.Stop(context.Background()); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			noLeak(t, srv)
		})
	}
}

// A crash between journaling the intent and journaling the activation id: the record has
// no id, and reclaim deactivates by instance.
func TestManagerReclaimIntentOnly(t *testing.T) {
	srv := startServer(t, 1, 0)
	log, _ := testLog(t)
	_, journal := journalIn(t)
	p := newProvider(t, Config{Provider: ProviderKeygenRelay, URL: srv.URL})
	if _, err := p.Activate(context.Background(), "web-0"); err != nil {
		t.Fatal(err)
	}
	if err := journal.Save(context.Background(), Record{Instance: "web-0", Provider: ProviderKeygenRelay, State: StateActivating}); err != nil {
		t.Fatal(err)
	}
	m := NewManager(p, journal, "web-0", log, fastOptions(ProviderKeygenRelay))
	if _, err := m.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if n := srv.Count("DELETE", "/v1/nodes/web-0"); n != 1 {
		t.Errorf("%d releases before the new claim; want 1", n)
	}
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	noLeak(t, srv)
}

// A record made with another provider is not handed to this one.
func TestManagerReclaimOtherProvider(t *testing.T) {
	srv := startServer(t, 1, 0)
	log, logs := testLog(t)
	_, journal := journalIn(t)
	if err := journal.Save(context.Background(), Record{Instance: "web-0", Provider: ProviderOPSWAT, State: StateActive, ActivationID: "web-0"}); err != nil {
		t.Fatal(err)
	}
	m := NewManager(newProvider(t, Config{Provider: ProviderKeygenRelay, URL: srv.URL}), journal, "web-0", log, fastOptions(ProviderKeygenRelay))
	if _, err := m.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if !strings.Contains(logs.String(), "another license provider") {
		t.Error("no error logged about the other provider's record")
	}
	if n := srv.Count("DELETE", "/v1/nodes/web-0"); n != 0 {
		t.Errorf("the relay got %d releases for an OPSWAT record", n)
	}
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	noLeak(t, srv)
}

func TestManagerHeartbeatKeepsLease(t *testing.T) {
	srv := startServer(t, 1, 2*time.Second) // heartbeats every ~667ms
	log, _ := testLog(t)
	_, journal := journalIn(t)
	m := NewManager(newProvider(t, Config{Provider: ProviderKeygenRelay, URL: srv.URL}), journal, "web-0", log, fastOptions(ProviderKeygenRelay))
	lease, err := m.Start(context.Background())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if lease.TTL != 2*time.Second {
		t.Fatalf("lease TTL = %s; want the relay's expires_in, 2s", lease.TTL)
	}
	began := time.Now()
	waitFor(t, "4 heartbeats", 30*time.Second, func() bool { return srv.Count("PUT", "/v1/nodes/web-0") >= 5 })
	t.Logf("4 heartbeats in %s (TTL 2s)", time.Since(began))
	if n := srv.Lapsed(); n != 0 {
		t.Errorf("%d leases lapsed while heartbeating", n)
	}
	if !srv.Holds("web-0") {
		t.Error("lease lost while heartbeating")
	}
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	noLeak(t, srv)
}

// The relay culled the lease (a long GC pause, a network partition): the next heartbeat
// claims a new one.
func TestManagerHeartbeatAfterLapse(t *testing.T) {
	srv := startServer(t, 1, time.Second)
	log, _ := testLog(t)
	_, journal := journalIn(t)
	m := NewManager(newProvider(t, Config{Provider: ProviderKeygenRelay, URL: srv.URL}), journal, "web-0", log, fastOptions(ProviderKeygenRelay))
	if _, err := m.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	srv.Lapse("web-0")
	waitFor(t, "the lease to be claimed again", 10*time.Second, func() bool { return srv.Activations() == 2 && srv.Holds("web-0") })
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	noLeak(t, srv)
}

// fakeProvider scripts the answers of a license server that addresses activations by id.
type fakeProvider struct {
	mu          sync.Mutex
	next        int
	live        map[string]bool
	beats       int
	goneOnBeat  int // the heartbeat with this number reports the lease gone
	activations int
}

func (f *fakeProvider) Activate(context.Context, string) (Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	f.activations++
	id := "act-" + string(rune('0'+f.next))
	f.live[id] = true
	return Lease{ID: id, TTL: 150 * time.Millisecond}, nil
}

func (f *fakeProvider) Heartbeat(_ context.Context, _ string, l Lease) (Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.beats++
	if f.beats == f.goneOnBeat {
		delete(f.live, l.ID)
	}
	if !f.live[l.ID] {
		return Lease{}, ErrNotFound
	}
	return l, nil
}

func (f *fakeProvider) Deactivate(_ context.Context, _ string, l Lease) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.live[l.ID] {
		return ErrNotFound
	}
	delete(f.live, l.ID)
	return nil
}

func (f *fakeProvider) state() (live, activations int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.live), f.activations
}

func TestManagerHeartbeatLeaseGoneReactivates(t *testing.T) {
	f := &fakeProvider{live: map[string]bool{}, goneOnBeat: 2}
	log, _ := testLog(t)
	_, journal := journalIn(t)
	m := NewManager(f, journal, "web-0", log, fastOptions("fake"))
	lease, err := m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the re-activation", 10*time.Second, func() bool { return m.Lease().ID != lease.ID })
	rec, _ := loadRecord(t, journal)
	if rec.ActivationID != m.Lease().ID || rec.State != StateActive {
		t.Errorf("journal after re-activation = %+v; want active %s", rec, m.Lease().ID)
	}
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if live, n := f.state(); live != 0 || n != 2 {
		t.Errorf("fake server: %d live, %d activations; want 0 and 2", live, n)
	}
}

func TestManagerNilProviderDoesNothing(t *testing.T) {
	p, err := New(Config{Provider: ProviderNone})
	if err != nil || p != nil {
		t.Fatalf("New(none) = %v, %v; want nil, nil", p, err)
	}
	m := NewManager(p, nil, "web-0", zerolog.Nop(), ManagerOptions{})
	if l, err := m.Start(context.Background()); err != nil || l.ID != "" {
		t.Errorf("Start = %+v, %v", l, err)
	}
	if err := m.Stop(context.Background()); err != nil {
		t.Errorf("Stop = %v", err)
	}
}

// The key must not reach a log line, an error or the journal, whatever goes wrong.
func TestManagerKeyNeverLeaks(t *testing.T) {
	srv := startServer(t, 1, 0)
	log, logs := testLog(t)
	path, journal := journalIn(t)
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	opts := fastOptions(ProviderOPSWAT)
	opts.Timeout = 500 * time.Millisecond
	cfg := Config{Provider: ProviderOPSWAT, URL: srv.URL, Key: testKey, Log: log}

	m := NewManager(newProvider(t, cfg), journal, "web-0", log, opts)
	_, err := m.Start(context.Background())
	note(err)
	data, _ := os.ReadFile(path)
	assertNoKey(t, "journal", string(data))
	srv.Down()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	note(m.Stop(ctx))
	cancel()
	_, err = NewManager(newProvider(t, cfg), journal, "web-0", log, opts).Start(context.Background())
	note(err)
	if err := srv.Up(); err != nil {
		t.Fatal(err)
	}
	srv.SetUnavailable(true)
	_, err = NewManager(newProvider(t, cfg), journal, "web-0", log, opts).Start(context.Background())
	note(err)
	srv.SetUnavailable(false)
	m = NewManager(newProvider(t, cfg), journal, "web-0", log, opts)
	_, err = m.Start(context.Background())
	note(err)
	note(m.Stop(context.Background()))

	wrong := cfg
	wrong.Key = testKey + "-wrong"
	_, err = NewManager(newProvider(t, wrong), nil, "web-0", log, opts).Start(context.Background())
	note(err)
	if !errors.Is(err, ErrPermanent) {
		t.Errorf("Start with a wrong key = %v; want ErrPermanent", err)
	}

	leaky := Config{Provider: ProviderExec, Key: testKey, Log: log, Exec: ExecConfig{
		Activate: helperArgv(t, "leak-key"), Deactivate: helperArgv(t, "leak-key"), Env: []string{helperEnv + "=1"}, Runner: cmdRunner{},
	}}
	_, err = NewManager(newProvider(t, leaky), nil, "web-0", log, opts).Start(context.Background())
	note(err)

	if len(errs) < 5 {
		t.Fatalf("only %d errors collected; the scenario did not fail where expected: %q", len(errs), errs)
	}
	for _, e := range errs {
		assertNoKey(t, "error", e)
	}
	assertNoKey(t, "log", logs.String())
	if !strings.Contains(logs.String(), Redacted) {
		t.Error("no redacted value in the log; the scenario did not exercise redaction")
	}
	noLeak(t, srv)
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{ErrNoSeats, 69},
		{ErrPermanent, 78},
		{ErrRetryable, 75},
		{context.DeadlineExceeded, 75},
		{errors.New("journal: disk full"), 75},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d; want %d", tc.err, got, tc.want)
		}
	}
}
