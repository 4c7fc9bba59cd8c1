package license

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/svinit/svinit/internal/atomicfile"
	"github.com/svinit/svinit/internal/regfile"
)

// Record states.
const (
	// StateActivating: an activation was (about to be) requested and its outcome is not
	// known; the server may hold a seat for the instance under an id svinit never learned,
	// so giving back means deactivating by instance too.
	StateActivating = "activating"
	// StateActive: every seat that may be held is named by ActivationID, Earlier,
	// ByInstance and Pending.
	StateActive = "active"
)

// Record is what the journal keeps of an instance's activations: ids only, never the key.
// Giving back what it names (Manager.Release) deactivates every seat Record.seats lists.
type Record struct {
	Instance string `json:"instance"`
	Provider string `json:"provider"`
	State    string `json:"state"`
	// ActivationID is the activation held now, if its id is known.
	ActivationID string `json:"activation_id,omitempty"`
	// Earlier are ids of activations taken before ActivationID that may still hold a seat
	// (a heartbeat answered with a new id): they are given back with it.
	Earlier []string `json:"earlier_activation_ids,omitempty"`
	// ByInstance gives back by instance too, in StateActive: an attempt whose answer was
	// lost may hold a seat under an id never learned, or a heartbeat may move the lease to
	// a new id before the journal learns it.
	ByInstance bool `json:"by_instance,omitempty"`
	// Pending are seats an earlier give-back could not give back, perhaps of another
	// instance id (a previous run's): tried again at every stop and start until they go.
	Pending []Seat    `json:"pending,omitempty"`
	Updated time.Time `json:"updated"`
}

// Seat is one thing to give back: activation ID of Instance, or every seat of Instance when
// ID is empty.
type Seat struct {
	Instance string `json:"instance"`
	ID       string `json:"activation_id,omitempty"`
}

func (s Seat) String() string {
	if s.ID == "" {
		return "every seat of " + s.Instance
	}
	return s.ID
}

// ids returns every activation id the record names, the one held now first, each once.
func (r Record) ids() []string {
	var ids []string
	for _, id := range append([]string{r.ActivationID}, r.Earlier...) {
		if id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// seats returns what giving back r deactivates, each once: the seat held now first, as the
// one most surely taken, then the earlier ids, the instance (when an id may be unknown) and
// the pending seats.
func (r Record) seats() []Seat {
	var seats []Seat
	add := func(s Seat) {
		if !slices.Contains(seats, s) {
			seats = append(seats, s)
		}
	}
	ids := r.ids()
	for _, id := range ids {
		add(Seat{Instance: r.Instance, ID: id})
	}
	if r.State != StateActive || r.ByInstance || len(ids) == 0 && len(r.Pending) == 0 {
		add(Seat{Instance: r.Instance})
	}
	for _, s := range r.Pending {
		add(s)
	}
	return seats
}

// only returns the record that names just seats, each where r named it (seats of another
// instance in Pending).
func (r Record) only(seats []Seat) Record {
	o := Record{Instance: r.Instance, Provider: r.Provider, State: StateActive, Updated: time.Now().UTC()}
	for _, s := range seats {
		switch {
		case s.Instance != r.Instance:
			o.Pending = append(o.Pending, s)
		case s.ID == "":
			o.ByInstance = true
		case s.ID == r.ActivationID:
			o.ActivationID = s.ID
		default:
			o.Earlier = append(o.Earlier, s.ID)
		}
	}
	return o
}

// Store keeps at most one Record across restarts of svinit. Journal keeps it in a file;
// a Kubernetes Secret can keep it the same way.
type Store interface {
	// Load returns the record, or found false when there is none.
	Load(ctx context.Context) (rec Record, found bool, err error)
	// Save replaces the record durably: when Save returns, a crash cannot lose it.
	Save(ctx context.Context, rec Record) error
	// Delete removes the record durably; deleting nothing is not an error.
	Delete(ctx context.Context) error
}

// Journal is a Store in one file (--license-state), which must be on a volume that outlives
// the container and must not be shared with another running instance. The file is never
// followed through a symlink: in a shared directory another user could plant one to make
// root's svinit read or replace any file.
type Journal struct {
	path string
}

// NewJournal returns a Journal kept at path.
func NewJournal(path string) *Journal { return &Journal{path: path} }

// journalVersion lets a later svinit recognise the format it reads. Version 2 added
// Earlier, version 3 ByInstance and Pending; an older svinit refuses a newer version rather
// than give back less than it names.
const journalVersion = 3

type journalFile struct {
	Version int `json:"version"`
	Record
}

// Load implements Store. It reads journals of every earlier version too.
func (j *Journal) Load(context.Context) (Record, bool, error) {
	data, err := j.read()
	if errors.Is(err, os.ErrNotExist) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("license journal: %w", err)
	}
	var f journalFile
	if err := json.Unmarshal(data, &f); err != nil || f.Version < 1 || f.Version > journalVersion || f.Instance == "" {
		return Record{}, false, fmt.Errorf("license journal %s: not a version %d journal; check the activation it names by hand, then delete the file", j.path, journalVersion)
	}
	return f.Record, true, nil
}

// read reads the journal without following a symlink, and without blocking on a FIFO.
func (j *Journal) read() ([]byte, error) {
	f, err := regfile.Open(j.path, false)
	switch {
	case errors.Is(err, regfile.ErrNotRegular):
		return nil, fmt.Errorf("%s: %w: remove it, or point --license-state at a directory only svinit's user can write", j.path, err)
	case err != nil:
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJournal+1))
	if err == nil && len(data) > maxJournal {
		err = fmt.Errorf("%s: larger than %d bytes, which no journal svinit writes is: remove it, or point --license-state elsewhere", j.path, maxJournal)
	}
	return data, err
}

// maxJournal bounds what is read of a journal: a record with every id a run can take is a
// few KiB; a planted or runaway file must not fill svinit's memory.
const maxJournal = 1 << 20

// refuseSymlink fails when a symlink stands where the journal goes. Replacing it would not
// follow it; refusing says that someone planted it.
func (j *Journal) refuseSymlink() error {
	fi, err := os.Lstat(j.path)
	if err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return j.symlinkError()
	}
	return nil
}

func (j *Journal) symlinkError() error {
	return fmt.Errorf("%s is a symlink, which svinit never follows; remove it, or point --license-state at a directory only svinit's user can write", j.path)
}

// Save implements Store: it writes a temporary file, fsyncs it, renames it over the journal
// and fsyncs the directory, so a crash leaves either the old record or the new one. The file
// belongs to svinit's user, whoever owned the one it replaces.
func (j *Journal) Save(_ context.Context, rec Record) error {
	if err := j.refuseSymlink(); err != nil {
		return fmt.Errorf("license journal: %w", err)
	}
	data, err := json.MarshalIndent(journalFile{Version: journalVersion, Record: rec}, "", "  ")
	if err != nil {
		return fmt.Errorf("license journal %s: %w", j.path, err)
	}
	self := &atomicfile.Owner{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	// No logger: a stale temporary file that stays is harmless, and the next Save retries it.
	if err := atomicfile.WriteFor(j.path, append(data, '\n'), 0o600, self, zerolog.Nop()); err != nil {
		return fmt.Errorf("license journal: %w", err)
	}
	return nil
}

// Delete implements Store.
func (j *Journal) Delete(context.Context) error {
	if err := j.refuseSymlink(); err != nil {
		return fmt.Errorf("license journal: %w", err)
	}
	err := os.Remove(j.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("license journal: %w", err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(j.path)); err != nil {
		return fmt.Errorf("license journal: %w", err)
	}
	return nil
}
