package e2e

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/k8s/fakeapi"
)

// leased starts svinit as PID 1 with --lock k8s-lease:web against the API server double, its
// svinit-net pointed there as in a pod, over a child that records its signals.
func leased(t *testing.T, api *fakeapi.Server, pod string, extra ...string) (*svinit, string) {
	t.Helper()
	rec := filepath.Join(t.TempDir(), "rec")
	env := append(api.Env(), "REC="+rec, "GODEBUG=asyncpreemptoff=1", "SVINIT_POD_NAME="+pod)
	args := append([]string{"--lock", "k8s-lease:web"}, extra...)
	return startSvinit(t, modes[0], "record", env, append(args, "--", selfBin)...), rec
}

// The Lease is held, named by this run's identity, exactly while svinit runs its program, and
// cleared as the last step of a clean stop.
func TestLeaseHeldWhileTheProgramRunsAndClearedLast(t *testing.T) {
	api := fakeapi.Start(t)
	s, rec := leased(t, api, "web-0", "--lease-retry-period", "100ms")
	waitLine(t, rec, "ready")
	holder, _ := api.Holder("web")
	if !strings.HasPrefix(holder, "web-0_") || len(holder) != len("web-0_")+8 {
		t.Fatalf("holder %q while the program runs, want web-0_ and 8 hex digits", holder)
	}
	// As PID 1 of its namespace, svinit's pid means nothing here: the state file's content
	// does.
	if _, st := s.status(); st.Lease == nil || !st.Lease.Held || st.Lease.Path != "k8s-lease:web" || st.Lease.Holder != holder {
		t.Errorf("status %+v", st.Lease)
	}
	poll(t, "a renewal", func() bool { return len(api.Writes()) >= 3 })
	s.Signal(unix.SIGTERM)
	if code := s.Wait(); code != 0 { // the recorder exits 0 on SIGTERM
		t.Fatalf("exit %d, want the program's 0", code)
	}
	if h, _ := api.Holder("web"); h != "" {
		t.Errorf("holder %q after a clean stop, want it cleared", h)
	}
	if spec := api.Spec("web"); spec["leaseDurationSeconds"] != float64(1) {
		t.Errorf("spec after the release: %v", spec)
	}
	if _, st := s.status(); st.Phase != "exited" || st.Lease == nil || st.Lease.Held {
		t.Errorf("status after exit %+v", st.Lease)
	}
}

// A second svinit waits while the first holds the Lease, and starts its program as soon as
// the first has stopped: long before the Lease would have expired.
func TestLeaseSuccessorStartsAtOnce(t *testing.T) {
	api := fakeapi.Start(t)
	first, rec1 := leased(t, api, "web-0", "--lease-retry-period", "100ms")
	waitLine(t, rec1, "ready")
	second, rec2 := leased(t, api, "web-1", "--lease-retry-period", "100ms", "--lease-duration", "600s")
	if _, st := second.awaitPhase("waiting-for-lock"); st.Lease == nil || st.Lease.Held {
		t.Fatalf("second: %+v, want waiting for the Lease", st.Lease)
	}
	first.Signal(unix.SIGTERM)
	if code := first.Wait(); code != 0 {
		t.Fatalf("first exit %d", code)
	}
	stopped := time.Now()
	waitLine(t, rec2, "ready")
	if d := time.Since(stopped); d > 60*time.Second {
		t.Errorf("second started %s after the first stopped", d)
	}
	holder, _ := api.Holder("web")
	if !strings.HasPrefix(holder, "web-1_") {
		t.Errorf("holder %q, want the second", holder)
	}
	// Never two holders: every write names one holder, the releases none, in turn.
	writes := slices.Compact(api.Writes())
	if len(writes) != 3 || !strings.HasPrefix(writes[0], "web-0_") || writes[1] != "" || writes[2] != holder {
		t.Errorf("holders written %q, want web-0, cleared, web-1", writes)
	}
	second.Signal(unix.SIGTERM)
	second.Wait()
}

// SIGTERM while svinit waits for the Lease ends the wait with 143, and this run has written
// nothing: the holder keeps it.
func TestLeaseWaiterStoppedTakesNothing(t *testing.T) {
	api := fakeapi.Start(t)
	first, rec1 := leased(t, api, "web-0", "--lease-retry-period", "100ms")
	waitLine(t, rec1, "ready")
	second, rec2 := leased(t, api, "web-1", "--lease-retry-period", "100ms")
	second.awaitPhase("waiting-for-lock")
	second.Signal(unix.SIGTERM)
	if code := second.Wait(); code != 143 {
		t.Errorf("waiter's exit %d, want 143", code)
	}
	if readFile(t, rec2) != "" {
		t.Errorf("the waiter's program ran: %q", readFile(t, rec2))
	}
	for _, w := range api.Writes() {
		if strings.HasPrefix(w, "web-1_") {
			t.Errorf("the stopped waiter wrote the Lease: holders written %q", api.Writes())
			break
		}
	}
	first.Signal(unix.SIGTERM)
	first.Wait()
}

// An API server away for longer than the renew deadline stops the program with the normal
// stop, and svinit exits 73; once the API is back, nothing more is written by this run.
func TestLeaseLostStopsTheProgram(t *testing.T) {
	api := fakeapi.Start(t)
	s, rec := leased(t, api, "web-0", "--lease-retry-period", "100ms", "--lease-renew-deadline", "1s", "--lease-duration", "4s", "--grace", "2s")
	waitLine(t, rec, "ready")
	api.SetDown(true)
	waitLine(t, rec, "SIGTERM")
	if code := s.Wait(); code != 73 {
		t.Fatalf("exit %d, want 73", code)
	}
	if !strings.Contains(s.Stderr.String(), "lease lost") {
		t.Errorf("no log line says the lease was lost:\n%s", s.Stderr.String())
	}
}

// A Lease name that is not one, or timings that could let two programs run, are refused
// before anything is taken.
func TestLeaseOptionsRefused(t *testing.T) {
	api := fakeapi.Start(t)
	for _, args := range [][]string{
		{"--lock", "k8s-lease:Web"},
		{"--lock", "k8s-lease:web", "--lease-duration", "10s", "--lease-renew-deadline", "8s", "--grace", "5s"},
	} {
		s := startSvinit(t, modes[1], "", api.Env(), append(args, "--", "/bin/true")...)
		if code := s.Wait(); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if _, ok := api.Holder("web"); ok {
			t.Errorf("%q: the Lease was taken", args)
		}
	}
	// Outside a pod: the API cannot be found, said before anything is taken.
	s := startSvinit(t, modes[1], "", nil, "--lock", "k8s-lease:web", "--", "/bin/true")
	if code := s.Wait(); code != 2 || !strings.Contains(s.Stderr.String(), "KUBERNETES_SERVICE_HOST") {
		t.Errorf("outside a pod: exit %d:\n%s", code, s.Stderr.String())
	}
	// A dry run takes no lock: it needs no API server.
	s = startSvinit(t, modes[1], "", nil, "--dry-run", "--lock", "k8s-lease:web")
	if code := s.Wait(); code != 0 {
		t.Errorf("--dry-run outside a pod: exit %d:\n%s", code, s.Stderr.String())
	}
}

// --lock FILE --lock k8s-lease:NAME holds both while the program runs, the file taken first,
// and gives both back on a clean stop: the lock file removed, the Lease cleared.
func TestFileLockAndLeaseTogether(t *testing.T) {
	api := fakeapi.Start(t)
	lockPath := filepath.Join(t.TempDir(), "lock")
	s, rec := leased(t, api, "web-0", "--lock", lockPath, "--lease-retry-period", "100ms")
	waitLine(t, rec, "ready")
	_, st := s.status()
	if holder, _ := api.Holder("web"); st.Lock == nil || !st.Lock.Held || st.Lock.Path != lockPath || st.Lease == nil || !st.Lease.Held || st.Lease.Holder != holder {
		t.Fatalf("while running: lock %+v, lease %+v, holder %q", st.Lock, st.Lease, holder)
	}
	if readFile(t, lockPath) == "" {
		t.Error("no lock file while the program runs")
	}
	s.Signal(unix.SIGTERM)
	if code := s.Wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if h, _ := api.Holder("web"); h != "" || readFile(t, lockPath) != "" {
		t.Errorf("after a clean stop: holder %q, lock file %q", h, readFile(t, lockPath))
	}
}
