// Package supervisor is svinit's life cycle in one place: Life.Run goes through the steps
// in order, each behind a small interface, and Signals is the one goroutine that owns the
// signals.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/account"
	"github.com/svinit/svinit/internal/config"
	"github.com/svinit/svinit/internal/environ"
	"github.com/svinit/svinit/internal/lease"
	"github.com/svinit/svinit/internal/license"
	"github.com/svinit/svinit/internal/lock"
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

// Supervisor runs one program as an init.
type Supervisor struct {
	cfg      config.Config
	log      zerolog.Logger
	version  string
	childEnv []string // svinit's environment less the license key, unless asked
	reaper   *reaper.Reaper
	// inherited are the descriptors above stderr svinit was started with, for the child
	// alone: close-on-exec from the start, before svinit-net's check or any command runs.
	inherited []int
	user      *account.Account  // nil without --user
	provider  license.Provider  // nil without --license-provider
	ledger    *license.Ledger   // set with --license-state k8s-secret:NAME
	net       *license.Helper   // svinit-net for the network checks; nil without any
	leaseAPI  *license.LeaseAPI // set with --lock k8s-lease:NAME
	holder    string            // this run's identity in the Lease
	license   *license.Manager  // set once a seat is held
	plan      *render.Plan      // the templates, checked; written once the lock is held
	state     *state.Tracker

	redactor     *license.Redactor
	reloadSignal unix.Signal // --license-reload-signal; 0: none
	// templateSignal is --reload-signal, sent after --template-watch changed a file; 0: none.
	templateSignal unix.Signal
	// licenseMu orders the license file's rewrites with the child's start: a license that
	// changes is on disk before the child starts, or signalled to it after.
	licenseMu   sync.Mutex
	childPID    int    // 0 until the child is started
	licenseFile []byte // what --license-file holds now, and its key
	licenseKey  string
}

// Params are what a Supervisor is built from.
type Params struct {
	Config     config.Config
	Log        zerolog.Logger
	Version    string
	Env        []string // svinit's environment, secrets from files already expanded
	LicenseKey string
	Redactor   *license.Redactor // guards svinit's log; secrets a provider learns are added
	Reaper     *reaper.Reaper    // runs the license commands; the signal goroutine drives it
}

// New checks everything that can be checked before anything is taken, and reports every
// problem together; a problem with PROGRAM alone means exit 127 or 126 (ProgramExitCode),
// any other exit 2. It reads files but writes none.
func New(p Params) (*Supervisor, error) {
	s := &Supervisor{cfg: p.Config, log: p.Log, version: p.Version, childEnv: p.Env, reaper: p.Reaper, redactor: p.Redactor, inherited: inheritedFDs()}
	if p.Config.LicenseReloadSignal != "" {
		sig, err := reloadSignal("--license-reload-signal", p.Config.LicenseReloadSignal)
		if err != nil {
			return nil, err
		}
		if p.Config.LicenseFile == "" {
			return nil, fmt.Errorf("--license-reload-signal %s: it tells the child that --license-file changed; set --license-file too", p.Config.LicenseReloadSignal)
		}
		s.reloadSignal = sig
	}
	if err := s.checkTemplateWatch(); err != nil {
		return nil, err
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
	s.redactor.Add(checkPasswords(p.Config.WaitFor, p.Config.Ready)...) // a check's command may say one
	errs = append(errs, checkCommands("--wait-for", p.Config.WaitFor, s.childEnv), checkCommands("--ready", p.Config.Ready, s.childEnv))
	if needsNet(p.Config.WaitFor, p.Config.Ready) {
		if s.net, err = license.NewHelper(s.helper(), s.redactor); err != nil {
			errs = append(errs, fmt.Errorf("--wait-for, --ready: the network checks need %w", err))
		}
	}
	if name := p.Config.Lock.Lease; name != "" && !p.Config.DryRun { // a dry run takes no lock
		if s.leaseAPI, err = license.NewLeaseAPI(name, s.helper(), s.redactor); err != nil {
			errs = append(errs, fmt.Errorf("--lock %s%s: %w", config.LeasePrefix, name, err))
		}
		s.holder, err = leaseHolder(p.Config.PodName)
		errs = append(errs, err)
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

// reloadSignal parses option's value, a signal the child is sent to reload: one it can catch.
func reloadSignal(option, value string) (unix.Signal, error) {
	sig, err := signals.Parse(value)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%s: %w", option, err)
	case sig == unix.SIGKILL || sig == unix.SIGSTOP:
		return 0, fmt.Errorf("%s %s: the program cannot catch %s, which would end or freeze it at every change: use the signal it reloads on, e.g. HUP", option, value, signals.Name(sig))
	}
	return sig, nil
}

// checkTemplateWatch checks --template-watch and --reload-signal.
func (s *Supervisor) checkTemplateWatch() error {
	var errs []error
	if s.cfg.TemplateWatch && len(s.cfg.Templates) == 0 {
		errs = append(errs, errors.New("--template-watch: it watches the --template sources; set --template too"))
	}
	if s.cfg.ReloadSignal != "" {
		sig, err := reloadSignal("--reload-signal", s.cfg.ReloadSignal)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !s.cfg.TemplateWatch:
			errs = append(errs, fmt.Errorf("--reload-signal %s: it tells the child that --template-watch rendered the templates again; set --template-watch too", s.cfg.ReloadSignal))
		}
		s.templateSignal = sig
	}
	return config.Join(errs...)
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

// Run goes through the life cycle (Life.Run) with the steps New checked, its signals
// owned by sigs, and returns the code svinit exits with.
func (s *Supervisor) Run(sigs *Signals) int {
	code := s.life(sigs).Run()
	letStopWaitersSee() // as PID 1, svinit's exit ends them
	return code
}

// life builds the life cycle's steps from the configuration and what New checked: the one
// place that wires them.
func (s *Supervisor) life(sigs *Signals) *Life {
	s.state = state.NewTracker(s.statePath(), state.Self(nil), s.log)
	policy, _ := lock.ParsePolicy(s.cfg.LockOnTimeout) // validated by config
	templates := templatesStep{state: s.state, log: s.log}
	if len(s.cfg.Templates) > 0 {
		templates.plan = s.plan
	}
	checks := checkRunner(s.cfg.CheckTimeout, reaperRunner{r: s.reaper, dieWithSvinit: true}, s.childEnv, s.net, s.redactor)
	return &Life{
		Dependencies: dependenciesStep{checks: s.cfg.WaitFor, timeout: s.cfg.WaitTimeout, attempt: checks.Run, state: s.state, log: s.log},
		Readiness:    readinessStep{checks: s.cfg.Ready, interval: s.cfg.ReadyInterval, attempt: checks.Run, state: s.state, log: s.log},
		Lease:        s.leaseStep(policy),
		Lock: &lockStep{state: s.state, opts: lock.Options{
			Path:      s.cfg.Lock.File,
			Timeout:   s.cfg.LockTimeout,
			OnTimeout: policy,
			Heartbeat: s.cfg.LockHeartbeat,
			Poll:      s.cfg.LockPoll,
			Logger:    s.log,
			Version:   s.version,
		}},
		Templates: templates,
		Watch:     s.watchStep(),
		License:   licenseStep{s},
		Child:     &childStep{s: s, inherited: s.inherited},
		CleanUp:   cleanUpStep{reaper: s.reaper, state: s.state, log: s.log},
		Record:    stateRecorder{state: s.state, argv: s.cfg.Program, readiness: len(s.cfg.Ready) > 0},
		Signals:   sigs,
		Forward: Forwarding{
			Rewrite:   s.cfg.Rewrite,
			KillGroup: s.cfg.KillGroup,
			Grace:     s.cfg.Grace,
			StopDelay: s.cfg.StopDelay,
		},
		RemapExit: s.cfg.RemapExit,
		Argv:      s.cfg.Program,
		Log:       s.log,
	}
}

// leaseStep builds --lock k8s-lease:NAME's step; one that does nothing without it.
func (s *Supervisor) leaseStep(policy lock.Policy) *leaseStep {
	step := &leaseStep{state: s.state, budget: s.cfg.LeaseRenewDeadline}
	if s.leaseAPI == nil {
		return step
	}
	step.holder = s.holder
	step.path = config.LeasePrefix + s.cfg.Lock.Lease
	step.lease = lease.New(s.leaseAPI, lease.Options{
		Name:          s.cfg.Lock.Lease,
		Identity:      s.holder,
		Duration:      s.cfg.LeaseDuration,
		RenewDeadline: s.cfg.LeaseRenewDeadline,
		RetryPeriod:   s.cfg.LeaseRetryPeriod,
		Timeout:       s.cfg.LockTimeout,
		OnTimeout:     policy,
		Log:           s.log,
	})
	return step
}

// cleanUpStep ends every process the child or a check left behind, and reaps them all.
type cleanUpStep struct {
	reaper *reaper.Reaper
	state  *state.Tracker
	log    zerolog.Logger
}

// Run sends SIGTERM, waits a short while bounded by the stop budget, sends SIGKILL, then
// reaps until no child is left.
func (s cleanUpStep) Run(deadline time.Time) {
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
	s.log.Info().Dur("wait_ms", wait).Msg("terminating the processes left behind")
	if s.awaitReaped(wait) {
		return
	}
	n := signalDescendants(unix.SIGKILL)
	s.log.Warn().Int("count", n).Msg("processes left after SIGTERM, sent SIGKILL")
	if !s.awaitReaped(reapTimeout) {
		s.log.Error().Dur("waited_ms", reapTimeout).Msg("processes left that cannot be reaped (uninterruptible sleep?)")
	}
}

func (s cleanUpStep) awaitReaped(d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return s.reaper.WaitNoChildren(ctx) == nil
}
