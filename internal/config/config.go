// Package config turns svinit's command line and SVINIT_* environment into one Config,
// parsed once at the edge; every other package takes plain values from it.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/rs/zerolog"

	"github.com/svinit/svinit/internal/check"
	"github.com/svinit/svinit/internal/lock"
	"github.com/svinit/svinit/internal/render"
	"github.com/svinit/svinit/internal/signals"
)

// EnvPrefix is the prefix of every variable that sets an option.
const EnvPrefix = "SVINIT"

// Config holds every setting. A field with a `flag` tag is an option; with an `env`
// tag it can also be set from SVINIT_<NAME>, and a flag given on the command line wins
// over its variable. The tags are also the source of --help.
type Config struct {
	Grace     time.Duration    `flag:"grace" env:"GRACE" default:"5s" desc:"time the child gets after SIGTERM/SIGINT before its process group is SIGKILLed; keep it 5s under the platform's stop budget (docker stop -t, terminationGracePeriodSeconds), the clean-up's share"`
	KillGroup bool             `flag:"kill-group" env:"KILL_GROUP" default:"false" desc:"forward signals to the child's whole process group, not only the child"`
	Rewrite   signals.Rewrites `flag:"rewrite" env:"REWRITE" desc:"rewrite a signal before forwarding it, FROM:TO (TO 0 drops it); repeatable, comma list in the variable"`
	RemapExit ExitCodes        `flag:"remap-exit" env:"REMAP_EXIT" desc:"report the child's exit code FROM as TO, e.g. 143:0; repeatable, comma list in the variable"`
	StopDelay time.Duration    `flag:"stop-delay" env:"STOP_DELAY" default:"0s" desc:"wait this long after SIGTERM before forwarding it, so that a load balancer stops sending traffic first; counts against --grace"`
	User      string           `flag:"user" env:"USER" desc:"run the child as USER[:GROUP], names (from /etc/passwd and /etc/group) or numbers, with its supplementary groups reset and HOME set; svinit keeps its own identity for the lock and the journal"`
	FileEnv   Names            `flag:"file-env" env:"FILE_ENV" desc:"secret from a file: the child gets NAME set to the content of the file NAME_FILE names (a regular file), and no NAME_FILE; NAME and NAME_FILE both set is an error; repeatable, comma list in the variable"`
	EnvFile   string           `flag:"env-file-suffix" env:"ENV_FILE_SUFFIX" desc:"the suffix --file-env appends to NAME for the variable that holds the path; unset: _FILE"`
	StateFile string           `flag:"state-file" env:"STATE_FILE" desc:"state file for svinit status and svinit stop; unset: /run/svinit/state.json, else /tmp/svinit/state.json"`
	LogFormat string           `flag:"log-format" env:"LOG_FORMAT" default:"json" desc:"log format on stderr: json or console"`
	LogLevel  string           `flag:"log-level" env:"LOG_LEVEL" default:"info" desc:"least severe log level shown: debug, info, warn, error"`

	WaitFor       check.List    `flag:"wait-for" env:"WAIT_FOR" desc:"before anything else, wait until CHECK passes: tcp://HOST:PORT (accepts a connection), http://URL or https://URL (answers 2xx), file:PATH (exists) or exec:COMMAND (exits 0); repeatable, comma list in the variable (a comma starts a check only before its scheme)"`
	WaitTimeout   time.Duration `flag:"wait-timeout" env:"WAIT_TIMEOUT" default:"60s" desc:"how long to wait for --wait-for before giving up with exit 124, naming what still fails; 0: for ever"`
	Ready         check.List    `flag:"ready" env:"READY" desc:"once the child runs, the child is ready while CHECK passes (same syntax as --wait-for), checked every --ready-interval; svinit status --ready tells; repeatable, comma list in the variable"`
	ReadyInterval time.Duration `flag:"ready-interval" env:"READY_INTERVAL" default:"10s" desc:"how often the --ready checks run"`
	CheckTimeout  time.Duration `flag:"check-timeout" env:"CHECK_TIMEOUT" default:"5s" desc:"the most one attempt of one --wait-for or --ready check may take; exec: checks run as svinit's user, not --user"`

	Lock          string        `flag:"lock" env:"LOCK" desc:"lock file to wait for, take and hold while the child runs (on the persistent volume)"`
	LockTimeout   time.Duration `flag:"lock-timeout" env:"LOCK_TIMEOUT" default:"60s" desc:"how long to wait for a lock held by someone else before --lock-on-timeout applies"`
	LockOnTimeout string        `flag:"lock-on-timeout" env:"LOCK_ON_TIMEOUT" default:"takeover" desc:"when the wait times out: takeover (remove a foreign or stale lock and take it; a live holder is never broken) or fail (exit 73)"`
	LockHeartbeat time.Duration `flag:"lock-heartbeat" env:"LOCK_HEARTBEAT" default:"5s" desc:"how often the holder refreshes the lock's mtime; a lock not refreshed for 3 heartbeats is stale"`
	LockPoll      bool          `flag:"lock-poll" env:"LOCK_POLL" default:"false" desc:"poll for the lock instead of using inotify (NFS and volumes whose changes inotify does not see)"`

	Templates    render.Specs `flag:"template" env:"TEMPLATES" desc:"render SRC (a file or a directory) to DST before the child starts, SRC:DST; repeatable, comma list in the variable"`
	ReplicaIndex string       `flag:"replica-index" env:"REPLICA_INDEX" desc:"replica index for templates (from the apps.kubernetes.io/pod-index label); unset: the hostname's trailing ordinal"`
	Replicas     int          `flag:"replicas" env:"REPLICAS" default:"0" desc:"replica count for templates ({{ .Replicas }}); 0: unknown"`
	TemplateMode render.Mode  `flag:"template-mode" env:"TEMPLATE_MODE" desc:"file mode of the rendered files, in octal; unset: each SRC's mode"`
	DryRun       bool         `flag:"dry-run" desc:"render the templates to stdout and exit, starting nothing"`

	LicenseProvider       string        `flag:"license-provider" env:"LICENSE_PROVIDER" default:"none" desc:"license provider: none, exec, http, opswat or keygen-relay"`
	NetHelper             string        `flag:"net-helper" env:"NET_HELPER" desc:"svinit-net, which makes svinit's network calls (the opswat, keygen-relay and http providers, k8s-secret:); unset: beside svinit's own executable"`
	LicenseURL            string        `flag:"license-url" env:"LICENSE_URL" desc:"base URL of the license server"`
	LicenseKeyFile        string        `flag:"license-key-file" env:"LICENSE_KEY_FILE" desc:"file holding the license key (a mounted Secret); unset: SVINIT_LICENSE_KEY, else LICENSE_KEY"`
	LicenseKeepKey        bool          `flag:"license-keep-key" env:"LICENSE_KEEP_KEY" default:"false" desc:"leave the license key variables in the child's environment"`
	LicenseState          LicenseState  `flag:"license-state" env:"LICENSE_STATE" desc:"journal of the activation, so that a seat a crash leaked is reclaimed on the next start: a file on the persistent volume, or k8s-secret:NAME for a ledger of every pod in the Secret NAME of the pod's namespace"`
	LicenseSweepTimeout   time.Duration `flag:"license-sweep-timeout" env:"LICENSE_SWEEP_TIMEOUT" default:"10s" desc:"with k8s-secret: the most the start waits for the zombie sweep, which gives back the activations of pods that died without deactivating"`
	LicenseFile           string        `flag:"license-file" env:"LICENSE_FILE" desc:"where to write the license file the server hands out, if any"`
	LicensePool           string        `flag:"license-pool" env:"LICENSE_POOL" desc:"keygen-relay: the pool to claim from, sent as the Relay-Pool header; unset: the relay's default"`
	LicenseReloadSignal   string        `flag:"license-reload-signal" env:"LICENSE_RELOAD_SIGNAL" desc:"signal sent to the child after --license-file (and its key) were rewritten for a changed license, e.g. HUP; unset: none"`
	LicenseTimeout        time.Duration `flag:"license-timeout" env:"LICENSE_TIMEOUT" default:"60s" desc:"deadline of the activation, retries included (exit 75 when it passes)"`
	LicenseRequestTimeout time.Duration `flag:"license-request-timeout" env:"LICENSE_REQUEST_TIMEOUT" default:"10s" desc:"deadline of one license request or command"`
	LicenseActivateCmd    Words         `flag:"license-activate-cmd" env:"LICENSE_ACTIVATE_CMD" desc:"exec provider: the command that activates, words split on spaces"`
	LicenseHeartbeatCmd   Words         `flag:"license-heartbeat-cmd" env:"LICENSE_HEARTBEAT_CMD" desc:"exec provider: the command that renews the lease; unset: the activate command again"`
	LicenseDeactivateCmd  Words         `flag:"license-deactivate-cmd" env:"LICENSE_DEACTIVATE_CMD" desc:"exec provider: the command that deactivates"`
	LicenseHTTPConfig     string        `flag:"license-http-config" env:"LICENSE_HTTP_CONFIG" desc:"http provider: JSON file of request templates and response fields"`
	InstanceID            string        `flag:"instance-id" env:"INSTANCE_ID" desc:"license instance (deployment) id; unset: POD_NAME-POD_UID, else a UUID kept beside --license-state"`
	PodName               string        `flag:"pod-name" env:"POD_NAME" desc:"the pod's name, from the downward API (metadata.name)"`
	PodUID                string        `flag:"pod-uid" env:"POD_UID" desc:"the pod's UID, from the downward API (metadata.uid)"`

	Help    bool `flag:"help" desc:"print this help and exit"`
	Version bool `flag:"version" desc:"print the version and exit"`

	// Program is the command to run: PROGRAM and its arguments.
	Program []string
}

// ErrHelp is returned when --help or --version asked for information instead of a run.
var ErrHelp = errors.New("help requested")

// resetter is implemented by list options: the first flag occurrence replaces what the
// variable set instead of adding to it.
type resetter interface{ Reset() }

// Parse reads the options from args (without the program name) over the environment read
// from the environment, and validates them. All problems are returned together.
func Parse(args []string) (Config, error) {
	var cfg Config
	envErrs := cfg.fromEnv()
	rest, given, err := parseArgs(cfg.flagSet(), args)
	var errs *multierror.Error
	for _, o := range Options() { // in a stable order
		if e, ok := envErrs[o.Flag]; ok && !given[o.Flag] {
			errs = multierror.Append(errs, e)
		}
	}
	if err != nil {
		errs = multierror.Append(errs, err)
	}
	cfg.Program = rest
	if cfg.Help || cfg.Version {
		return cfg, ErrHelp
	}
	if err := cfg.validate(); err != nil {
		errs = multierror.Append(errs, err)
	}
	return cfg, Join(errs)
}

// fromEnv applies each option's variable (or its default), and returns the problems by
// option name. A variable is parsed as its flag is: the same Set, the same rules.
//
// Only SVINIT_NAME is read: a login shell's USER, a pod's POD_NAME or an image's LOCK must
// not set options nobody asked for.
func (c *Config) fromEnv() map[string]error {
	errs := map[string]error{}
	v := reflect.ValueOf(c).Elem()
	for i, f := range reflect.VisibleFields(v.Type()) {
		name := f.Tag.Get("env")
		if name == "" {
			continue
		}
		value, set := os.LookupEnv(EnvPrefix + "_" + name)
		if set {
			err := optionValue(v.Field(i)).Set(value)
			if err == nil {
				continue
			}
			// Keep the default, so the bad variable is the one problem reported for it.
			errs[f.Tag.Get("flag")] = fmt.Errorf("%s_%s=%q: %v", EnvPrefix, name, value, explain(f.Type, err))
		}
		if def := f.Tag.Get("default"); def != "" {
			optionValue(v.Field(i)).Set(def) // the defaults parse: TestDefaultsParse
		}
	}
	return errs
}

// flagSet registers every option, its value already set from the environment.
func (c *Config) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("svinit", flag.ContinueOnError)
	v := reflect.ValueOf(c).Elem()
	for i, f := range reflect.VisibleFields(v.Type()) {
		name := f.Tag.Get("flag")
		if name == "" {
			continue
		}
		fs.Var(optionValue(v.Field(i)), name, f.Tag.Get("desc"))
	}
	return fs
}

// parseArgs reads options up to "--" or the first argument that is not an option, and
// returns the rest: PROGRAM and its arguments, which belong to the child untouched. Unlike
// flag.Parse it goes on after a bad option, so that every problem is reported at once.
func parseArgs(fs *flag.FlagSet, args []string) (rest []string, given map[string]bool, err error) {
	var errs *multierror.Error
	seen := map[string]bool{}
	for len(args) > 0 {
		arg := args[0]
		if arg == "--" {
			return args[1:], seen, errs.ErrorOrNil()
		}
		if len(arg) < 2 || arg[0] != '-' {
			break
		}
		args = args[1:]
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-"), "=")
		f := fs.Lookup(name)
		if f == nil {
			errs = multierror.Append(errs, fmt.Errorf("unknown option %s (see svinit --help; put -- before PROGRAM if it starts with a dash)", arg))
			continue
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() && !hasValue {
			value, hasValue = "true", true
		}
		if !hasValue {
			if len(args) == 0 {
				errs = multierror.Append(errs, fmt.Errorf("option --%s needs a value", name))
				break
			}
			value, args = args[0], args[1:]
		}
		if r, ok := f.Value.(resetter); ok && !seen[name] {
			r.Reset()
		}
		seen[name] = true
		if err := f.Value.Set(value); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("option --%s %q: %v", name, value, err))
		}
	}
	return args, seen, errs.ErrorOrNil()
}

// validate checks the values that parsed; an option that failed to parse keeps its
// default, which passes, so its problem is reported once.
func (c *Config) validate() error {
	var errs *multierror.Error
	if len(c.Program) == 0 && !c.DryRun {
		errs = multierror.Append(errs, errors.New("no PROGRAM given: usage: svinit [options] [--] PROGRAM [ARG...]"))
	}
	if c.Grace <= 0 {
		errs = multierror.Append(errs, fmt.Errorf("--grace %s: must be positive (SIGKILL follows SIGTERM after it)", c.Grace))
	}
	if c.StopDelay < 0 || (c.StopDelay > 0 && c.StopDelay >= c.Grace) {
		errs = multierror.Append(errs, fmt.Errorf("--stop-delay %s: must be 0 or more and shorter than --grace %s, which it counts against", c.StopDelay, c.Grace))
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		errs = multierror.Append(errs, fmt.Errorf("--log-format %q: want json or console", c.LogFormat))
	}
	if _, err := zerolog.ParseLevel(c.LogLevel); err != nil || c.LogLevel == "" {
		errs = multierror.Append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.Lock != "" {
		c.Lock = absPath(c.Lock)
		if err := lock.Check(c.Lock); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("--lock: %w", err))
		}
	}
	if _, err := lock.ParsePolicy(c.LockOnTimeout); err != nil {
		errs = multierror.Append(errs, fmt.Errorf("--lock-on-timeout %q: want takeover or fail", c.LockOnTimeout))
	}
	if c.LockHeartbeat > 0 && c.LockHeartbeat < lock.MinHeartbeat {
		errs = multierror.Append(errs, fmt.Errorf("--lock-heartbeat %s: too short, use %s or more", c.LockHeartbeat, lock.MinHeartbeat))
	}
	if c.WaitTimeout < 0 {
		errs = multierror.Append(errs, fmt.Errorf("--wait-timeout %s: must be 0 (wait for ever) or more", c.WaitTimeout))
	}
	if c.LockTimeout < 0 {
		errs = multierror.Append(errs, fmt.Errorf("--lock-timeout %s: must be 0 (do not wait) or more", c.LockTimeout))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"lock-heartbeat", c.LockHeartbeat}, {"license-timeout", c.LicenseTimeout}, {"license-request-timeout", c.LicenseRequestTimeout}, {"license-sweep-timeout", c.LicenseSweepTimeout}, {"ready-interval", c.ReadyInterval}, {"check-timeout", c.CheckTimeout}} {
		if d.d <= 0 {
			errs = multierror.Append(errs, fmt.Errorf("--%s %s: must be positive", d.name, d.d))
		}
	}
	if c.Replicas < 0 {
		errs = multierror.Append(errs, fmt.Errorf("--replicas %d: must be 0 (unknown) or more", c.Replicas))
	}
	if c.LicenseState.Secret != "" && (c.PodName == "" || c.PodUID == "") {
		errs = multierror.Append(errs, fmt.Errorf("--license-state %s: the ledger keys entries by pod: set SVINIT_POD_NAME and SVINIT_POD_UID from the downward API (metadata.name, metadata.uid)", &c.LicenseState))
	}
	c.StateFile = absPath(c.StateFile)
	c.LicenseKeyFile, c.LicenseFile, c.LicenseHTTPConfig, c.NetHelper = absPath(c.LicenseKeyFile), absPath(c.LicenseFile), absPath(c.LicenseHTTPConfig), absPath(c.NetHelper)
	if c.EnvFile != "" && len(c.FileEnv) == 0 {
		errs = multierror.Append(errs, fmt.Errorf("--env-file-suffix %s: every variable ending in %s is no longer read (SSL_CERT_FILE would become SSL_CERT): name the ones to read, --file-env DB_PASSWORD or SVINIT_FILE_ENV=DB_PASSWORD,API_TOKEN, and drop the suffix unless it is not _FILE", c.EnvFile, c.EnvFile))
	}
	return errs.ErrorOrNil()
}

// FileEnvSuffix is the suffix of the variables --file-env reads paths from.
func (c *Config) FileEnvSuffix() string {
	if c.EnvFile == "" {
		return "_FILE"
	}
	return c.EnvFile
}

// absPath makes p absolute, so that svinit can chdir("/") after starting the child and
// still find its own files.
func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// Usage writes the option reference: each option with its variable and default.
func Usage(w io.Writer) {
	fmt.Fprintln(w, "usage: svinit [options] [--] PROGRAM [ARG...]")
	fmt.Fprintln(w, "       svinit status [--json] [--ready] [--state-file PATH]")
	fmt.Fprintln(w, "       svinit stop [--wait] [--timeout D] [--state-file PATH]")
	fmt.Fprintln(w, "\nRuns PROGRAM as an init: forwards signals, reaps zombies, stops it within --grace and")
	fmt.Fprintln(w, "exits with its status. Every option can also be set by the variable shown; a flag wins.")
	fmt.Fprintln(w, "status prints the running svinit's state and exits 0 only while its child runs (1: that")
	fmt.Fprintln(w, "svinit is gone, 3: not running, 4: no state file); with --ready, 0 also needs the last")
	fmt.Fprintln(w, "--ready checks passed (3: not ready, and why). stop sends it SIGTERM and with --wait")
	fmt.Fprintln(w, "returns once it has exited (1 when --timeout passes first).")
	fmt.Fprintln(w, "\noptions:")
	for _, o := range Options() {
		line := "  --" + o.Flag
		if o.Env != "" {
			line += " (" + o.Env + ")"
		}
		if o.Default != "" {
			line += ", default " + o.Default
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, o.Desc)
	}
}

// Option describes one option for --help and the README reference.
type Option struct{ Flag, Env, Default, Desc string }

// Options lists every option in the order of Config's fields.
func Options() []Option {
	var out []Option
	for _, f := range reflect.VisibleFields(reflect.TypeOf(Config{})) {
		name := f.Tag.Get("flag")
		if name == "" {
			continue
		}
		o := Option{Flag: name, Default: f.Tag.Get("default"), Desc: f.Tag.Get("desc")}
		if e := f.Tag.Get("env"); e != "" {
			o.Env = EnvPrefix + "_" + e
		}
		out = append(out, o)
	}
	return out
}

// Join returns errs as one error with one problem per line (svinit's format), or nil:
// nested multierrors and joined errors are opened, so that no list comes out in
// go-multierror's own format ("2 errors occurred:" with tabs and blank lines).
func Join(errs ...error) error {
	all := Problems(errs...)
	if len(all) == 0 {
		return nil
	}
	return &multierror.Error{Errors: all, ErrorFormat: listFormat}
}

// Problems returns every problem in errs, lists opened, nils dropped.
func Problems(errs ...error) []error {
	var all []error
	for _, e := range errs {
		switch e := e.(type) {
		case nil:
		case *multierror.Error:
			if e != nil {
				all = append(all, Problems(e.Errors...)...)
			}
		case interface{ Unwrap() []error }:
			all = append(all, Problems(e.Unwrap()...)...)
		default:
			all = append(all, e)
		}
	}
	return all
}

func listFormat(errs []error) string {
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// optionValue returns the flag.Value that sets field: the field itself when it is one,
// else a typed setter whose errors say what was wanted (flag's own say "parse error").
func optionValue(field reflect.Value) flag.Value {
	if v, ok := field.Addr().Interface().(flag.Value); ok {
		return v
	}
	return builtinValue{field}
}

type builtinValue struct{ v reflect.Value }

func (b builtinValue) Set(s string) error {
	// Parse into a new value and keep the old one on failure: a bad --grace must be
	// reported as unparsable, not as zero.
	var v any
	var err error
	switch b.v.Addr().Interface().(type) {
	case *string:
		v = s
	case *bool:
		v, err = strconv.ParseBool(s)
	case *int:
		v, err = strconv.Atoi(s)
	case *time.Duration:
		v, err = time.ParseDuration(s)
	default:
		return fmt.Errorf("option of unsupported type %s", b.v.Type()) // a programming error, caught by the tests
	}
	if err != nil {
		return explain(b.v.Type(), err)
	}
	b.v.Set(reflect.ValueOf(v))
	return nil
}

func (b builtinValue) String() string {
	if !b.v.IsValid() {
		return ""
	}
	return fmt.Sprint(b.v.Interface())
}

func (b builtinValue) IsBoolFlag() bool { return b.v.IsValid() && b.v.Kind() == reflect.Bool }

// explain replaces a parser's error with what the option wants.
func explain(t reflect.Type, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return errors.New("want a duration such as 30s or 1m30s")
	case t.Kind() == reflect.Bool:
		return errors.New("want true or false")
	case t.Kind() == reflect.Int:
		return errors.New("want a whole number")
	}
	return err
}
