package supervisor

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/svinit/svinit/internal/check"
	"github.com/svinit/svinit/internal/state"
)

// The state file's readiness: not ready, "not checked yet", in the same write as the child's
// start; then each round's verdict, with since moving only when the verdict changes.
func TestReadinessInTheStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	tr := state.NewTracker(path, state.Self(nil), zerolog.Nop())
	started := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	stateRecorder{state: tr, readiness: true}.ChildStarted(1, started)
	read := func() state.Ready {
		t.Helper()
		st, err := state.Read(path)
		if err != nil || st.Ready == nil {
			t.Fatalf("state %+v, %v", st, err)
		}
		return *st.Ready
	}
	if r := read(); r.Ready || r.Reason != state.NotCheckedYet || !r.Since.Equal(started) {
		t.Errorf("at the start: %+v", r)
	}
	step := readinessStep{state: tr}
	at := func(s int) time.Time { return started.Add(time.Duration(s) * time.Second) }
	for _, tc := range []struct {
		res   check.Result
		since time.Time
	}{
		{check.Result{Reason: "tcp://db:5432: refused", Checked: at(1)}, started},
		{check.Result{Ready: true, Checked: at(2)}, at(2)},
		{check.Result{Ready: true, Checked: at(3)}, at(2)},
		{check.Result{Reason: "tcp://db:5432: refused", Checked: at(4)}, at(4)},
	} {
		step.record(tc.res)
		r := read()
		if r.Ready != tc.res.Ready || r.Reason != tc.res.Reason || !r.Checked.Equal(tc.res.Checked) || !r.Since.Equal(tc.since) {
			t.Errorf("after %+v: %+v, want since %s", tc.res, r, tc.since)
		}
	}
	path2 := filepath.Join(t.TempDir(), "state.json")
	stateRecorder{state: state.NewTracker(path2, state.Self(nil), zerolog.Nop())}.ChildStarted(1, started)
	if st, err := state.Read(path2); err != nil || st.Ready != nil {
		t.Errorf("without --ready: %+v, %v; want no ready", st.Ready, err)
	}
}
