package main

import (
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"time"
)

// relayServer is the least of Keygen Relay's node API that svinit-net's keygen-relay
// provider needs (internal/remote/keygenrelay.go; licensetest.Server is the full double):
//
//	PUT /v1/nodes/{fingerprint}    201 {"license_file", "license_key", "expires_in"} for a
//	                               node without a lease, 202 {"expires_in"} extending one
//	DELETE /v1/nodes/{fingerprint} 204, or 404 when the node holds no lease
//
// Every node gets a license (no seat limit, no pools) and no lease is culled: a bench run
// is short. It counts what it answered, so a figure can follow the heartbeats.
type relayServer struct {
	URL string

	ttl int // expires_in, in seconds
	srv *http.Server

	mu    sync.Mutex
	held  map[string]bool
	count relayCounts
}

// relayCounts are the requests a relayServer answered, by kind.
type relayCounts struct {
	Claims, Extensions, Releases, NotFound int
}

// relayLicenseFile is what the relay would hand out: its content does not matter here.
var relayLicenseFile = []byte("-----BEGIN LICENSE FILE-----\nbench\n-----END LICENSE FILE-----\n")

const relayLicenseKey = "BENCH-000000-000000-000000-V3"

// startRelay serves on a free port of 127.0.0.1, with leases of ttl.
func startRelay(ttl time.Duration) (*relayServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &relayServer{URL: "http://" + ln.Addr().String(), ttl: int(ttl / time.Second), held: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/nodes/{fingerprint}", s.claim)
	mux.HandleFunc("DELETE /v1/nodes/{fingerprint}", s.release)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *relayServer) close() { s.srv.Close() }

func (s *relayServer) counts() relayCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

func (s *relayServer) claim(w http.ResponseWriter, r *http.Request) {
	fp := r.PathValue("fingerprint")
	s.mu.Lock()
	extend := s.held[fp]
	s.held[fp] = true
	if extend {
		s.count.Extensions++
	} else {
		s.count.Claims++
	}
	s.mu.Unlock()
	if extend {
		relayReply(w, http.StatusAccepted, map[string]any{"expires_in": s.ttl})
		return
	}
	relayReply(w, http.StatusCreated, map[string]any{
		"license_file": relayLicenseFile, // []byte: base64, as the relay sends it
		"license_key":  relayLicenseKey,
		"expires_in":   s.ttl,
	})
}

func (s *relayServer) release(w http.ResponseWriter, r *http.Request) {
	fp := r.PathValue("fingerprint")
	s.mu.Lock()
	held := s.held[fp]
	delete(s.held, fp)
	if held {
		s.count.Releases++
	} else {
		s.count.NotFound++
	}
	s.mu.Unlock()
	if !held {
		relayReply(w, http.StatusNotFound, map[string]any{"error": "claim not found"})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func relayReply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}
