// Package licensetest is a license server test double: a real HTTP server on 127.0.0.1 that
// speaks the wire formats of OPSWAT's activation server and of Keygen Relay, holds a fixed
// number of seats, counts live activations, and can be taken down on demand.
//
// The Keygen Relay half follows the published relay (github.com/keygen-sh/keygen-relay):
// internal/server/handler.go (the PUT and DELETE /v1/nodes/{fingerprint} handlers, the
// Relay-Pool header, JSON error bodies), internal/licenses/manager.go (ClaimLicense: extend
// the node's lease in the pool, else claim a free license, 409 when the node holds one in
// another pool; ReleaseLicense: release the node's license in the pool the header names,
// the global pool without one), internal/cmd/serve.go (--ttl of at least 30s, default 60s),
// internal/server/reaper.go and db/queries (CullDeadNodes: a node whose last heartbeat is
// older than the TTL loses its license), internal/db/predicates.go (no header: licenses of
// no pool), and the claim tests in cli/testdata (201 with license_file, license_key and
// expires_in; 202 with expires_in, no file). Two differences: the double culls on every
// request rather than every --cull-interval (15s), and its clock can be moved (Advance), so
// that a test need not wait out a TTL. Licenses are handed out oldest first, the relay's
// fifo strategy.
package licensetest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// MinTTL is the shortest lease the relay serves: `relay serve --ttl` refuses less.
const MinTTL = 30 * time.Second

// Options configure a Server.
type Options struct {
	// Seats is how many activations may be live at once, over both wire formats: the
	// OPSWAT seats, and the relay's licenses in its global pool (no pool).
	Seats int
	// Pools are the relay's named pools, each with its number of licenses, reached with the
	// Relay-Pool header.
	Pools map[string]int
	// Keys are the OPSWAT activation keys the server accepts.
	Keys []string
	// TTL is the Keygen Relay lease time-to-live (--ttl), sent as expires_in in whole
	// seconds; default 60s, the relay's own. Start refuses less than MinTTL, as the relay
	// does, unless ShortTTL.
	TTL time.Duration
	// ShortTTL allows a TTL under MinTTL, which the real relay refuses: for tests of
	// heartbeat timing that cannot wait out 30 s.
	ShortTTL bool
	// OPSWATYAMLErrors makes OPSWAT errors come back in the documented `error: '...'` form
	// instead of a JSON {"error": "..."} object.
	OPSWATYAMLErrors bool
	// Listen is the address to serve on; default 127.0.0.1:0. Pods reach the double on
	// their node's address.
	Listen string
}

// Request is one request the server received.
type Request struct {
	Method, Path string
	Query        url.Values
	Header       http.Header
}

// relayLicense is one license file loaded into the relay (`relay add`).
type relayLicense struct {
	pool string // "" for the global pool
	file []byte
	key  string
	node string // the fingerprint holding it; "" when free
}

// Server is the test double. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL to give the client, e.g. http://127.0.0.1:41234.
	URL string

	opts Options
	addr string

	mu          sync.Mutex
	srv         *http.Server
	opswat      map[string]bool      // deployments activated
	licenses    []*relayLicense      // oldest first
	nodes       map[string]time.Time // fingerprint -> last heartbeat
	skew        time.Duration        // how far Advance moved the clock
	unavailable bool
	delay       time.Duration
	requests    []Request
	lapsed      int
	activations int
}

// OPSWAT's documented messages for bad parameters.
const (
	opswatInvalidKey        = "Could not activate your product because the Activation Key you provided is invalid. Check if you typed it correctly or open a support ticket if problem persist."
	opswatInvalidDeployment = "Could not activate your product because the Deployment ID you provided is invalid. Check if you typed it correctly or open a support ticket if problem persist."
	opswatInvalidQuantity   = "Could not activate your product because the quantity you provided is invalid. Check if you typed it correctly or open a support ticket if problem persist."
	// OPSWAT does not publish the wording of these two; they are this double's own.
	opswatNoSeats  = "Could not activate your product because the Activation Key has no more activations available."
	opswatNotFound = "Could not deactivate your product because the Deployment ID is not activated with this Activation Key."
)

// Start starts a Server and stops it when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.TTL == 0 {
		opts.TTL = 60 * time.Second
	}
	if opts.TTL < MinTTL && !opts.ShortTTL {
		tb.Fatalf("license test server: TTL %s: the relay's time-to-live value must be at least %s", opts.TTL, MinTTL)
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		tb.Fatalf("license test server: %v", err)
	}
	s := &Server{opts: opts, addr: ln.Addr().String(), opswat: map[string]bool{}, nodes: map[string]time.Time{}}
	s.addLicenses("", opts.Seats)
	for pool, n := range opts.Pools {
		s.addLicenses(pool, n)
	}
	s.URL = "http://" + s.addr
	s.serve(ln)
	tb.Cleanup(s.close)
	return s
}

// addLicenses loads n licenses into pool, each with its own file and key, as `relay add`.
func (s *Server) addLicenses(pool string, n int) {
	for range n {
		i := len(s.licenses) + 1
		s.licenses = append(s.licenses, &relayLicense{
			pool: pool,
			file: fmt.Appendf(nil, "-----BEGIN LICENSE FILE-----\ntest double license %d (pool %q)\n-----END LICENSE FILE-----\n", i, pool),
			key:  fmt.Sprintf("D0UB1E-%06X-8C433B-7657C8-8A8655-V3", i),
		})
	}
}

func (s *Server) serve(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /activation", s.opswatActivate)
	mux.HandleFunc("GET /deactivation", s.opswatDeactivate)
	mux.HandleFunc("PUT /v1/nodes/{fingerprint}", s.relayClaim)
	mux.HandleFunc("DELETE /v1/nodes/{fingerprint}", s.relayRelease)
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	srv := &http.Server{Handler: s.gate(mux), ReadHeaderTimeout: 5 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln)
}

func (s *Server) close() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Down stops listening and drops every connection: clients get "connection refused".
func (s *Server) Down() { s.close() }

// Up listens again, on the same address, after Down.
func (s *Server) Up() error {
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			s.serve(ln)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("license test server: listen again on %s: %w", s.addr, err)
}

// SetUnavailable makes every request fail with 503 Service Unavailable, or stops that.
func (s *Server) SetUnavailable(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unavailable = on
}

// SetActivationDelay makes activations (an OPSWAT activation, a relay claim) take effect at
// once but answer only after d, or when the client gives up: a client that times out or is
// cancelled has then taken a seat without knowing it.
func (s *Server) SetActivationDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Advance moves the server's clock forward by d: relay nodes whose last heartbeat is then
// older than the TTL are culled at the next request, as the relay culls them.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.skew += d
}

func (s *Server) now() time.Time { return time.Now().Add(s.skew) }

// Live returns the number of activations held now, culled relay nodes not counted.
func (s *Server) Live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cull()
	n := len(s.opswat)
	for _, l := range s.licenses {
		if l.node != "" {
			n++
		}
	}
	return n
}

// used counts what takes one of the Seats: OPSWAT activations and the relay's claimed
// licenses of no pool; s.mu is held.
func (s *Server) used() int {
	n := len(s.opswat)
	for _, l := range s.licenses {
		if l.node != "" && l.pool == "" {
			n++
		}
	}
	return n
}

// Holds reports whether instance (a deployment id or fingerprint) holds an activation.
func (s *Server) Holds(instance string) bool {
	_, _, relay := s.Claim(instance)
	s.mu.Lock()
	defer s.mu.Unlock()
	return relay || s.opswat[instance]
}

// Claim returns the license file and key the relay has leased to fingerprint, in any pool.
func (s *Server) Claim(fingerprint string) (file []byte, key string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cull()
	for _, l := range s.licenses {
		if l.node == fingerprint {
			return l.file, l.key, true
		}
	}
	return nil, "", false
}

// Lapse culls a relay node at once, as the relay does with one that missed its heartbeats:
// its license goes back to the pool.
func (s *Server) Lapse(fingerprint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.release(fingerprint, true)
}

// Lapsed returns how many relay leases were culled for want of a heartbeat (Lapse included).
func (s *Server) Lapsed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cull()
	return s.lapsed
}

// Activations returns how many activations were ever made (extensions not counted).
func (s *Server) Activations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.activations
}

// Requests returns the requests received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count returns how many requests had method and path.
func (s *Server) Count(method, path string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

// cull releases the licenses of relay nodes whose last heartbeat is older than the TTL, and
// forgets those nodes; s.mu is held.
func (s *Server) cull() {
	dead := s.now().Add(-s.opts.TTL)
	for fp, beat := range s.nodes {
		if !beat.After(dead) {
			s.release(fp, true)
		}
	}
}

// release frees every license fingerprint holds and forgets the node; s.mu is held.
func (s *Server) release(fingerprint string, culled bool) {
	for _, l := range s.licenses {
		if l.node == fingerprint {
			l.node = ""
			if culled {
				s.lapsed++
			}
		}
	}
	delete(s.nodes, fingerprint)
}

func (s *Server) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone()})
		unavailable := s.unavailable
		s.mu.Unlock()
		if unavailable {
			http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// delayAnswer waits out the activation delay, or until the client gives up.
func (s *Server) delayAnswer(r *http.Request) bool {
	s.mu.Lock()
	d := s.delay
	s.mu.Unlock()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func (s *Server) validKey(key string) bool {
	for _, k := range s.opts.Keys {
		if k == key {
			return true
		}
	}
	return false
}

// opswatError answers a failure the way OPSWAT does: 200, with the message in the body.
func (s *Server) opswatError(w http.ResponseWriter, msg string) {
	if s.opts.OPSWATYAMLErrors {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "error: '%s'\n", msg)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (s *Server) opswatActivate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	deployment := q.Get("deployment")
	switch {
	case !s.validKey(q.Get("key")):
		s.opswatError(w, opswatInvalidKey)
		return
	case deployment == "":
		s.opswatError(w, opswatInvalidDeployment)
		return
	case q.Get("quantity") != "1":
		s.opswatError(w, opswatInvalidQuantity)
		return
	}
	s.mu.Lock()
	s.cull()
	if !s.opswat[deployment] {
		if s.used() >= s.opts.Seats {
			s.mu.Unlock()
			s.opswatError(w, opswatNoSeats)
			return
		}
		s.opswat[deployment] = true
		s.activations++
	}
	s.mu.Unlock()
	if !s.delayAnswer(r) {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	fmt.Fprintf(w, "# MetaDefender license (test double)\ndeployment: %s\nexpiration: 2099-12-31\nmax_node_count: 1\n", deployment)
}

func (s *Server) opswatDeactivate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !s.validKey(q.Get("key")) {
		s.opswatError(w, opswatInvalidKey)
		return
	}
	s.mu.Lock()
	held := s.opswat[q.Get("deployment")]
	delete(s.opswat, q.Get("deployment"))
	s.mu.Unlock()
	if !held {
		s.opswatError(w, opswatNotFound)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// relayClaimed is the relay's 201 body: the license file (base64, through []byte) and the
// key that decrypts it, with the lease's expiry.
type relayClaimed struct {
	LicenseFile []byte `json:"license_file"`
	LicenseKey  string `json:"license_key"`
	relayExtended
}

// relayExtended is the relay's 202 body: the lease's new expiry, no license.
type relayExtended struct {
	ExpiresAt time.Time `json:"expires_at"`
	ExpiresIn int       `json:"expires_in"`
}

// relayAnswer writes a JSON body with status, as the relay's handlers do.
func relayAnswer(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func relayError(w http.ResponseWriter, status int, msg string) {
	relayAnswer(w, status, map[string]string{"error": msg})
}

// relayNode reads the fingerprint and the pool of a request, answering 404 or 400 itself
// when there is none to serve.
func (s *Server) relayNode(w http.ResponseWriter, r *http.Request) (fingerprint, pool string, ok bool) {
	fingerprint = r.PathValue("fingerprint")
	if strings.Contains(fingerprint, "/") {
		// The relay's router matches the decoded path: ns%2Fpod is /v1/nodes/ns/pod there,
		// which no route serves.
		http.NotFound(w, r)
		return "", "", false
	}
	pool = r.Header.Get("Relay-Pool")
	if pool != "" {
		if _, known := s.opts.Pools[pool]; !known {
			relayError(w, http.StatusBadRequest, "invalid pool header")
			return "", "", false
		}
	}
	return fingerprint, pool, true
}

// relayClaim is PUT /v1/nodes/{fingerprint}: extend the node's lease in the pool (202), or
// lease it the oldest free license there (201), or 410 when none is free.
func (s *Server) relayClaim(w http.ResponseWriter, r *http.Request) {
	fp, pool, ok := s.relayNode(w, r)
	if !ok {
		return
	}
	ttl := max(int(s.opts.TTL/time.Second), 1)
	s.mu.Lock()
	s.cull()
	now := s.now()
	extended := relayExtended{ExpiresAt: now.Add(time.Duration(ttl) * time.Second).UTC().Truncate(time.Second), ExpiresIn: ttl}
	var held, free *relayLicense
	for _, l := range s.licenses {
		switch {
		case l.node == fp && l.pool == pool:
			held = l
		case l.node == fp:
			// A node holds one license: claiming in a second pool breaks the relay's
			// uniqueness of the node, which it answers with a conflict.
			s.mu.Unlock()
			relayError(w, http.StatusConflict, "failed to claim license due to conflict")
			return
		case l.node == "" && l.pool == pool && free == nil:
			free = l
		}
	}
	if held != nil {
		s.nodes[fp] = now
		s.mu.Unlock()
		relayAnswer(w, http.StatusAccepted, extended)
		return
	}
	if free == nil || (pool == "" && s.used() >= s.opts.Seats) {
		s.mu.Unlock()
		relayError(w, http.StatusGone, "no licenses available")
		return
	}
	free.node = fp
	s.nodes[fp] = now
	s.activations++
	claimed := relayClaimed{LicenseFile: free.file, LicenseKey: free.key, relayExtended: extended}
	s.mu.Unlock()
	if !s.delayAnswer(r) {
		return
	}
	relayAnswer(w, http.StatusCreated, claimed)
}

// relayRelease is DELETE /v1/nodes/{fingerprint}: release the license the node holds in the
// pool the header names (the global pool without one) and forget the node.
func (s *Server) relayRelease(w http.ResponseWriter, r *http.Request) {
	fp, pool, ok := s.relayNode(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	s.cull()
	held := false
	for _, l := range s.licenses {
		if l.node == fp && l.pool == pool {
			held = true
		}
	}
	if held {
		s.release(fp, false)
	}
	s.mu.Unlock()
	if !held {
		relayError(w, http.StatusNotFound, "claim not found")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
