package state

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Tracker is the running svinit's side: it keeps the State and writes the file on every
// change. It is safe for concurrent use (the license heartbeat renews the lease from its
// own goroutine). A Tracker with an empty path keeps nothing.
type Tracker struct {
	path string
	log  zerolog.Logger

	mu     sync.Mutex
	st     State
	failed bool // a write failed; logged once
}

// NewTracker returns a Tracker for the svinit process self that writes to path.
func NewTracker(path string, self Process, log zerolog.Logger) *Tracker {
	return &Tracker{path: path, log: log, st: State{Version: Version, Svinit: self}}
}

// Path returns the state file's path.
func (t *Tracker) Path() string { return t.path }

// Update applies change to the state and writes it.
func (t *Tracker) Update(change func(*State)) {
	if t == nil || t.path == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	change(&t.st)
	t.st.Updated = time.Now().UTC()
	if err := Write(t.path, t.st); err != nil {
		if !t.failed {
			t.log.Warn().Err(err).Str("state_file", t.path).Msg("cannot write the state file; svinit status will not see this svinit (set --state-file to a writable path)")
		}
		t.failed = true
	}
}

// Phase records that svinit entered phase. Entering the phase it is in writes nothing: each
// write costs a file creation and a rename, on the stop path too.
func (t *Tracker) Phase(phase string) {
	if t == nil || t.path == "" {
		return
	}
	t.mu.Lock()
	same := t.st.Phase == phase
	t.mu.Unlock()
	if !same {
		t.Update(func(s *State) { s.Phase = phase })
	}
}
