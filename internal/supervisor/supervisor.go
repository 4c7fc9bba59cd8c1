// Package supervisor is svinit's life cycle in one place: start the program, forward its
// signals, stop it within the grace period, clean up what it left, and report its status.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/account"
	"github.com/svinit/svinit/internal/config"
	"github.com/svinit/svinit/internal/environ"
	"github.com/svinit/svinit/internal/license"
	"github.com/svinit/svinit/internal/reaper"
	"github.com/svinit/svinit/internal/render"
	"github.com/svinit/svinit/internal/signals"
	"github.com/svinit/svinit/internal/state"
)

// Timings of the clean-up after the main child has exited.
const (
	// descendantGrace is how long the processes the child left get between SIGTERM and
	// SIGKILL: short, as the container is going away, and never more than the stop
	// budget left.
	descendantGrace = 2 * time.Second
	// reapTimeout bounds the wait for SIGKILLed processes to be reaped; a process stuck in
	// uninterruptible sleep (a dead NFS server) must not keep svinit from exiting.
	reapTimeout = 5 * time.Second
)

// stoppingShown is how long a stop must last before the state file says "stopping". A
// child that exits at once, the usual docker stop, costs no write, and its exit is not
// held up by one: the state file goes straight from running to exited.
const stoppingShown = 100 * time.Millisecond

// Supervisor runs one program as an init.
type Supervisor struct {
	cfg      config.Config
	log      zerolog.Logger
	version  string
	childEnv []string // svinit's environment less the license key, unless asked
	sigs     <-chan os.Signal
	sigsAll  <-chan struct{} // closed once every signal is subscribed to
	reaper   *reaper.Reaper
	user     *account.Account // nil without --user
	provider license.Provider // nil without --license-provider
	ledger   *license.Ledger  // set with --license-state k8s-secret:NAME
	license  *license.Manager // set once a seat is held
	plan     *render.Plan     // the templates, checked; written once the lock is held
	state    *state.Tracker

	redactor     *license.Redactor
	reloadSignal unix.Signal // --license-reload-signal; 0: none
	// licenseMu orders the license file's rewrites with the child's start: a license that
	// changes is on disk before the child starts, or signalled to it after.
	licenseMu   sync.Mutex
	childPID    int    // 0 until the child is started
	licenseFile []byte // what --license-file holds now, and its key
	licenseKey  string
}

// Params are what a Supervisor is built from. Signals delivers every caught signal but
// SIGCHLD, which the reaper consumes; the caller subscribes before parsing anything, so
// that no signal is left to the Go runtime's default (exit 2, no clean-up), and the child
// is started once Subscribed is closed, so that none is lost.
type Params struct {
	Config     config.Config
	Log        zerolog.Logger
	Version    string
	Env        []string // svinit's environment, secrets from files already expanded
	LicenseKey string
	Redactor   *license.Redactor // guards svinit's log; secrets a provider learns are added
	Signals    <-chan os.Signal
	Subscribed <-chan struct{} // closed once Signals has every signal (signals.Subscribe)
	Reaper     *reaper.Reaper
}

// New checks everything that can be checked before anything is taken, and reports every
// problem together; a problem with PROGRAM alone means exit 127 or 126 (ProgramExitCode),
// any other exit 2. It reads files but writes none.
func New(p Params) (*Supervisor, error) {
	s := &Supervisor{cfg: p.Config, log: p.Log, version: p.Version, childEnv: p.Env, sigs: p.Signals, sigsAll: p.Subscribed, reaper: p.Reaper, redactor: p.Redactor}
	if p.Config.LicenseReloadSignal != "" {
		sig, err := signals.Parse(p.Config.LicenseReloadSignal)
		if err != nil {
			return nil, fmt.Errorf("--license-reload-signal: %w", err)
		}
		if p.Config.LicenseFile == "" {
			return nil, fmt.Errorf("--license-reload-signal %s: it tells the child that --license-file changed; set --license-file too", p.Config.LicenseReloadSignal)
		}
		s.reloadSignal = sig
	}
	if !p.Config.LicenseKeepKey {
		s.childEnv = license.ScrubEnv(p.Env)
	}
	var errs []error
	if p.Config.User != "" {
		u, switchTo, err := lookupUser(p.Config.User)
		if err != nil {
			errs = append(errs, err)
		} else {
			if switchTo {
				s.user = &u
			}
			s.childEnv = environ.Set(s.childEnv, "HOME", u.Home)
		}
	}
	provider, err := s.newLicenseProvider(p.LicenseKey)
	errs = append(errs, err)
	s.provider = provider
	if p.Config.LicenseProvider != license.ProviderNone && p.Config.LicenseProvider != "" {
		errs = append(errs, s.checkInstanceID())
	}
	if secret := p.Config.LicenseState.Secret; secret != "" && provider != nil {
		if s.ledger, err = license.NewLedger(secret, p.Config.PodName, p.Config.PodUID, s.helper(), s.redactor, s.log); err != nil {
			errs = append(errs, fmt.Errorf("--license-state %s: %w", &p.Config.LicenseState, err))
		}
	}
	errs = append(errs, checkLicenseFiles(p.Config, provider != nil))
	if len(p.Config.Program) > 0 && !p.Config.DryRun {
		// As the child will look for it: in its PATH, with its user's rights.
		errs = append(errs, checkProgram(p.Config.Program[0], s.childEnv, s.user))
	}
	if len(p.Config.Templates) > 0 || p.Config.DryRun {
		if s.plan, err = s.PrepareTemplates(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := config.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// ProgramExitCode returns the exit code of a problem with PROGRAM that New found: 127 when
// it is not found, 126 when it cannot be executed.
func ProgramExitCode(err error) (int, bool) {
	var se *startError
	if errors.As(err, &se) {
		return se.code, true
	}
	return 0, false
}

// Run goes through the whole life cycle and returns the code svinit exits with:
// lock -> render -> activate -> run -> stop -> clean up -> deactivate -> unlock. Each
// step that holds something undoes it in a deferred call, so every exit path gives back
// the seat and then the lock.
func (s *Supervisor) Run(ctx context.Context) (code int) {
	inherited := inheritedFDs()
	s.state = state.NewTracker(s.statePath(), state.Self(nil), s.log)
	defer func() { // the last thing: the seat and the lock are back
		s.exited(code)
		letStopWaitersSee()
	}()

	// Until the child exists, a SIGTERM or SIGINT cancels startup.ctx, which every step
	// that can wait takes.
	startup := watchStartup(ctx, s.sigs, s.log)
	held, err := s.takeLock(startup.ctx)
	if err != nil {
		return s.startupFailed(startup, "lock", err, lockExitCode(err))
	}
	if held != nil {
		defer func() {
			if err := held.Release(); err != nil {
				s.log.Error().Err(err).Str("lock", s.cfg.Lock).Msg("lock release failed")
			}
		}()
	}
	if err := s.renderTemplates(); err != nil {
		return s.startupFailed(startup, "render", err, ExitUsage)
	}
	var stopDeadline time.Time // the stop budget's end, once a stop signal came
	defer func() { s.deactivate(stopDeadline) }()
	if err := s.activate(startup.ctx); err != nil {
		return s.startupFailed(startup, "license", err, license.ExitCode(err))
	}
	if sig := startup.stop(); sig != 0 {
		return s.stoppedBeforeStart(sig, "spawn")
	}

	if s.sigsAll != nil {
		<-s.sigsAll // from now on a signal has a child to go to, and must not be lost
	}
	started := time.Now()
	pid, exited, release, err := s.spawnChild(append(slices.Clip(inherited), held.FD()))
	defer release() // after the child has been reaped: its thread may end
	if err != nil {
		var se *startError
		if errors.As(err, &se) {
			s.log.Error().Err(err).Str("program", se.program).Int("exit_code", se.code).Msg("cannot start the child")
			return se.code
		}
		s.log.Error().Err(err).Msg("cannot start the child")
		return ExitInternal
	}
	// The child's process group is its pid (Setpgid), recorded before anything else, for
	// a program that closes its copy of the lock's descriptor at once.
	if err := held.ProgramStarted(pid); err != nil {
		s.log.Warn().Err(err).Msg("the lock does not name the program's group; a waiter relies on its flock alone")
	}
	s.log.Info().Int("pid", pid).Strs("argv", s.cfg.Program).Msg("child started")
	s.state.Update(func(st *state.State) {
		st.Phase = state.Running
		st.Child = &state.Process{PID: pid, Started: started.UTC(), StartTicks: state.StartTicks(pid), Argv: s.cfg.Program}
	})
	held.DropWatch()
	closeFDs(inherited)
	if err := os.Chdir("/"); err != nil {
		s.log.Debug().Err(err).Msg("chdir / failed")
	}

	var ws unix.WaitStatus
	ws, stopDeadline = s.supervise(pid, exited)
	code = statusCode(ws)
	ev := s.log.Info().Int("pid", pid).Int("exit_code", code).Dur("elapsed_ms", time.Since(started))
	if ws.Signaled() {
		ev = ev.Str("signal", signals.Name(ws.Signal()))
	}
	ev.Msg("child exited")

	s.cleanUp(stopDeadline)

	if mapped := s.cfg.RemapExit.Map(code); mapped != code {
		s.log.Info().Int("exit_code", code).Int("reported", mapped).Msg("exit code remapped")
		code = mapped
	}
	return code
}

// startupFailed ends the start-up after step failed: with 128+N when a stop signal caused
// it (the wait was cancelled), else with code.
func (s *Supervisor) startupFailed(w *startupWatch, step string, err error, code int) int {
	if sig := w.stop(); sig != 0 {
		return s.stoppedBeforeStart(sig, step)
	}
	s.log.Error().Err(err).Str("step", step).Int("exit_code", code).Msg("start-up failed, nothing started")
	return code
}

// stoppedBeforeStart is the exit code of a start-up that a stop signal ended during step.
func (s *Supervisor) stoppedBeforeStart(sig unix.Signal, step string) int {
	s.log.Info().Str("signal", signals.Name(sig)).Str("step", step).Msg("stopped before the child started")
	return 128 + int(sig)
}

// supervise forwards signals to the child until it exits, and SIGKILLs its process group
// when it outlives the grace period after a stop signal. With --stop-delay the first
// SIGTERM is held back for the delay (a second one goes at once); the grace period counts
// from its arrival. It returns the child's status and the deadline of the stop budget (zero
// when nobody asked the child to stop).
func (s *Supervisor) supervise(pid int, exited <-chan unix.WaitStatus) (unix.WaitStatus, time.Time) {
	var (
		kill, delayed, stopping <-chan time.Time
		deadline                time.Time
	)
	for {
		select {
		case ws := <-exited:
			return ws, deadline
		case sig := <-s.sigs:
			sn := sig.(unix.Signal)
			firstStop := signals.IsStop(sn) && deadline.IsZero()
			if firstStop {
				deadline = time.Now().Add(s.cfg.Grace)
				kill = time.After(s.cfg.Grace)
			}
			switch {
			case firstStop && sn == unix.SIGTERM && s.cfg.StopDelay > 0:
				delayed = time.After(s.cfg.StopDelay)
			case sn == unix.SIGTERM && delayed != nil:
				delayed = nil // asked twice: no more waiting
				s.forward(pid, sn)
			default:
				s.forward(pid, sn)
			}
			if firstStop {
				// After the forward: the child's stop waits for no log line and no file.
				s.log.Info().Str("signal", signals.Name(sn)).Dur("grace_ms", s.cfg.Grace).Dur("delay_ms", s.cfg.StopDelay).Msg("stopping the child")
				stopping = time.After(stoppingShown)
			}
		case <-stopping:
			stopping = nil
			s.state.Phase(state.Stopping)
		case <-delayed:
			delayed = nil
			s.forward(pid, unix.SIGTERM)
		case <-kill:
			kill = nil
			s.log.Warn().Int("pid", pid).Dur("grace_ms", s.cfg.Grace).Msg("child outlived the grace period, sending SIGKILL to its process group")
			if err := unix.Kill(-pid, unix.SIGKILL); err != nil {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
	}
}

// forward passes sig on, rewritten, to the child or with --kill-group to its process group.
func (s *Supervisor) forward(pid int, sig unix.Signal) {
	to, ok := s.cfg.Rewrite.Apply(sig)
	if !ok {
		s.log.Debug().Str("signal", signals.Name(sig)).Msg("signal dropped by rewrite")
		return
	}
	target := pid
	if s.cfg.KillGroup {
		target = -pid
	}
	if err := unix.Kill(target, to); err != nil {
		s.log.Debug().Err(err).Str("signal", signals.Name(to)).Int("target", target).Msg("forward failed")
		return
	}
	if signals.IsStop(sig) {
		// A program frozen by SIGSTOP would leave the stop pending until --grace ends in
		// SIGKILL: continue it, as systemd does, so that it acts on it now.
		unix.Kill(target, unix.SIGCONT)
	}
	// Guarded: the names would be worked out for a disabled line, on every signal.
	if e := s.log.Debug(); e.Enabled() {
		e.Str("signal", signals.Name(to)).Str("received", signals.Name(sig)).Int("target", target).Msg("signal forwarded")
	}
}

// cleanUp ends every process the child left behind, and reaps them all: SIGTERM, a short
// wait bounded by the stop budget, SIGKILL, then reap until no child is left.
func (s *Supervisor) cleanUp(deadline time.Time) {
	// No child left means no descendant left (svinit is PID 1 or a subreaper): the usual
	// case, and it spares a walk over every process in /proc.
	if s.awaitReaped(0) || signalDescendants(unix.SIGTERM) == 0 {
		s.awaitReaped(reapTimeout)
		return
	}
	s.state.Phase(state.Stopping)
	wait := descendantGrace
	if !deadline.IsZero() {
		wait = min(wait, max(time.Until(deadline), 0))
	}
	s.log.Info().Dur("wait_ms", wait).Msg("terminating the processes the child left")
	if s.awaitReaped(wait) {
		return
	}
	n := signalDescendants(unix.SIGKILL)
	s.log.Warn().Int("count", n).Msg("processes left after SIGTERM, sent SIGKILL")
	if !s.awaitReaped(reapTimeout) {
		s.log.Error().Dur("waited_ms", reapTimeout).Msg("processes left that cannot be reaped (uninterruptible sleep?)")
	}
}

func (s *Supervisor) awaitReaped(d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return s.reaper.WaitNoChildren(ctx) == nil
}
