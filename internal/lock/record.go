package lock

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Record describes the owner of a lock. It is what the lock file holds, as one JSON line,
// so that an operator who finds the file (or a waiting pod's log) can tell who holds it.
type Record struct {
	Hostname string
	PID      int
	Instance string // random per Acquire; Release removes the file only if it still carries it
	Started  time.Time
	Version  string
	// BootID is the holder's kernel: a waiter on the same kernel trusts a free flock as proof
	// that the holder died, a waiter elsewhere relies on the heartbeat alone.
	BootID string
	// Heartbeat is the holder's refresh interval, so that waiters configured differently
	// still judge staleness by the holder's own interval.
	Heartbeat time.Duration
	// PIDNamespace and Group name the holder's program once it runs: a waiter in the same
	// PID namespace counts the lock held while a process of that group runs, even after
	// the holder and every copy of its flock are gone (see ProgramStarted). GroupStart is
	// when the group's leader started (clock ticks since boot, 0 when unknown): it tells
	// the program's group from a later one that re-used the number.
	PIDNamespace string
	Group        int
	GroupStart   uint64
}

// recordFile is the on-disk form: field names fixed here, the interval readable by a human.
type recordFile struct {
	Hostname  string    `json:"hostname"`
	PID       int       `json:"pid"`
	Instance  string    `json:"instance"`
	Started   time.Time `json:"started"`
	Version   string    `json:"version,omitempty"`
	BootID    string    `json:"boot_id,omitempty"`
	Heartbeat string    `json:"heartbeat,omitempty"`
	PIDNS     string    `json:"pid_namespace,omitempty"`
	// Last: ProgramStarted only lengthens the record.
	Group      int    `json:"program_group,omitempty"`
	GroupStart uint64 `json:"program_group_start,omitempty"`
}

// maxRecordSize bounds what a waiter reads of a lock file it did not write.
const maxRecordSize = 4096

func newRecord(version string, heartbeat time.Duration) Record {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	var id [16]byte
	// getrandom(2), as crypto/rand would call it, without linking its DRBG into PID 1; it
	// fills 16 bytes whole once the pool is ready, which it is long before a container runs.
	_, _ = unix.Getrandom(id[:], 0)
	return Record{
		Hostname:     host,
		PID:          os.Getpid(),
		Instance:     hex.EncodeToString(id[:]),
		Version:      version,
		BootID:       bootID(),
		Heartbeat:    heartbeat,
		PIDNamespace: pidNamespace(),
	}
}

func encodeRecord(r Record) ([]byte, error) {
	f := recordFile{
		Hostname:   r.Hostname,
		PID:        r.PID,
		Instance:   r.Instance,
		Started:    r.Started.UTC(),
		Version:    r.Version,
		BootID:     r.BootID,
		PIDNS:      r.PIDNamespace,
		Group:      r.Group,
		GroupStart: r.GroupStart,
	}
	if r.Heartbeat > 0 {
		f.Heartbeat = r.Heartbeat.String()
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode owner record: %w", err)
	}
	return append(b, '\n'), nil
}

// decodeRecord accepts only a record svinit wrote; anything else (a legacy `touch lock`, the
// SV Server's `echo sv > lock`, a half-written file) is a foreign lock.
func decodeRecord(b []byte) (Record, bool) {
	var f recordFile
	if err := json.Unmarshal(b, &f); err != nil || f.Instance == "" || f.Started.IsZero() {
		return Record{}, false
	}
	r := Record{
		Hostname:     f.Hostname,
		PID:          f.PID,
		Instance:     f.Instance,
		Started:      f.Started,
		Version:      f.Version,
		BootID:       f.BootID,
		PIDNamespace: f.PIDNS,
		Group:        f.Group,
		GroupStart:   f.GroupStart,
	}
	if d, err := time.ParseDuration(f.Heartbeat); err == nil && d > 0 {
		r.Heartbeat = d
	}
	return r, true
}
