// Package licensetest is a license server test double: a real HTTP server on 127.0.0.1 that
// speaks the wire formats of OPSWAT's activation server and of Keygen Relay, holds a fixed
// number of seats, counts live activations, and can be taken down on demand.
package licensetest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Options configure a Server.
type Options struct {
	// Seats is how many activations may be live at once, over both wire formats.
	Seats int
	// Keys are the OPSWAT activation keys the server accepts.
	Keys []string
	// TTL is the Keygen Relay lease time-to-live, sent as expires_in in whole seconds;
	// default 60s, the relay's own default. A lease not renewed within it lapses.
	TTL time.Duration
	// OPSWATYAMLErrors makes OPSWAT errors come back in the documented `error: '...'` form
	// instead of a JSON {"error": "..."} object.
	OPSWATYAMLErrors bool
}

// Request is one request the server received.
type Request struct {
	Method, Path string
	Query        url.Values
}

// Server is the test double. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL to give the client, e.g. http://127.0.0.1:41234.
	URL string

	opts Options
	addr string

	mu          sync.Mutex
	srv         *http.Server
	leases      map[string]time.Time // "opswat/<deployment>" or "relay/<fingerprint>" -> expiry (zero: none)
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
	if opts.TTL <= 0 {
		opts.TTL = 60 * time.Second
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("license test server: %v", err)
	}
	s := &Server{opts: opts, addr: ln.Addr().String(), leases: map[string]time.Time{}}
	s.URL = "http://" + s.addr
	s.serve(ln)
	tb.Cleanup(s.close)
	return s
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

// Live returns the number of activations held now, lapsed relay leases not counted.
func (s *Server) Live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cull()
	return len(s.leases)
}

// Holds reports whether instance (a deployment id or fingerprint) holds an activation.
func (s *Server) Holds(instance string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cull()
	_, a := s.leases["opswat/"+instance]
	_, b := s.leases["relay/"+instance]
	return a || b
}

// Lapse ends a relay lease at once, as the relay's culling of a node that missed its
// heartbeats would.
func (s *Server) Lapse(fingerprint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.leases["relay/"+fingerprint]; ok {
		delete(s.leases, "relay/"+fingerprint)
		s.lapsed++
	}
}

// Lapsed returns how many relay leases lapsed for want of a heartbeat (Lapse included).
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

// cull drops lapsed relay leases; s.mu is held.
func (s *Server) cull() {
	now := time.Now()
	for k, exp := range s.leases {
		if !exp.IsZero() && now.After(exp) {
			delete(s.leases, k)
			s.lapsed++
		}
	}
}

func (s *Server) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()})
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
	id := "opswat/" + deployment
	if _, held := s.leases[id]; !held {
		if len(s.leases) >= s.opts.Seats {
			s.mu.Unlock()
			s.opswatError(w, opswatNoSeats)
			return
		}
		s.leases[id] = time.Time{}
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
	s.cull()
	id := "opswat/" + q.Get("deployment")
	_, held := s.leases[id]
	delete(s.leases, id)
	s.mu.Unlock()
	if !held {
		s.opswatError(w, opswatNotFound)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// relayClaimResponse is Keygen Relay's claim body; the file is base64 through []byte.
type relayClaimResponse struct {
	LicenseFile []byte `json:"license_file"`
	LicenseKey  string `json:"license_key"`
	ExpiresIn   int    `json:"expires_in"`
}

func (s *Server) relayClaim(w http.ResponseWriter, r *http.Request) {
	fp := r.PathValue("fingerprint")
	ttl := max(int(s.opts.TTL/time.Second), 1)
	s.mu.Lock()
	s.cull()
	id := "relay/" + fp
	status := http.StatusAccepted
	if _, held := s.leases[id]; !held {
		if len(s.leases) >= s.opts.Seats {
			s.mu.Unlock()
			http.Error(w, "No licenses available", http.StatusGone)
			return
		}
		status = http.StatusCreated
		s.activations++
	}
	s.leases[id] = time.Now().Add(time.Duration(ttl) * time.Second)
	n := s.activations
	s.mu.Unlock()
	if status == http.StatusCreated && !s.delayAnswer(r) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(relayClaimResponse{
		LicenseFile: fmt.Appendf(nil, "-----BEGIN LICENSE FILE-----\ntest double license for %s\n-----END LICENSE FILE-----\n", fp),
		LicenseKey:  fmt.Sprintf("RELAY-LICENSE-KEY-%d", n),
		ExpiresIn:   ttl,
	})
}

func (s *Server) relayRelease(w http.ResponseWriter, r *http.Request) {
	id := "relay/" + r.PathValue("fingerprint")
	s.mu.Lock()
	s.cull()
	_, held := s.leases[id]
	delete(s.leases, id)
	s.mu.Unlock()
	if !held {
		http.Error(w, "Claim not found", http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
