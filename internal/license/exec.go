package license

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// ExecConfig configures the exec provider, which runs the user's own commands (a vendor
// CLI, a script) to activate, heartbeat and deactivate.
//
// The contract with a command:
//
//   - It gets the environment Env plus SVINIT_LICENSE_ACTION (activate, heartbeat or
//     deactivate), SVINIT_INSTANCE_ID, SVINIT_ACTIVATION_ID (heartbeat and deactivate; unset
//     when giving back an activation whose id was never learned, one killed or cut short
//     before it answered: deactivate every seat of the instance then), SVINIT_LICENSE_URL
//     (when --license-url is set) and SVINIT_LICENSE_KEY (when a
//     key is configured). The key is never put on the command line, where ps would show it.
//     When reclaiming after a crash, SVINIT_INSTANCE_ID is the crashed run's instance id.
//   - Exit 0: done. Activate and heartbeat may print one JSON object on stdout, all fields
//     optional: {"id": "activation id", "ttl": 60 or "1m", "expires": "RFC 3339 or Unix
//     seconds", "file": "license file text", "file_base64": "...", "file_key": "..."}.
//     Without an id the instance id is used; without a ttl the lease needs no heartbeat.
//     Unknown fields are an error, so that a typo ("tll") does not silently drop a field.
//   - Exit 75 (EX_TEMPFAIL): temporary failure, retried with backoff until --license-timeout.
//   - Exit 69 (EX_UNAVAILABLE): no seat is free.
//   - Exit 67 (EX_NOUSER): the activation is not known: on heartbeat the lease is gone and is
//     re-activated; on deactivate it counts as done.
//   - Any other exit (77, 78, 1, a signal): permanent failure; svinit exits 78.
//   - A command still running after the request timeout is killed and the attempt retried.
//   - stderr is logged, with the key redacted.
type ExecConfig struct {
	// Activate and Deactivate are required. Heartbeat is optional: without it, a lease with
	// a TTL is renewed by running Activate again.
	Activate, Heartbeat, Deactivate []string
	// Env is the commands' base environment, e.g. svinit's own without the key.
	Env []string
	// Runner runs the commands.
	Runner Runner
}

// Exit codes of the exec contract.
const (
	execNoSeats   = 69
	execNotFound  = 67
	execTempFail  = 75
	maxExecStderr = 64 << 10
)

// Environment the exec provider gives its commands.
const (
	EnvAction       = "SVINIT_LICENSE_ACTION"
	EnvActivationID = "SVINIT_ACTIVATION_ID"
	EnvURL          = "SVINIT_LICENSE_URL"
)

type execProvider struct {
	cfg    ExecConfig
	key    string
	url    string
	log    zerolog.Logger
	redact *Redactor
}

type execLease struct {
	ID         string          `json:"id"`
	TTL        json.RawMessage `json:"ttl"`
	Expires    json.RawMessage `json:"expires"`
	File       *string         `json:"file"`
	FileBase64 *string         `json:"file_base64"`
	FileKey    *string         `json:"file_key"`
}

func (e *execProvider) Activate(ctx context.Context, instance string) (Lease, error) {
	out, err := e.run(ctx, "activate", e.cfg.Activate, instance, "")
	if err != nil {
		return Lease{}, err
	}
	return e.parse("activate", instance, out, Lease{ID: instance})
}

func (e *execProvider) Heartbeat(ctx context.Context, instance string, l Lease) (Lease, error) {
	argv := e.cfg.Heartbeat
	if len(argv) == 0 {
		argv = e.cfg.Activate
	}
	out, err := e.run(ctx, "heartbeat", argv, instance, l.ID)
	if err != nil {
		return Lease{}, err
	}
	return e.parse("heartbeat", instance, out, l)
}

// mayReKey: a heartbeat (or Activate run again in its place) may print a new id, and the
// contract lets a command give back every seat of an instance, so the Manager journals that
// it gives back by instance too.
func (e *execProvider) mayReKey() bool { return true }

func (e *execProvider) Deactivate(ctx context.Context, instance string, l Lease) error {
	_, err := e.run(ctx, "deactivate", e.cfg.Deactivate, instance, l.ID)
	return err
}

// run runs one command and classifies its exit.
func (e *execProvider) run(ctx context.Context, action string, argv []string, instance, id string) ([]byte, error) {
	env := make([]string, 0, len(e.cfg.Env)+5)
	for _, kv := range e.cfg.Env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case EnvAction, EnvInstanceID, EnvActivationID, EnvURL, EnvKey:
			continue // ours win over inherited ones
		}
		env = append(env, kv)
	}
	env = append(env, EnvAction+"="+action, EnvInstanceID+"="+instance)
	env = appendSet(env, EnvActivationID, id)
	env = appendSet(env, EnvURL, e.url)
	env = appendSet(env, EnvKey, e.key)
	stdout := &cappedBuffer{max: MaxResponse}
	stderr := &cappedBuffer{max: maxExecStderr}
	started := time.Now()
	code, err := e.cfg.Runner.Run(ctx, argv, env, stdout, stderr)
	what := fmt.Sprintf("exec %s %s: %s", action, instance, argv[0])
	tail := e.logStderr(action, instance, stderr.Bytes(), code != 0 || err != nil)
	switch {
	case ctx.Err() != nil:
		return nil, cutShort(ctx, what, started)
	case err != nil:
		return nil, fmt.Errorf("%s: %w: cannot run it: %s", what, ErrPermanent, e.redact.Redact(err.Error()))
	case stdout.overflow:
		return nil, fmt.Errorf("%s: %w: more than %d bytes on stdout", what, ErrPermanent, MaxResponse)
	}
	if code == 0 {
		return stdout.Bytes(), nil
	}
	class := exitClass(code)
	if tail != "" {
		return nil, fmt.Errorf("%s: %w: exit %d: %s", what, class, code, tail)
	}
	return nil, fmt.Errorf("%s: %w: exit %d", what, class, code)
}

// appendSet appends name=value to env when value is set: the contract leaves a variable
// unset rather than empty.
func appendSet(env []string, name, value string) []string {
	if value == "" {
		return env
	}
	return append(env, name+"="+value)
}

// cutShort is the error of a command or request that ctx ended: it may have taken effect.
func cutShort(ctx context.Context, what string, started time.Time) error {
	cause := "cancelled"
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		cause = fmt.Sprintf("killed after %s", time.Since(started).Round(time.Millisecond))
	}
	return fmt.Errorf("%s: %w: %w: %s", what, ErrRetryable, ErrUncertain, cause)
}

// logStderr logs what a command wrote on stderr, line by line and redacted, and returns its
// last line for an error message.
func (e *execProvider) logStderr(action, instance string, data []byte, failed bool) string {
	level := zerolog.DebugLevel
	if failed {
		level = zerolog.WarnLevel
	}
	last := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxExecStderr)
	for sc.Scan() {
		line := e.redact.Redact(strings.TrimRight(sc.Text(), "\r"))
		if strings.TrimSpace(line) == "" {
			continue
		}
		last = line
		e.log.WithLevel(level).Str("action", action).Str("instance", instance).Str("stderr", line).Msg("license command output")
	}
	return e.redact.Excerpt([]byte(last))
}

// parse reads the lease a command printed, starting from prev for what it leaves out.
func (e *execProvider) parse(action, instance string, out []byte, prev Lease) (Lease, error) {
	return parseLease(fmt.Sprintf("exec %s %s", action, instance), out, prev, e.redact)
}

// parseLease reads the exec contract's lease JSON, starting from prev for what it leaves
// out. A file key is a secret from here on.
func parseLease(what string, out []byte, prev Lease, redact *Redactor) (Lease, error) {
	if len(bytes.TrimSpace(out)) == 0 {
		return prev, nil
	}
	var j execLease
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return Lease{}, fmt.Errorf("%s: %w: stdout is not the lease JSON ({\"id\", \"ttl\", \"expires\", \"file\", \"file_base64\", \"file_key\"}): %s", what, ErrPermanent, redact.Redact(err.Error()))
	}
	if j.FileKey != nil {
		redact.Add(*j.FileKey)
	}
	l := prev
	if j.ID != "" {
		l.ID = j.ID
	}
	if s, ok := rawScalar(j.TTL); ok {
		ttl, err := ParseTTL(s)
		if err != nil {
			return Lease{}, fmt.Errorf("%s: %w: ttl: %v", what, ErrPermanent, err)
		}
		l.TTL = ttl
	}
	if s, ok := rawScalar(j.Expires); ok && s != "" {
		t, err := ParseExpires(s)
		if err != nil {
			return Lease{}, fmt.Errorf("%s: %w: expires: %v", what, ErrPermanent, err)
		}
		l.Expires = t
	}
	switch {
	case j.FileBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*j.FileBase64)
		if err != nil {
			return Lease{}, fmt.Errorf("%s: %w: file_base64 is not base64", what, ErrPermanent)
		}
		l.File = b
	case j.File != nil:
		l.File = []byte(*j.File)
	}
	if j.FileKey != nil {
		l.FileKey = *j.FileKey
	}
	return l, nil
}

// LeaseJSON is l in the exec contract's JSON, as svinit-net answers, losing nothing that
// parseLease reads back: id and ttl always (0s: no more heartbeats), expires as Unix seconds
// (any year), and with a file its key too, even empty: a new license replaces both.
func LeaseJSON(l Lease) ([]byte, error) {
	if l.TTL < 0 {
		return nil, fmt.Errorf("lease TTL %s is negative", l.TTL)
	}
	w := map[string]any{"id": l.ID, "ttl": l.TTL.String()}
	if !l.Expires.IsZero() {
		w["expires"] = l.Expires.Unix()
	}
	if len(l.File) > 0 {
		w["file_base64"], w["file_key"] = l.File, l.FileKey // []byte marshals as base64
	}
	return json.Marshal(w)
}

// rawScalar turns a JSON string or number into its text.
func rawScalar(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	return string(raw), true
}

// cappedBuffer keeps the first max bytes written to it and notes that more came. The buffer
// is not embedded: io.Copy would call its ReadFrom, which knows no cap.
type cappedBuffer struct {
	buf      bytes.Buffer
	max      int
	overflow bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); len(p) > room {
		b.overflow = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *cappedBuffer) Bytes() []byte { return b.buf.Bytes() }

// ReadFrom reads r to its end, keeping the first max bytes. io.Copy calls it rather than
// allocate a 32 KiB buffer per copy, which PID 1 would carry as garbage from every license
// call until its first collection.
func (b *cappedBuffer) ReadFrom(r io.Reader) (n int64, err error) {
	chunk := make([]byte, 512)
	for {
		m, err := r.Read(chunk)
		b.Write(chunk[:m])
		n += int64(m)
		switch {
		case err == io.EOF:
			return n, nil
		case err != nil:
			return n, err
		}
	}
}
