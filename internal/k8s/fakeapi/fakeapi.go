// Package fakeapi is a Kubernetes API server double for svinit's tests: the Leases of one
// namespace over TLS, with the real API's answers (Status objects, 404, 409 on a stale
// resourceVersion, 403) and a service-account directory that svinit-net's in-cluster
// configuration reads.
package fakeapi

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Namespace is the pod's namespace the double serves.
const Namespace = "svinit-test"

const token = "fake-sa-token"

// Server is the API server double.
type Server struct {
	ts    *httptest.Server
	SADir string // token, ca.crt, namespace

	mu     sync.Mutex
	leases map[string]map[string]any // name -> object as JSON
	rv     int
	down   bool
	denied map[string]bool // verbs answered 403
	writes []string        // holders written, in order, for the tests' history
}

// Start serves until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{leases: map[string]map[string]any{}, denied: map[string]bool{}}
	s.ts = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.ts.Config.ErrorLog = log.New(io.Discard, "", 0) // a helper killed mid-handshake is no news
	s.ts.StartTLS()
	t.Cleanup(s.ts.Close)
	s.SADir = t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ts.Certificate().Raw})
	for name, content := range map[string][]byte{"token": []byte(token + "\n"), "ca.crt": ca, "namespace": []byte(Namespace)} {
		if err := os.WriteFile(filepath.Join(s.SADir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// Env is the environment of a pod of this API server, as KEY=VALUE.
func (s *Server) Env() []string {
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(s.ts.URL, "https://"))
	return []string{"KUBERNETES_SERVICE_HOST=" + host, "KUBERNETES_SERVICE_PORT=" + port, "SVINIT_K8S_SA_DIR=" + s.SADir}
}

// Lookup is Env as an environment lookup.
func (s *Server) Lookup(name string) (string, bool) {
	for _, kv := range s.Env() {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, true
		}
	}
	return "", false
}

// SetDown makes every request fail with 503, as an API server outage does, or serves again.
func (s *Server) SetDown(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

// Deny answers verb (get, create, update) with 403.
func (s *Server) Deny(verb string) { s.mu.Lock(); s.denied[verb] = true; s.mu.Unlock() }

// Holder returns the Lease name's holder, and whether the Lease exists.
func (s *Server) Holder(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj, ok := s.leases[name]
	if !ok {
		return "", false
	}
	h, _ := obj["spec"].(map[string]any)["holderIdentity"].(string)
	return h, true
}

// Spec returns the Lease name's spec.
func (s *Server) Spec(name string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if obj, ok := s.leases[name]; ok {
		return obj["spec"].(map[string]any)
	}
	return nil
}

// Writes returns the holder of every write that succeeded, in order ("" for a cleared one).
func (s *Server) Writes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.writes...)
}

// Put writes a Lease as another contender would.
func (s *Server) Put(name string, spec map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.store(name, map[string]any{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": map[string]any{"name": name}, "spec": spec})
}

func (s *Server) store(name string, obj map[string]any) {
	s.rv++
	meta := obj["metadata"].(map[string]any)
	meta["resourceVersion"] = fmt.Sprint(s.rv)
	meta["namespace"] = Namespace
	if obj["spec"] == nil {
		obj["spec"] = map[string]any{}
	}
	s.leases[name] = obj
	h, _ := obj["spec"].(map[string]any)["holderIdentity"].(string)
	s.writes = append(s.writes, h)
}

func status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": msg, "code": code})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		status(w, http.StatusServiceUnavailable, "ServiceUnavailable", "the API server is down")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+token {
		status(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	prefix := "/apis/coordination.k8s.io/v1/namespaces/" + Namespace + "/leases"
	rest, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		status(w, http.StatusNotFound, "NotFound", "the server could not find the requested resource")
		return
	}
	name := strings.TrimPrefix(rest, "/")
	verb := map[string]string{http.MethodGet: "get", http.MethodPost: "create", http.MethodPut: "update"}[r.Method]
	if verb == "" {
		status(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "method not allowed")
		return
	}
	if s.denied[verb] {
		status(w, http.StatusForbidden, "Forbidden", `leases.coordination.k8s.io is forbidden: User "system:serviceaccount:`+Namespace+`:default" cannot `+verb+` resource "leases"`)
		return
	}
	var body map[string]any
	if verb != "get" {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body["metadata"] == nil {
			status(w, http.StatusBadRequest, "BadRequest", "cannot decode the object")
			return
		}
	}
	switch verb {
	case "get":
		obj, ok := s.leases[name]
		if !ok {
			status(w, http.StatusNotFound, "NotFound", `leases.coordination.k8s.io "`+name+`" not found`)
			return
		}
		json.NewEncoder(w).Encode(obj)
	case "create":
		name, _ = body["metadata"].(map[string]any)["name"].(string)
		if _, ok := s.leases[name]; ok {
			status(w, http.StatusConflict, "AlreadyExists", `leases.coordination.k8s.io "`+name+`" already exists`)
			return
		}
		s.store(name, body)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(body)
	case "update":
		old, ok := s.leases[name]
		if !ok {
			status(w, http.StatusNotFound, "NotFound", `leases.coordination.k8s.io "`+name+`" not found`)
			return
		}
		rv, _ := body["metadata"].(map[string]any)["resourceVersion"].(string)
		if rv == "" {
			status(w, http.StatusUnprocessableEntity, "Invalid", "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update")
			return
		}
		if rv != old["metadata"].(map[string]any)["resourceVersion"] {
			status(w, http.StatusConflict, "Conflict", `Operation cannot be fulfilled on leases.coordination.k8s.io "`+name+`": the object has been modified; please apply your changes to the latest version and try again`)
			return
		}
		s.store(name, body)
		json.NewEncoder(w).Encode(body)
	}
}
