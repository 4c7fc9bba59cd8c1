package supervisor

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/account"
	"github.com/svinit/svinit/internal/atomicfile"
	"github.com/svinit/svinit/internal/config"
	"github.com/svinit/svinit/internal/environ"
	"github.com/svinit/svinit/internal/lease"
	"github.com/svinit/svinit/internal/license"
	"github.com/svinit/svinit/internal/lock"
	"github.com/svinit/svinit/internal/render"
	"github.com/svinit/svinit/internal/signals"
	"github.com/svinit/svinit/internal/state"
)

// minDeactivate is the least time deactivation gets after a stop whose budget the child
// used up: without it a seat would always leak to the journal after a SIGKILL at --grace.
// With the margin for the reaping and the unlock it makes the 5 s that --grace must stay
// under the platform's stop budget, so that the default --grace fits docker stop's 10 s.
const minDeactivate = 3 * time.Second

// lockStep is --lock; it does nothing without one.
type lockStep struct {
	opts  lock.Options
	state *state.Tracker
	held  *lock.Lock // nil until taken
}

// Take waits for the lock and takes it.
func (l *lockStep) Take(ctx context.Context) error {
	if l.opts.Path == "" {
		return nil
	}
	l.state.Update(func(st *state.State) {
		st.Phase = state.WaitingForLock
		st.Lock = &state.Lock{Path: l.opts.Path}
	})
	held, err := lock.Acquire(ctx, l.opts)
	if err != nil {
		return err
	}
	l.held = held
	l.state.Update(func(st *state.State) { st.Lock.Held, st.Lock.Instance = true, held.Owner().Instance })
	return nil
}

func (l *lockStep) FD() int { return l.held.FD() }

// ChildStarted records the child's group in the lock, and then drops the directory watch
// the wait used: its close would have held the child's start back.
func (l *lockStep) ChildStarted(pid int) {
	if err := l.held.ProgramStarted(pid); err != nil {
		l.opts.Logger.Warn().Err(err).Msg("the lock does not name the program's group; a waiter relies on its flock alone")
	}
	l.held.DropWatch()
}

func (l *lockStep) Release() {
	if err := l.held.Release(); err != nil {
		l.opts.Logger.Error().Err(err).Str("lock", l.opts.Path).Msg("lock release failed")
	}
}

// minLeaseRelease is the least time the clearing of the Lease gets after a stop whose budget
// is spent: one API call. Should it fail, the Lease expires for the others after its duration.
const minLeaseRelease = time.Second

// leaseStep is --lock k8s-lease:NAME; it does nothing without one.
type leaseStep struct {
	lease  *lease.Lease // nil without a Lease
	path   string       // k8s-lease:NAME
	holder string
	// budget bounds the clearing when nobody asked the child to stop.
	budget time.Duration
	state  *state.Tracker
}

// Take waits for the Lease, takes it and keeps renewing it.
func (l *leaseStep) Take(ctx context.Context, lost func()) error {
	if l.lease == nil {
		return nil
	}
	l.state.Update(func(st *state.State) {
		st.Phase = state.WaitingForLock
		st.Lease = &state.Lock{Path: l.path}
	})
	if err := l.lease.Acquire(ctx); err != nil {
		return err
	}
	l.state.Update(func(st *state.State) { st.Lease.Held, st.Lease.Holder = true, l.holder })
	l.lease.Hold(lost)
	return nil
}

func (l *leaseStep) Lost() bool { return l.lease != nil && l.lease.Lost() }

// Release stops the renewals and clears the holder within what is left of the stop budget.
func (l *leaseStep) Release(deadline time.Time) {
	if l.lease == nil {
		return
	}
	budget := l.budget
	if !deadline.IsZero() {
		budget = max(time.Until(deadline), minLeaseRelease)
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	l.lease.Release(ctx)
}

// leaseHolder is this svinit run's identity in the Lease: the pod's name (else the
// hostname) and a random part, so that two runs never both believe they hold it, and a
// restarted container waits for its predecessor's Lease to expire.
func leaseHolder(pod string) (string, error) {
	if pod == "" {
		pod, _ = os.Hostname()
	}
	var b [4]byte
	if n, err := unix.Getrandom(b[:], 0); err != nil || n != len(b) { // without crypto/rand's DRBG in PID 1
		return "", fmt.Errorf("lease holder identity: getrandom: %d bytes, %v", n, err)
	}
	return pod + "_" + hex.EncodeToString(b[:]), nil
}

// PrepareTemplates renders every --template in memory and checks them all; nothing is
// written. It needs no lock, so the dry run uses it too.
func (s *Supervisor) PrepareTemplates() (*render.Plan, error) {
	host, _ := os.Hostname()
	index, hasIndex, err := render.ReplicaIndex(s.cfg.ReplicaIndex, host)
	if err != nil {
		return nil, fmt.Errorf("--replica-index: %w", err)
	}
	return render.Prepare(s.cfg.Templates, render.Options{
		Mode:  os.FileMode(s.cfg.TemplateMode),
		Owner: s.childOwner(),
		Data: render.Data{
			Index: index, HasIndex: hasIndex, Hostname: host,
			Replicas: s.cfg.Replicas, HasReplicas: s.cfg.Replicas > 0,
			LookupEnv: func(name string) (string, bool) { return environ.Lookup(s.childEnv, name) },
		},
		Log: s.log,
	})
}

// Templates returns the templates New rendered in memory and checked.
func (s *Supervisor) Templates() *render.Plan { return s.plan }

// templatesStep writes the --template files New checked; it does nothing without any.
type templatesStep struct {
	plan  *render.Plan // nil without --template
	state *state.Tracker
	log   zerolog.Logger
}

// Write writes every template, or none.
func (t templatesStep) Write() error {
	if t.plan == nil {
		return nil
	}
	t.state.Phase(state.Rendering)
	if err := t.plan.Write(); err != nil {
		return err
	}
	t.log.Info().Strs("files", t.plan.Files()).Msg("templates rendered")
	return nil
}

// newLicenseProvider builds the configured provider; nil for none. Every problem is
// reported before anything starts.
func (s *Supervisor) newLicenseProvider(key string) (license.Provider, error) {
	cfg := license.Config{
		Provider: s.cfg.LicenseProvider,
		URL:      s.cfg.LicenseURL,
		Key:      key,
		Pool:     s.cfg.LicensePool,
		Redactor: s.redactor,
		Exec: license.ExecConfig{
			Activate:   s.cfg.LicenseActivateCmd,
			Heartbeat:  s.cfg.LicenseHeartbeatCmd,
			Deactivate: s.cfg.LicenseDeactivateCmd,
			Env:        s.childEnv,
			Runner:     reaperRunner{r: s.reaper},
		},
		Helper: s.helper(),
		Log:    s.log,
	}
	if s.cfg.LicenseHTTPConfig != "" {
		b, err := os.ReadFile(s.cfg.LicenseHTTPConfig)
		if err != nil {
			return nil, fmt.Errorf("--license-http-config: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg.HTTP); err != nil {
			return nil, fmt.Errorf("--license-http-config %s: %w", s.cfg.LicenseHTTPConfig, err)
		}
	}
	return license.New(cfg)
}

// helper says how to run svinit-net: with svinit's environment less the key, as the exec
// provider's commands get it.
func (s *Supervisor) helper() license.HelperConfig {
	return license.HelperConfig{Path: license.HelperPath(s.cfg.NetHelper), Version: s.version, Env: s.childEnv, Runner: reaperRunner{r: s.reaper}}
}

// checkInstanceID reports an instance id that the license server would refuse or that
// cannot be found, before any seat is asked for.
func (s *Supervisor) checkInstanceID() error {
	if s.cfg.LicenseState.Secret != "" && s.cfg.InstanceID == "" && (s.cfg.PodName == "" || s.cfg.PodUID == "") {
		return nil // config asks for the pod's name and UID
	}
	return license.CheckInstanceSource(s.cfg.InstanceID, s.cfg.PodName, s.cfg.PodUID, s.cfg.LicenseState.Path)
}

// checkLicenseFiles finds what would make writing --license-file, its key or the journal
// fail after a seat was taken, so that the start fails before it takes anything.
func checkLicenseFiles(cfg config.Config, licensed bool) error {
	var errs []error
	if cfg.LicenseFile != "" {
		for _, path := range []string{cfg.LicenseFile, cfg.LicenseFile + ".key"} {
			if err := atomicfile.CheckDst(path); err != nil {
				errs = append(errs, fmt.Errorf("--license-file %s: %w", cfg.LicenseFile, err))
				break
			}
		}
	}
	if journal := cfg.LicenseState.Path; licensed && journal != "" {
		if err := atomicfile.CheckDst(journal); err != nil {
			errs = append(errs, fmt.Errorf("--license-state %s: %w", journal, err))
		}
	}
	return config.Join(errs...)
}

// activate takes a license seat for the child's life; a no-op without a provider.
func (s *Supervisor) activate(ctx context.Context) error {
	if s.provider == nil {
		return nil
	}
	instance, err := license.InstanceID(s.cfg.InstanceID, s.cfg.PodName, s.cfg.PodUID, s.cfg.LicenseState.Path)
	if err != nil {
		return fmt.Errorf("license instance id: %w", err)
	}
	s.state.Update(func(st *state.State) {
		st.Phase = state.Activating
		st.License = &state.License{Provider: s.cfg.LicenseProvider, Instance: instance}
	})
	var store license.Store
	if s.ledger != nil {
		store = s.ledger
	} else if s.cfg.LicenseState.Path != "" {
		store = license.NewJournal(s.cfg.LicenseState.Path)
	}
	m := license.NewManager(s.provider, store, instance, s.log, license.ManagerOptions{
		Provider:       s.cfg.LicenseProvider,
		Timeout:        s.cfg.LicenseTimeout,
		RequestTimeout: s.cfg.LicenseRequestTimeout,
		OnLease:        s.leaseTaken,
	})
	if s.ledger != nil {
		// Before taking a seat: the seats of pods that died without giving theirs back may be
		// the ones this start needs.
		s.ledger.SweepFor(ctx, s.cfg.LicenseSweepTimeout, s.cfg.LicenseProvider, m)
	}
	if _, err := m.Start(ctx); err != nil {
		return err
	}
	s.license = m
	if s.cfg.LicenseFile == "" {
		return nil
	}
	lease := m.Lease() // a heartbeat may have replaced the one Start returned
	if len(lease.File) == 0 {
		// The program would start without its license. Configuration, not the server's
		// mood: the answers, as configured, carry no file, and no restart changes that.
		return fmt.Errorf("--license-file %s: %w: activated, but the %s provider handed out no license file; have it return one or drop --license-file",
			s.cfg.LicenseFile, license.ErrPermanent, s.cfg.LicenseProvider) // deactivated by the caller's clean-up
	}
	if _, err := s.installLicense(lease); err != nil {
		return err // deactivated by the caller's clean-up
	}
	return nil
}

// installLicense writes l's license file to --license-file and its key, if any, beside it
// (<license-file>.key), both 0600 and the child's, unless they hold it already. The two are
// replaced together, all or nothing, so that the program never finds a key beside a file it
// does not open; a license without a key removes a key file left by an earlier one. changed
// reports that another license replaced one written before.
func (s *Supervisor) installLicense(l license.Lease) (changed bool, err error) {
	s.licenseMu.Lock()
	defer s.licenseMu.Unlock()
	return s.installLicenseLocked(l)
}

func (s *Supervisor) installLicenseLocked(l license.Lease) (changed bool, err error) {
	if bytes.Equal(l.File, s.licenseFile) && l.FileKey == s.licenseKey {
		return false, nil
	}
	keyFile := s.cfg.LicenseFile + ".key"
	// The key is put in place first: a program that notices the new file finds its key.
	var files []atomicfile.File
	if l.FileKey != "" {
		files = append(files, atomicfile.File{Dst: keyFile, Content: []byte(l.FileKey), Mode: 0o600})
	}
	files = append(files, atomicfile.File{Dst: s.cfg.LicenseFile, Content: l.File, Mode: 0o600})
	if err := atomicfile.WriteAll(files, s.childOwner(), s.log); err != nil {
		return false, fmt.Errorf("write the license: %w", err)
	}
	if l.FileKey == "" && s.licenseKey != "" { // only a key file svinit wrote
		if err := os.Remove(keyFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn().Err(err).Str("file", keyFile).Msg("cannot remove the key of the license replaced")
		}
	}
	changed = s.licenseFile != nil
	s.licenseFile, s.licenseKey = l.File, l.FileKey
	return changed, nil
}

// childStep is the program, started through the reaper from a thread of its own (see
// startOnOwnThread), with the descriptors svinit inherited at their numbers.
type childStep struct {
	s         *Supervisor
	inherited []int // inheritedFDs, closed in svinit once the child has them
	release   func()
}

// Start records the child's pid for the license reload signal, under the lock the
// license rewrites take; then svinit lets go of what it only kept for the child.
func (c *childStep) Start(lockFD int) (int, <-chan unix.WaitStatus, error) {
	pid, exited, err := c.spawn(append(slices.Clip(c.inherited), lockFD))
	if err != nil {
		return 0, nil, err
	}
	closeFDs(c.inherited)
	if err := os.Chdir("/"); err != nil {
		c.s.log.Debug().Err(err).Msg("chdir / failed")
	}
	return pid, exited, nil
}

func (c *childStep) spawn(fds []int) (pid int, exited <-chan unix.WaitStatus, err error) {
	s := c.s
	s.licenseMu.Lock()
	defer s.licenseMu.Unlock()
	pid, exited, err = s.reaper.Start(func() (pid int, err error) {
		pid, c.release, err = startOnOwnThread(func() (int, error) { return spawn(s.cfg.Program, s.childEnv, s.user, fds) })
		return pid, err
	})
	if err == nil {
		s.childPID = pid
	}
	return pid, exited, err
}

func (c *childStep) Signal(target int, sig unix.Signal) error { return unix.Kill(target, sig) }

// Release ends the thread that started the child, once the child has been reaped.
func (c *childStep) Release() {
	if c.release != nil {
		c.release()
	}
}

// licenseRenewed rewrites --license-file when a heartbeat or a re-activation brought
// another license (the server culled the lease and leased another), and tells the child
// with --license-reload-signal. A child not started yet reads the new file when it starts;
// one whose exit was collected gets nothing, its pid may be another process's by now.
func (s *Supervisor) licenseRenewed(l license.Lease) {
	if s.cfg.LicenseFile == "" || len(l.File) == 0 {
		return // a renewal without a file (an extension) keeps the license
	}
	s.licenseMu.Lock()
	defer s.licenseMu.Unlock()
	if s.licenseFile == nil {
		return // Start's own lease: activate writes it, and fails the start if it cannot
	}
	changed, err := s.installLicenseLocked(l)
	if err != nil {
		s.log.Error().Err(err).Msg("cannot write the renewed license; the child keeps the old one")
		return
	}
	if !changed {
		return
	}
	ev := s.log.Warn().Str("file", s.cfg.LicenseFile).Bool("key_file", l.FileKey != "")
	if s.reloadSignal == 0 || s.childPID == 0 {
		ev.Msg("license changed: the server leased another license; license file rewritten")
		return
	}
	ev.Str("signal", signals.Name(s.reloadSignal)).Int("pid", s.childPID).Msg("license changed: the server leased another license; license file rewritten, signalling the child")
	if err := s.signalChildLocked(s.reloadSignal); err != nil {
		s.log.Info().Err(err).Str("signal", signals.Name(s.reloadSignal)).Msg("license reload signal not sent: the child has exited")
	}
}

// signalChildLocked sends sig to the child through the reaper, which refuses a pid whose
// exit it has collected: that pid may be another process's by now. The caller holds
// licenseMu, under which the child's pid is set.
func (s *Supervisor) signalChildLocked(sig unix.Signal) error {
	if s.childPID == 0 {
		return errors.New("no child started")
	}
	return s.reaper.Signal(s.childPID, sig)
}

// deactivate gives the seat back within what is left of the stop budget (deadline; zero
// when nobody asked the child to stop), and at least minDeactivate.
func (s *Supervisor) deactivate(deadline time.Time) {
	if s.license == nil {
		return
	}
	s.state.Phase(state.Stopping)
	budget := s.cfg.LicenseTimeout
	if !deadline.IsZero() {
		budget = max(time.Until(deadline), minDeactivate)
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	// The manager logs the deactivation itself, with its activation id.
	if err := s.license.Stop(ctx); err != nil {
		s.log.Error().Err(err).Dur("budget_ms", budget).Msg("license deactivation failed; the journal keeps it for the next start")
	}
}

// leaseTaken puts a new or renewed lease into the state file, and a changed license into
// --license-file.
func (s *Supervisor) leaseTaken(l license.Lease) {
	defer s.licenseRenewed(l)
	s.state.Update(func(st *state.State) {
		st.License.ActivationID, st.License.Expires = l.ID, l.Expires.UTC()
		st.License.LeaseExpires = time.Time{}
		if l.TTL > 0 {
			st.License.LeaseExpires = time.Now().Add(l.TTL).UTC()
		}
	})
}

// statePath is --state-file, else the first default svinit can write.
func (s *Supervisor) statePath() string {
	if s.cfg.StateFile != "" {
		return s.cfg.StateFile
	}
	return state.WritePath()
}

// licenseStep is the seat: the license half of the Supervisor, which activate and
// deactivate keep.
type licenseStep struct{ s *Supervisor }

func (l licenseStep) Activate(ctx context.Context) error { return l.s.activate(ctx) }
func (l licenseStep) Deactivate(deadline time.Time)      { l.s.deactivate(deadline) }
func (l licenseStep) Held() bool                         { return l.s.license != nil && l.s.license.Held() }

// stateRecorder keeps the state file.
type stateRecorder struct {
	state     *state.Tracker
	argv      []string
	readiness bool // --ready: the child is not ready until its checks say so
}

func (r stateRecorder) Enter(phase string) { r.state.Phase(phase) }

func (r stateRecorder) ChildStarted(pid int, started time.Time) {
	r.state.Update(func(st *state.State) {
		st.Phase = state.Running
		st.Child = &state.Process{PID: pid, Started: started.UTC(), StartTicks: state.StartTicks(pid), Argv: r.argv}
		if r.readiness { // in the same write: no reader sees the child running and no verdict
			st.Ready = &state.Ready{Since: started.UTC(), Reason: state.NotCheckedYet}
		}
	})
}

// Exited records svinit's exit code, once the seat and the lock are given back.
func (r stateRecorder) Exited(code int, seatHeld bool) {
	r.state.Update(func(st *state.State) {
		st.Phase, st.ExitCode = state.Exited, &code
		for _, l := range []*state.Lock{st.Lock, st.Lease} {
			if l != nil {
				l.Held = false
			}
		}
		if st.License != nil && seatHeld {
			return // deactivation failed: the journal keeps the id, and so does the state
		}
		st.License = nil
	})
}

// childOwner is who the files svinit writes for the child (rendered configs, the license
// file) belong to: the --user svinit switches to, or nil for the usual owner.
func (s *Supervisor) childOwner() *atomicfile.Owner {
	if s.user == nil {
		return nil
	}
	return &atomicfile.Owner{UID: s.user.UID, GID: s.user.GID}
}

// lookupUser resolves --user and checks that svinit may become that user. switchTo is false
// when svinit, not root, already runs as that user and group: there is nothing to change.
func lookupUser(spec string) (u account.Account, switchTo bool, err error) {
	u, err = account.System.Lookup(spec)
	if err != nil {
		return u, false, fmt.Errorf("--user: %w", err)
	}
	euid, egid := os.Geteuid(), os.Getegid()
	switch {
	case euid == 0:
		return u, true, nil
	case uint32(euid) != u.UID:
		return u, false, fmt.Errorf("--user %s: svinit runs as uid %d and cannot switch to uid %d; start it as root (it keeps root only for itself) or drop --user", spec, euid, u.UID)
	case uint32(egid) != u.GID:
		return u, false, fmt.Errorf("--user %s: svinit runs as gid %d and cannot switch to gid %d; start it as root (it keeps root only for itself) or drop --user", spec, egid, u.GID)
	}
	// Already that user: setting the groups would need privileges svinit does not have.
	return u, false, nil
}
