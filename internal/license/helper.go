package license

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// svinit keeps every network call out of PID 1, as git keeps HTTP out of git in
// git-remote-https: the opswat, keygen-relay and http providers and the Kubernetes ledger
// run in svinit-net, a program of their own that svinit runs once per call and that holds no
// state between calls. PID 1 keeps the orchestration: the journal, the deadlines, the retry
// schedule, and the redaction of whatever the helper prints.
//
// The contract is the exec provider's (see ExecConfig), with these additions:
//
//   - svinit-net license ACTION: activate, heartbeat or deactivate. The provider and its
//     settings come in SVINIT_NET_PROVIDER, SVINIT_NET_POOL and SVINIT_NET_HTTP_CONFIG (the
//     http provider's configuration, JSON), beside the exec contract's variables.
//   - svinit-net ledger ACTION: load, save, delete, others, put or remove, on the Secret
//     SVINIT_NET_LEDGER for the pod SVINIT_NET_POD_NAME (UID SVINIT_NET_POD_UID), with the
//     pod's Kubernetes environment (KUBERNETES_SERVICE_HOST/PORT, SVINIT_K8S_SA_DIR).
//   - svinit-net check: checks the whole configuration and sends nothing; exit 2 with the
//     problems, or 0. Both answers carry the protocol number and the version, which must be
//     svinit's own.
//   - svinit-net probe: one attempt of the network check SVINIT_NET_CHECK (tcp://HOST:PORT,
//     http(s)://URL; --wait-for and --ready), answered by SVINIT_NET_DEADLINE; exit 0 when
//     it passed, ExitProbeFailed with the reason in the reply's error when it did not.
//   - Whatever the outcome, stdout holds one JSON object (HelperReply). On failure it names
//     the error and whether the request may have taken effect anyway (uncertain).
const (
	HelperName     = "svinit-net"
	HelperProtocol = 1

	EnvNetProvider   = "SVINIT_NET_PROVIDER"
	EnvNetPool       = "SVINIT_NET_POOL"
	EnvNetHTTPConfig = "SVINIT_NET_HTTP_CONFIG"
	EnvNetLedger     = "SVINIT_NET_LEDGER"
	EnvNetPodName    = "SVINIT_NET_POD_NAME"
	EnvNetPodUID     = "SVINIT_NET_POD_UID"
	EnvNetRecord     = "SVINIT_NET_RECORD"   // ledger save: the record; put: the entry (JSON)
	EnvNetEntryKey   = "SVINIT_NET_ENTRY"    // ledger remove: the other pod's key
	EnvNetTTL        = "SVINIT_NET_TTL"      // license heartbeat: the lease's TTL now (a Go duration)
	EnvNetRedact     = "SVINIT_NET_REDACT"   // license: secrets learned from earlier answers (JSON list)
	EnvNetDeadline   = "SVINIT_NET_DEADLINE" // ledger, probe: answer by then (Unix milliseconds), with what is done
	EnvNetCheck      = "SVINIT_NET_CHECK"    // probe: the check, a URL's password included

	// ExitHelperUsage: svinit-net check found problems, or svinit-net was called wrongly.
	ExitHelperUsage = 2
	// ExitProbeFailed: svinit-net probe ran the check, which failed (EX_UNAVAILABLE).
	ExitProbeFailed = 69
)

// HelperReply is what svinit-net prints on stdout. Only the fields of the call are set.
type HelperReply struct {
	Protocol int      `json:"protocol,omitempty"`
	Version  string   `json:"version,omitempty"`
	Problems []string `json:"problems,omitempty"`

	Error     string `json:"error,omitempty"`
	Uncertain bool   `json:"uncertain,omitempty"`
	Permanent bool   `json:"permanent,omitempty"`

	Lease   json.RawMessage `json:"lease,omitempty"`   // license activate and heartbeat: the exec contract's lease
	Record  *Record         `json:"record,omitempty"`  // ledger load
	Others  []LedgerEntry   `json:"others,omitempty"`  // ledger others
	Partial bool            `json:"partial,omitempty"` // ledger others: cut short by the deadline
}

// LedgerEntry is one pod's record in the ledger, as ledger others reports it.
type LedgerEntry struct {
	Key    string `json:"key"`
	Pod    string `json:"pod"`
	PodUID string `json:"pod_uid"`
	// Alive: the pod exists with the recorded UID (Terminating included).
	Alive bool `json:"alive"`
	// Foreign: the entry is not svinit's; it is left alone.
	Foreign bool   `json:"foreign,omitempty"`
	Record  Record `json:"record"`
}

// HelperConfig says where svinit-net is and how to run it.
type HelperConfig struct {
	// Path is svinit-net's; empty: HelperPath's default.
	Path string
	// Version is svinit's own: a helper of another build is refused.
	Version string
	// Env is the helper's base environment: svinit's, less the license key.
	Env []string
	// Runner runs it.
	Runner Runner
}

// HelperPath is where svinit looks for svinit-net: explicit when set, else beside svinit's
// own executable, as the two ship together.
func HelperPath(explicit string) string {
	if explicit != "" {
		return explicit
	}
	exe, err := os.Executable()
	if err != nil {
		return HelperName
	}
	return filepath.Join(filepath.Dir(exe), HelperName)
}

// maxHelperReply bounds a reply: a license file of MaxResponse, in base64, and the rest.
const maxHelperReply = MaxResponse/3*4 + 64<<10

// helperCheckTimeout bounds svinit-net check, which sends nothing.
const helperCheckTimeout = 10 * time.Second

// helper runs svinit-net.
type helper struct {
	cfg    HelperConfig
	redact *Redactor
}

// run runs svinit-net with args and env on top of its base environment, and returns its
// reply and exit code. A reply that is not JSON is an error.
func (h helper) run(ctx context.Context, env []string, args ...string) (HelperReply, int, error) {
	stdout := &cappedBuffer{max: maxHelperReply}
	stderr := &cappedBuffer{max: maxExecStderr}
	code, err := h.cfg.Runner.Run(ctx, append([]string{h.cfg.Path}, args...), h.environ(env), stdout, stderr)
	if err != nil {
		return HelperReply{}, code, err
	}
	var r HelperReply
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		// Killed (the OOM killer) or crashed: a request may have gone out.
		last := h.redact.Excerpt(bytes.TrimSpace(stderr.Bytes()))
		return HelperReply{}, code, &helperError{msg: fmt.Sprintf("%s %s: exit %d without its JSON answer: %s", HelperName, strings.Join(args, " "), code, last),
			class: ErrRetryable, uncertain: true}
	}
	return r, code, nil
}

// environ is the helper's base environment with env on top: what svinit inherited under the
// contract's names never reaches the helper, only what svinit sets.
func (h helper) environ(env []string) []string {
	out := make([]string, 0, len(h.cfg.Env)+len(env))
	for _, kv := range h.cfg.Env {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "SVINIT_NET_"):
		case name == EnvAction, name == EnvInstanceID, name == EnvActivationID, name == EnvURL, name == EnvKey, name == EnvVendorKey:
		default:
			out = append(out, kv)
		}
	}
	return append(out, env...)
}

// deadlineEnv tells the helper to answer a little before svinit would kill it at ctx's
// deadline; nil without one.
func deadlineEnv(ctx context.Context) []string {
	deadline, ok := ctx.Deadline()
	if !ok {
		return nil
	}
	margin := min(time.Until(deadline)/10, time.Second)
	return []string{EnvNetDeadline + "=" + strconv.FormatInt(deadline.Add(-margin).UnixMilli(), 10)}
}

// Helper runs svinit-net for a caller outside the license code: the network checks of
// --wait-for and --ready.
type Helper struct{ h helper }

// NewHelper returns the helper once svinit-net check found it there and of svinit's build.
func NewHelper(cfg HelperConfig, redact *Redactor) (*Helper, error) {
	h := helper{cfg: cfg, redact: redact}
	if err := h.check(nil); err != nil {
		return nil, err
	}
	return &Helper{h}, nil
}

// Probe runs svinit-net probe on check, the check's text a URL's password included: nil
// when it passed, else why not, redacted.
func (h *Helper) Probe(ctx context.Context, check string) error {
	r, code, err := h.h.run(ctx, append([]string{EnvNetCheck + "=" + check}, deadlineEnv(ctx)...), "probe")
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return fmt.Errorf("%s probe: %s", HelperName, h.h.redact.Redact(err.Error()))
	case code == 0:
		return nil
	}
	return h.h.replyError(HelperName+" probe", ErrRetryable, code, r)
}

// check runs svinit-net check with env: a missing helper, one of another build, or the
// problems it finds in the configuration.
func (h helper) check(env []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), helperCheckTimeout)
	defer cancel()
	r, code, err := h.run(ctx, env, "check")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s not found at %s: it makes svinit's network calls; install it beside svinit (both come in every release) or name it with --net-helper", HelperName, h.cfg.Path)
	case err != nil:
		return fmt.Errorf("%s at %s cannot run: %s; install the %s of svinit's release, or name it with --net-helper", HelperName, h.cfg.Path, h.redact.Redact(err.Error()), HelperName)
	case r.Protocol != HelperProtocol || r.Version != h.cfg.Version:
		return fmt.Errorf("%s at %s is version %q (protocol %d), svinit is %q (protocol %d): install the %s of svinit's release beside it",
			HelperName, h.cfg.Path, r.Version, r.Protocol, h.cfg.Version, HelperProtocol, HelperName)
	case code == ExitHelperUsage && len(r.Problems) > 0:
		errs := make([]error, len(r.Problems))
		for i, p := range r.Problems {
			errs[i] = errors.New(h.redact.Redact(p))
		}
		return errors.Join(errs...)
	case code != 0:
		return fmt.Errorf("%s check: exit %d: %s", HelperName, code, h.redact.Redact(r.Error))
	}
	return nil
}

// helperError is a failure svinit-net reported: its text as the helper wrote it, its class
// from the exit code.
type helperError struct {
	msg       string
	class     error
	uncertain bool
	permanent bool
}

func (e *helperError) Error() string { return e.msg }

func (e *helperError) Is(target error) bool {
	return target == e.class || e.uncertain && target == ErrUncertain
}

// Permanent reports a ledger error that retrying cannot help (a permission the pod lacks).
func (e *helperError) Permanent() bool { return e.permanent }

// replyError is the error a failed call's reply names.
func (h helper) replyError(what string, class error, code int, r HelperReply) error {
	msg := h.redact.Redact(r.Error)
	if msg == "" {
		msg = fmt.Sprintf("%s: %v: exit %d", what, class, code)
	}
	return &helperError{msg: msg, class: class, uncertain: r.Uncertain, permanent: r.Permanent}
}
