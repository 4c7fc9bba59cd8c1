// Package state is svinit's state file: a small JSON document that the running svinit keeps
// current and that `svinit status` and `svinit stop` read from another process. It holds
// ids and times only, never a secret.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proc"
	"github.com/svinit/svinit/internal/regfile"
)

// Phases, in the order a life cycle goes through them. A phase whose step is not configured
// (no --lock, no --template, no license) is skipped.
const (
	WaitingForDependencies = "waiting-for-dependencies"
	WaitingForLock         = "waiting-for-lock"
	Rendering              = "rendering"
	Activating             = "activating"
	Running                = "running"
	Stopping               = "stopping"
	Exited                 = "exited"
)

// Version is the schema version of the file; a reader refuses another.
const Version = 1

// State is the content of the state file.
type State struct {
	Version int       `json:"version"`
	Phase   string    `json:"phase"`
	Updated time.Time `json:"updated"`
	Svinit  Process   `json:"svinit"`
	// Child is set once the child has started, and keeps its pid after it exited.
	Child   *Process `json:"child,omitempty"`
	Lock    *Lock    `json:"lock,omitempty"`
	License *License `json:"license,omitempty"`
	// Waiting is what --wait-for still misses, and why; kept when the wait failed.
	Waiting []Dependency `json:"waiting_for,omitempty"`
	// Ready is set once the child has started, with --ready only.
	Ready    *Ready `json:"ready,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"` // svinit's exit code, once phase is exited
}

// Process identifies a process: pid, when it started, and its start time in clock ticks
// since boot, which tells it from a later process that reused the pid.
type Process struct {
	PID        int       `json:"pid"`
	Started    time.Time `json:"started"`
	StartTicks uint64    `json:"start_ticks,omitempty"`
	Argv       []string  `json:"argv,omitempty"`
}

// Lock is --lock and, once taken, who holds it (this svinit).
type Lock struct {
	Path     string `json:"path"`
	Held     bool   `json:"held"`
	Instance string `json:"instance,omitempty"`
}

// License is the activation held: ids and times, never the key.
type License struct {
	Provider     string    `json:"provider"`
	Instance     string    `json:"instance"`
	ActivationID string    `json:"activation_id,omitempty"`
	LeaseExpires time.Time `json:"lease_expires,omitzero"`   // when the lease ends without a heartbeat
	Expires      time.Time `json:"license_expires,omitzero"` // when the license itself ends
}

// Dependency is a --wait-for check that still fails, and its last error.
type Dependency struct {
	Check string `json:"check"`
	Error string `json:"error"`
}

// Ready is what the last round of the --ready checks found.
type Ready struct {
	Ready   bool      `json:"ready"`
	Since   time.Time `json:"since"`            // when it became what it is
	Checked time.Time `json:"checked,omitzero"` // the last round; zero before the first
	Reason  string    `json:"reason,omitempty"` // why not: the first failing check and its error
}

// NotCheckedYet is the reason of a child whose first round of --ready checks has not
// finished.
const NotCheckedYet = "not checked yet"

// Default paths, in the order svinit tries them: /run is a tmpfs in most containers, /tmp
// is writable where /run is not (a non-root user).
var defaultPaths = []string{"/run/svinit/state.json", "/tmp/svinit/state.json"}

// WritePath returns the state file a svinit without --state-file keeps: the first default
// whose directory it can use (see usableDir). When it can use none, it is the first default,
// the file `svinit status` and `svinit stop` then look for (ReadPath), so that the warning
// about the failed write names the path the readers report.
func WritePath() string {
	for _, p := range defaultPaths {
		if usableDir(filepath.Dir(p)) == nil {
			return p
		}
	}
	return defaultPaths[0]
}

// usableDir creates dir if needed and tells whether it may hold the state file: a directory
// itself (not a symlink to one), writable by svinit, and that no other user could have
// prepared to swap the file (owned by root or svinit's user, not writable by group or
// others), since /tmp/svinit may be created by anyone first.
func usableDir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s: not a directory", dir)
	case !ok || foreignOwner(st) || othersMayWrite(fi):
		return fmt.Errorf("%s: another user could write in it", dir)
	}
	return unix.Access(dir, unix.W_OK)
}

// ReadPath returns the state file `svinit status` reads without --state-file: the first
// default that exists, in the order svinit tries them. Not the newest: a child running as
// another user could write a newer /tmp/svinit/state.json and make a root probe, or a
// preStop `svinit stop`, act on the pid of its choosing.
func ReadPath() string {
	for _, p := range defaultPaths {
		if _, err := os.Lstat(p); err == nil { // a symlink too, for Read to refuse loudly
			return p
		}
	}
	return defaultPaths[0]
}

// Write replaces the file at path with st, atomically (temporary file, rename) so that a
// reader never sees half a state. It does not fsync: the state describes processes that a
// crash of the machine ends anyway.
func Write(path string, st State) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Chmod(0o644) // readable by an operator's `svinit status`, whatever the umask
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// ErrNoState means no svinit has written the state file.
var ErrNoState = errors.New("no state file")

// ErrUntrusted means the state file may not be svinit's: another user could have written it,
// or it names a process that is not provably the svinit that wrote it. Nothing in it is
// acted on.
var ErrUntrusted = errors.New("state file not trusted")

// ErrGone means the svinit the state file names has exited (its pid may be another's now).
var ErrGone = errors.New("not running")

// maxSize bounds what Read reads: the file is a few hundred bytes.
const maxSize = 1 << 20

// Read reads the state file at path. It refuses, with ErrUntrusted, a file that another user
// could have planted: a symlink (never followed), anything but a regular file, a file owned
// by neither root nor the caller, or one that group or others can write.
func Read(path string) (State, error) {
	f, err := regfile.Open(path, false)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return State{}, fmt.Errorf("%s: %w (is svinit running with this --state-file?)", path, ErrNoState)
	case errors.Is(err, regfile.ErrNotRegular):
		return State{}, fmt.Errorf("%s: %w: %w (another user may have planted it): remove it", path, ErrUntrusted, err)
	case err != nil:
		return State{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return State{}, err
	}
	if err := trusted(path, fi); err != nil {
		return State{}, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSize))
	if err != nil {
		return State{}, err
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil || st.Version != Version {
		return State{}, fmt.Errorf("%s: not a version %d svinit state file", path, Version)
	}
	return st, nil
}

// trusted checks the opened state file fi is one only root or the caller could have written.
func trusted(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: %w: its owner is unknown", path, ErrUntrusted)
	}
	if foreignOwner(st) {
		return fmt.Errorf("%s: %w: owned by uid %d, neither root nor you (uid %d), so another user may have planted it: remove it, or name svinit's own with --state-file", path, ErrUntrusted, st.Uid, os.Geteuid())
	}
	if othersMayWrite(fi) {
		return fmt.Errorf("%s: %w: others can write it (mode %#o; svinit writes 0644): remove it", path, ErrUntrusted, uint32(fi.Mode().Perm()))
	}
	return nil
}

// foreignOwner says whether a file belongs to neither root nor the caller: another user
// may have put it there.
func foreignOwner(st *syscall.Stat_t) bool { return st.Uid != 0 && st.Uid != uint32(os.Geteuid()) }

// othersMayWrite says whether the group or others may write fi.
func othersMayWrite(fi fs.FileInfo) bool { return fi.Mode().Perm()&0o022 != 0 }

// Self describes the calling process.
func Self(argv []string) Process {
	return Process{PID: os.Getpid(), Started: time.Now().UTC(), StartTicks: StartTicks(os.Getpid()), Argv: argv}
}

// Alive reports whether p is still running: its pid exists, is not a zombie, and started
// when p did (not a later process that reused the pid).
func (p Process) Alive() bool {
	st, err := proc.ReadStat(p.PID)
	return err == nil && !st.Exited() && (p.StartTicks == 0 || st.StartTicks == p.StartTicks)
}

// Frozen reports whether p, still the process it was, is stopped by a signal.
func (p Process) Frozen() bool {
	st, err := proc.ReadStat(p.PID)
	return err == nil && st.Frozen() && (p.StartTicks == 0 || st.StartTicks == p.StartTicks)
}

// ProveSvinit tells whether p, the svinit of a state file, is still that svinit, before
// anyone signals it or trusts what the file says of it: nil when it is, ErrGone when it has
// exited, ErrUntrusted when the file cannot be its (no start time recorded, or a process
// that started then but is not an svinit).
func (p Process) ProveSvinit() error {
	if p.StartTicks == 0 {
		return fmt.Errorf("%w: it records no start time for pid %d, so that pid cannot be proved to be its svinit", ErrUntrusted, p.PID)
	}
	if !p.Alive() {
		return fmt.Errorf("svinit pid %d: %w", p.PID, ErrGone)
	}
	return runsSvinit(p.PID)
}

// StartTicks returns when pid started, in clock ticks since boot; 0 when unknown.
func StartTicks(pid int) uint64 {
	st, _ := proc.ReadStat(pid)
	return st.StartTicks
}
