// Package cli is svinit's edge: it subscribes to signals, parses the configuration, sets up
// logging and hands over to the supervisor, returning the code the process exits with.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/config"
	"github.com/svinit/svinit/internal/environ"
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
	sigs := make(chan os.Signal, 128)
	subscribed := signals.Subscribe(sigs)
	// A single slot is enough for SIGCHLD: it only means "go and reap", and one reap pass
	// collects every exit, however many SIGCHLDs coalesced.
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, unix.SIGCHLD)

	cfg, err := config.Parse(args[1:])
	if errors.Is(err, config.ErrHelp) {
		if cfg.Version {
			fmt.Fprintf(stdout, "svinit %s\n", version)
		} else {
			config.Usage(stdout)
		}
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "svinit: invalid configuration:\n%s\n", indent(err.Error()))
		return supervisor.ExitUsage
	}

	if err := refuseSetID(); err != nil {
		fmt.Fprintf(stderr, "svinit: %v\n", err)
		return supervisor.ExitUsage
	}
	env, err := environ.ExpandFiles(os.Environ(), cfg.EnvFile)
	if err != nil {
		fmt.Fprintf(stderr, "svinit: invalid configuration:\n  --env-file-suffix %s:\n%s\n", cfg.EnvFile, indent(indent(err.Error())))
		return supervisor.ExitUsage
	}
	key, _, err := license.LoadKey(func(name string) (string, bool) { return environ.Lookup(env, name) }, cfg.LicenseKeyFile)
	if err != nil {
		fmt.Fprintf(stderr, "svinit: invalid configuration:\n  --license-key-file: %v\n", err)
		return supervisor.ExitUsage
	}
	// Whatever svinit writes to stderr goes through the redactor: the key never reaches a
	// log line, even inside an error a library or a server produced.
	redactor := license.NewRedactor(key)
	stderr = redactor.Writer(stderr)
	log := newLogger(cfg, stderr)

	r := reaper.New(log)
	s, err := supervisor.New(supervisor.Params{
		Config: cfg, Log: log, Version: version, Env: env, LicenseKey: key, Redactor: redactor, Signals: sigs, Subscribed: subscribed, Reaper: r,
	})
	if err != nil {
		fmt.Fprintf(stderr, "svinit: invalid configuration:\n%s\n", indent(err.Error()))
		return supervisor.ExitUsage
	}
	if cfg.DryRun {
		return dryRun(s, stdout, stderr)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if reaper.NeedsSubreaper() {
		if err := reaper.SetSubreaper(); err != nil {
			log.Error().Err(err).Msg("cannot become a child subreaper")
			return supervisor.ExitInternal
		}
	}
	go r.Run(ctx, sigchld)

	log.Debug().Str("version", version).Int("pid", os.Getpid()).Msg("svinit starting")
	code := s.Run(ctx)
	log.Info().Int("exit_code", code).Msg("svinit exiting")
	return code
}

// dryRun renders the templates to stdout, so that a ConfigMap can be checked before it is
// deployed; nothing is started or written.
func dryRun(s *supervisor.Supervisor, stdout, stderr io.Writer) int {
	plan, err := s.PrepareTemplates()
	if err == nil {
		err = plan.Print(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "svinit: templates:\n%s\n", indent(err.Error()))
		return supervisor.ExitUsage
	}
	return 0
}

// logTime is RFC 3339 with milliseconds, fixed width: start-up events a few ms apart stay
// apart and in order, and the times line up.
const logTime = "2006-01-02T15:04:05.000Z07:00"

// newLogger logs times in UTC, as a container's logs are read beside other machines' (and
// local time would cost every start a read of /etc/localtime).
func newLogger(cfg config.Config, stderr io.Writer) zerolog.Logger {
	zerolog.TimestampFunc = func() time.Time { return time.Now().UTC() }
	zerolog.TimeFieldFormat = logTime
	w := stderr
	if cfg.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: stderr, NoColor: true, TimeFormat: logTime, TimeLocation: time.UTC}
	}
	level, _ := zerolog.ParseLevel(cfg.LogLevel) // validated by config.Parse
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
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
