package license

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/svinit/svinit/internal/license/licensetest"
)

// The generic provider, configured for OPSWAT's API, behaves as the preset does.
func TestHTTPGenericSpeaksOPSWAT(t *testing.T) {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1, Keys: []string{testKey}})
	p := newProvider(t, Config{Provider: ProviderHTTP, URL: srv.URL, Key: testKey, HTTP: HTTPConfig{
		Activate:     HTTPRequest{URL: "{{.URL}}/activation?key={{query .Key}}&deployment={{query .Instance}}&quantity=1"},
		Deactivate:   HTTPRequest{URL: "{{.URL}}/deactivation?key={{query .Key}}&deployment={{query .Instance}}"},
		ErrorField:   "error",
		FileField:    ".",
		NoSeatsMatch: "(?i)no more activations",
	}})
	ctx := context.Background()
	l, err := p.Activate(ctx, "dep-1")
	if err != nil || !strings.Contains(string(l.File), "deployment: dep-1") {
		t.Fatalf("Activate = %+v, %v", l, err)
	}
	if _, err := p.Activate(ctx, "dep-2"); !errors.Is(err, ErrNoSeats) {
		t.Errorf("Activate with no seat = %v; want ErrNoSeats from the error field", err)
	}
	if err := p.Deactivate(ctx, "dep-1", l); err != nil {
		t.Errorf("Deactivate: %v", err)
	}
	assertNoKey(t, "error", errors.Join(p.Deactivate(ctx, "dep-1", l)).Error())
	noLeak(t, srv)
}

// Templates render method, URL, headers and body with the right escaping; fields are read
// from nested JSON.
func TestHTTPGenericTemplates(t *testing.T) {
	type seen struct {
		method, uri, auth, body string
	}
	var mu sync.Mutex
	var got []seen
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.RequestURI, r.Header.Get("Authorization"), string(b)})
		mu.Unlock()
		switch {
		case r.Method == "POST":
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"data":{"id":"mach-42","attributes":{"ttl":"1m30s","expiry":"2031-01-02T03:04:05Z","file":"LIC"}}}`)
		case r.Method == "PATCH":
			http.Error(w, `{"errors":[{"code":"NOT_FOUND"}]}`, http.StatusNotFound)
		case r.Method == "DELETE":
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer ts.Close()
	p := newProvider(t, Config{Provider: ProviderHTTP, URL: ts.URL, Key: testKey, HTTP: HTTPConfig{
		Activate: HTTPRequest{
			URL:    "{{.URL}}/machines",
			Header: map[string]string{"Authorization": "License {{.Key}}", "Content-Type": "application/json"},
			Body:   `{"key":"{{json .Key}}","fingerprint":"{{json .Instance}}"}`,
		},
		Heartbeat:    HTTPRequest{Method: "PATCH", URL: "{{.URL}}/machines/{{path .ID}}"},
		Deactivate:   HTTPRequest{Method: "DELETE", URL: "{{.URL}}/machines/{{path .ID}}?key={{query .Key}}"},
		IDField:      "data.id",
		TTLField:     "data.attributes.ttl",
		ExpiresField: "data.attributes.expiry",
		FileField:    "data.attributes.file",
	}})
	ctx := context.Background()
	l, err := p.Activate(ctx, `web "0"`)
	if err != nil {
		t.Fatalf("Activate: %v", err)
	}
	want := Lease{ID: "mach-42", TTL: 90 * time.Second, Expires: time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC), File: []byte("LIC")}
	if l.ID != want.ID || l.TTL != want.TTL || !l.Expires.Equal(want.Expires) || string(l.File) != "LIC" {
		t.Errorf("lease = %+v; want %+v", l, want)
	}
	if _, err := p.Heartbeat(ctx, `web "0"`, l); !errors.Is(err, ErrNotFound) {
		t.Errorf("Heartbeat on 404 = %v; want ErrNotFound", err)
	}
	if err := p.Deactivate(ctx, `web "0"`, l); err != nil {
		t.Errorf("Deactivate: %v", err)
	}

	var body map[string]string
	if err := json.Unmarshal([]byte(got[0].body), &body); err != nil || body["key"] != testKey || body["fingerprint"] != `web "0"` {
		t.Errorf("activate body %q does not carry key and instance as JSON strings (%v)", got[0].body, err)
	}
	if got[0].method != "POST" || got[0].uri != "/machines" || got[0].auth != "License "+testKey {
		t.Errorf("activate request = %+v", got[0])
	}
	if got[1].method != "PATCH" || got[1].uri != "/machines/mach-42" {
		t.Errorf("heartbeat request = %+v; want PATCH /machines/mach-42", got[1])
	}
	if got[2].method != "DELETE" || !strings.HasPrefix(got[2].uri, "/machines/mach-42?key=") {
		t.Errorf("deactivate request = %+v", got[2])
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"unknown", Config{Provider: "flexlm"}, []string{`"flexlm" unknown`}},
		{"opswat without key", Config{Provider: ProviderOPSWAT}, []string{"needs a key"}},
		{"relay without url", Config{Provider: ProviderKeygenRelay}, []string{"needs --license-url"}},
		{"bad url", Config{Provider: ProviderKeygenRelay, URL: "ftp://user:hunter2@relay"}, []string{"want an absolute http"}},
		{"exec without anything", Config{Provider: ProviderExec}, []string{"--license-activate-cmd", "--license-deactivate-cmd", "Runner"}},
		{"http with bad templates", Config{Provider: ProviderHTTP, URL: "https://l.example.com", HTTP: HTTPConfig{
			Activate:      HTTPRequest{URL: "{{.URL}}/a?t={{.Token}}"},
			Deactivate:    HTTPRequest{URL: "{{.URL}/d"},
			NoSeatsMatch:  "(",
			SuccessStatus: []int{42},
		}}, []string{"activate url template", "deactivate url template", "no-seats pattern", "status 42"}},
		{"http without requests", Config{Provider: ProviderHTTP, URL: "https://l.example.com"}, []string{"activate request needs a URL", "deactivate request needs a URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(withHelper(tc.cfg))
			if err == nil {
				t.Fatalf("New = %v, nil; want an error", p)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the URL's password:\n%v", err)
			}
		})
	}
}
