// Package license brackets the child's life with a license activation: activate before the
// child starts, heartbeat while it runs, deactivate after it exits, and journal every step so
// that a seat leaked by a crash is reclaimed on the next start.
package license

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/svinit/svinit/internal/exitcode"
)

// Provider names, as given to --license-provider. ProviderOPSWAT, ProviderKeygenRelay and
// ProviderHTTP run in svinit-net (Networked).
const (
	ProviderNone        = "none"
	ProviderExec        = "exec"
	ProviderHTTP        = "http"
	ProviderOPSWAT      = "opswat"
	ProviderKeygenRelay = "keygen-relay"
)

// Networked reports whether provider's requests go through svinit-net.
func Networked(provider string) bool {
	return provider == ProviderOPSWAT || provider == ProviderKeygenRelay || provider == ProviderHTTP
}

// Error classes. Every error a Provider returns wraps exactly one of them; callers branch
// with errors.Is.
var (
	// ErrRetryable: the server could not be reached, timed out or failed (5xx, 429); trying
	// again later may succeed.
	ErrRetryable = errors.New("license server unavailable")
	// ErrNoSeats: the server answered that every seat of the license is in use.
	ErrNoSeats = errors.New("no license seat free")
	// ErrPermanent: the server refused for a reason that retrying will not change (bad or
	// expired key, malformed request, unexpected answer).
	ErrPermanent = errors.New("license refused")
	// ErrNotFound: the activation is not known to the server (any more). Deactivate treats it
	// as success; Heartbeat returns it when the lease is gone and must be re-activated.
	ErrNotFound = errors.New("activation not found")
)

// ErrUncertain marks a failed attempt that may nevertheless have taken effect on the server:
// the request went out and no answer came back (timeout, reset, cancelled, command killed).
// After such an activation attempt the Manager deactivates, in case a seat was taken.
var ErrUncertain = errors.New("outcome unknown")

// Exit codes for a failed activation; package exitcode defines them all.
const (
	ExitNoSeats  = exitcode.NoSeats
	ExitTempFail = exitcode.TempFail
	ExitConfig   = exitcode.Config
)

// ExitCode maps an error from Manager.Start to the exit code svinit should report: no seats
// 69, refused (bad key, bad configuration) 78, anything else (server unreachable, timeout,
// journal I/O) 75, since a later restart may succeed. nil maps to 0. A journal error that
// says it is permanent (a permission the pod lacks) maps to 78.
func ExitCode(err error) int {
	var p interface{ Permanent() bool }
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrNoSeats):
		return ExitNoSeats
	case errors.Is(err, ErrPermanent), errors.As(err, &p) && p.Permanent():
		return ExitConfig
	default:
		return ExitTempFail
	}
}

// Lease is one activation held by this instance.
type Lease struct {
	// ID is what the server knows the activation by. Never secret: it goes to the journal
	// and the logs.
	ID string
	// TTL is how long the lease lasts without a heartbeat; the Manager heartbeats every
	// TTL/3. Zero: the lease does not expire and needs no heartbeat.
	TTL time.Duration
	// Expires is when the license itself ends, if the server says; zero when unknown.
	Expires time.Time
	// File is a license file for the program to read, if the server sends one.
	File []byte
	// FileKey is the secret that decrypts File, if the server hands one out with it
	// (Keygen Relay's license_key). It is never logged or journaled.
	FileKey string
}

// Provider talks to one kind of license server. Each call makes one attempt; the Manager
// owns timeouts and retries, and passes them in through ctx.
type Provider interface {
	// Activate takes a seat for instance.
	Activate(ctx context.Context, instance string) (Lease, error)
	// Heartbeat renews l and returns the renewed lease; ErrNotFound means the lease is gone.
	Heartbeat(ctx context.Context, instance string, l Lease) (Lease, error)
	// Deactivate frees the seat of l. An activation the server no longer knows returns
	// ErrNotFound, which callers treat as success.
	Deactivate(ctx context.Context, instance string, l Lease) error
}

// Runner runs one command to completion and returns its exit code. svinit's supervisor
// provides the real one: as PID 1 it reaps every exit with wait4(-1), so exec.Cmd.Wait
// must not be used there. When ctx ends the runner kills the command and returns ctx.Err().
// An error means the command could not be started or waited for.
type Runner interface {
	Run(ctx context.Context, argv, env []string, stdout, stderr io.Writer) (exitCode int, err error)
}

// Config selects and configures a Provider.
type Config struct {
	// Provider is one of the Provider* names; empty means none.
	Provider string
	// URL is the license server's base URL (--license-url). The opswat preset defaults to
	// OPSWAT's public activation server.
	URL string
	// Key is the license key. Secret: providers never put it in an error or a log line.
	Key string
	// Exec configures the exec provider.
	Exec ExecConfig
	// HTTP configures the generic http provider.
	HTTP HTTPConfig
	// Pool is the Keygen Relay pool to claim from (--license-pool), sent as the Relay-Pool
	// header; empty: the relay's default.
	Pool string
	// Redactor, when set, is the one guarding svinit's log: the key and any secret a
	// provider learns later (Keygen Relay's license_key) are added to it. Nil: a Redactor
	// of the providers' own.
	Redactor *Redactor
	// Helper runs svinit-net, which sends the requests of the opswat, keygen-relay and http
	// providers.
	Helper HelperConfig
	// Log receives what the providers have to say (a command's stderr).
	Log zerolog.Logger
}
