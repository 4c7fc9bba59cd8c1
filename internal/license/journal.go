package license

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/svinit/svinit/internal/atomicfile"
)

// Record states.
const (
	// StateActivating: an activation was (about to be) requested and its outcome is not
	// known; the server may hold a seat for the instance.
	StateActivating = "activating"
	// StateActive: the activation succeeded; ActivationID says which one.
	StateActive = "active"
)

// Record is what the journal keeps of an activation: ids only, never the key.
type Record struct {
	Instance     string    `json:"instance"`
	Provider     string    `json:"provider"`
	State        string    `json:"state"`
	ActivationID string    `json:"activation_id,omitempty"`
	Updated      time.Time `json:"updated"`
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
// the container and must not be shared with another running instance.
type Journal struct {
	path string
}

// NewJournal returns a Journal kept at path.
func NewJournal(path string) *Journal { return &Journal{path: path} }

// journalVersion lets a later svinit recognise the format it reads.
const journalVersion = 1

type journalFile struct {
	Version int `json:"version"`
	Record
}

// Load implements Store.
func (j *Journal) Load(context.Context) (Record, bool, error) {
	data, err := os.ReadFile(j.path)
	if errors.Is(err, os.ErrNotExist) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("license journal: %w", err)
	}
	var f journalFile
	if err := json.Unmarshal(data, &f); err != nil || f.Version != journalVersion || f.Instance == "" {
		return Record{}, false, fmt.Errorf("license journal %s: not a version %d journal; check the activation it names by hand, then delete the file", j.path, journalVersion)
	}
	return f.Record, true, nil
}

// Save implements Store: it writes a temporary file, fsyncs it, renames it over the journal
// and fsyncs the directory, so a crash leaves either the old record or the new one.
func (j *Journal) Save(_ context.Context, rec Record) error {
	data, err := json.MarshalIndent(journalFile{Version: journalVersion, Record: rec}, "", "  ")
	if err != nil {
		return fmt.Errorf("license journal %s: %w", j.path, err)
	}
	// No logger: a stale temporary file that stays is harmless, and the next Save retries it.
	if err := atomicfile.Write(j.path, append(data, '\n'), 0o600, zerolog.Nop()); err != nil {
		return fmt.Errorf("license journal: %w", err)
	}
	return nil
}

// Delete implements Store.
func (j *Journal) Delete(context.Context) error {
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
