// Package cli is svinit's edge: it subscribes to signals, parses the configuration, sets up
// logging and hands over to the supervisor, returning the code the process exits with.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/buildinfo"
	"github.com/svinit/svinit/internal/config"
	"github.com/svinit/svinit/internal/environ"
	"github.com/svinit/svinit/internal/exitcode"
	"github.com/svinit/svinit/internal/license"
	"github.com/svinit/svinit/internal/reaper"
	"github.com/svinit/svinit/internal/signals"
	"github.com/svinit/svinit/internal/supervisor"
)

// Run runs svinit with args (os.Args) and returns its exit code. stdout is only written
// for --help and --version: otherwise it belongs to the child.
func Run(args []string, stdout, stderr io.Writer, version string) int {
	// "svinit status" and "svinit stop" talk to a running svinit; a PROGRAM of that name
	// goes after "--".
	if len(args) > 1 {
		switch args[1] {
		case "status":
			return runStatus(args[2:], stdout, stderr)
		case "stop":
			return runStop(args[2:], stdout, stderr)
		}
	}
	// First of all: until a signal is subscribed to, the Go runtime's default for it is to
	// exit at once, skipping every clean-up. Generously buffered: Notify never blocks, and a
	// full channel would drop a signal.
	caught := make(chan os.Signal, 128)
	subscribed := signals.Subscribe(caught)
	// A single slot is enough for SIGCHLD: it only means "go and reap", and one reap pass
	// collects every exit, however many SIGCHLDs coalesced.
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, unix.SIGCHLD)

	cfg, cfgErr := config.Parse(args[1:])
	if errors.Is(cfgErr, config.ErrHelp) {
		if cfg.Version {
			fmt.Fprintln(stdout, buildinfo.Describe("svinit", version))
		} else {
			config.Usage(stdout)
		}
		return 0
	}

	// One goroutine owns the signals from here to the exit: during the checks, a stop
	// signal ends them at once (they read files that may be pipes or on a hung mount:
	// secrets, templates, the http provider's config), and they take nothing.
	early := newLogger(cfg, stderr)
	r := reaper.New(early)
	sigs := supervisor.OwnSignals(supervisor.SignalSources{
		Signals: caught, Subscribed: subscribed, SIGCHLD: sigchld, Reap: func() { r.Reap() }, Log: early,
	})
	defer sigs.Close()
	ready := make(chan prepared, 1)
	go func() { ready <- prepare(cfg, cfgErr, stderr, version, r) }()
	var p prepared
	select {
	case p = <-ready:
	case <-sigs.Startup().Done():
	}
	if sig := sigs.Stopped(); sig != 0 {
		early.Info().Str("signal", signals.Name(sig)).Str("step", "checks").Msg("stopped before the child started")
		return exitcode.Signaled(sig)
	}
	if p.err != nil {
		problems := config.Problems(p.err)
		if code, ok := supervisor.ProgramExitCode(p.err); ok && len(problems) == 1 {
			fmt.Fprintf(p.stderr, "svinit: %v\n", p.err)
			return code
		}
		fmt.Fprintf(p.stderr, "svinit: invalid configuration:\n%s\n", indent(p.err.Error()))
		return exitcode.Usage
	}
	s, log := p.s, p.log
	if cfg.DryRun {
		return dryRun(s, stdout, p.stderr)
	}
	if reaper.NeedsSubreaper() {
		if err := reaper.SetSubreaper(); err != nil {
			log.Error().Err(err).Msg("cannot become a child subreaper")
			return exitcode.Internal
		}
	}
	log.Debug().Str("version", version).Int("pid", os.Getpid()).Msg("svinit starting")
	code := s.Run(sigs)
	log.Info().Int("exit_code", code).Msg("svinit exiting")
	return code
}

// prepared is what the checks before the start hand over: the supervisor, or every
// problem found, and svinit's redacted stderr and logger.
type prepared struct {
	s      *supervisor.Supervisor
	log    zerolog.Logger
	stderr io.Writer
	err    error
}

// prepare checks everything that can be known from the options, the environment and the
// file system, and reports every problem together (cfgErr, the configuration's, among
// them). It takes nothing: no lock, no file written, no license request.
func prepare(cfg config.Config, cfgErr error, stderr io.Writer, version string, r *reaper.Reaper) prepared {
	errs := []error{cfgErr, refuseSetID()}
	env, read, err := environ.ExpandFiles(os.Environ(), cfg.FileEnv, cfg.FileEnvSuffix())
	if err != nil {
		errs = append(errs, err)
		env = os.Environ() // for the checks that follow
	}
	var key string
	if cfg.LicenseKeyFile != "" || (cfg.LicenseProvider != "" && cfg.LicenseProvider != license.ProviderNone) {
		key, _, err = license.LoadKey(func(name string) (string, bool) { return environ.Lookup(env, name) }, cfg.LicenseKeyFile)
		errs = append(errs, err)
	}
	// Whatever svinit writes to stderr goes through the redactor: the key never reaches a
	// log line, even inside an error a library or a server produced.
	redactor := license.NewRedactor(key)
	p := prepared{stderr: redactor.Writer(stderr)}
	p.log = newLogger(cfg, p.stderr)
	p.s, err = supervisor.New(supervisor.Params{
		Config: cfg, Log: p.log, Version: version, Env: env, LicenseKey: key, Redactor: redactor, Reaper: r,
	})
	errs = append(errs, err)
	if p.err = config.Join(errs...); p.err == nil && len(read) > 0 {
		p.log.Info().Strs("names", read).Msg("secrets read from files")
	}
	return p
}

// dryRun renders the templates to stdout, so that a ConfigMap can be checked before it is
// deployed; nothing is started or written.
func dryRun(s *supervisor.Supervisor, stdout, stderr io.Writer) int {
	if err := s.Templates().Print(stdout); err != nil {
		fmt.Fprintf(stderr, "svinit: --dry-run: %v\n", err)
		return exitcode.Usage
	}
	return exitcode.OK
}

// logTime is RFC 3339 with milliseconds, fixed width: start-up events a few ms apart stay
// apart and in order, and the times line up.
const logTime = "2006-01-02T15:04:05.000Z07:00"

// newLogger logs times in UTC, as a container's logs are read beside other machines' (and
// local time would cost every start a read of /etc/localtime). The time is added by a hook
// of this logger's own rather than zerolog's package-level settings, which the logger of the
// start-up checks would race.
func newLogger(cfg config.Config, stderr io.Writer) zerolog.Logger {
	w := stderr
	if cfg.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: stderr, NoColor: true, TimeFormat: logTime, TimeLocation: time.UTC}
	}
	level, _ := zerolog.ParseLevel(cfg.LogLevel) // validated by config.Parse
	return zerolog.New(w).Level(level).Hook(utcTime{})
}

// utcTime stamps each event with the time in UTC, milliseconds included.
type utcTime struct{}

func (utcTime) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str(zerolog.TimestampFieldName, time.Now().UTC().Format(logTime))
}

// refuseSetID refuses a setuid or setgid svinit: it would run the child, and every file it
// writes, with the file owner's rights on behalf of whoever started it.
func refuseSetID() error {
	exe, err := os.Stat("/proc/self/exe")
	setID := err == nil && exe.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0
	if setID || os.Getuid() != os.Geteuid() || os.Getgid() != os.Getegid() {
		return errors.New("refusing to run setuid or setgid: remove the bit (chmod u-s,g-s on the svinit binary); to run the child as another user, start svinit as root with --user")
	}
	return nil
}

// indent indents every line of s, one problem a line, under its heading.
func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }
