package netcmd

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/svinit/svinit/internal/license"
)

func probe(t *testing.T, check string, extra ...string) (int, license.HelperReply) {
	t.Helper()
	env := map[string]string{license.EnvNetCheck: check}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	var stdout, stderr bytes.Buffer
	code := Run([]string{license.HelperName, "probe"}, lookup, &stdout, &stderr, "dev")
	var r license.HelperReply
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("probe %s: exit %d, reply %q: %v", check, code, stdout.String(), err)
	}
	return code, r
}

// svinit-net probe: exit 0 when the check passes, 69 with the reason when it does not, 2
// for a check it cannot run; a URL's password never appears in the reason.
func TestProbe(t *testing.T) {
	status := http.StatusServiceUnavailable
	var gotAuth string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		w.WriteHeader(status)
		w.Write([]byte("body never logged"))
	}))
	defer ts.Close()
	withPass := strings.Replace(ts.URL, "http://", "http://probe:s3cret@", 1) + "/healthz"
	code, r := probe(t, withPass)
	if code != license.ExitProbeFailed || !strings.Contains(r.Error, "503 Service Unavailable") || strings.Contains(r.Error, "s3cret") || strings.Contains(r.Error, "body never") {
		t.Errorf("503: exit %d, error %q", code, r.Error)
	}
	if gotAuth == "" {
		t.Error("the URL's user and password were not sent")
	}
	status = http.StatusNoContent
	if code, r := probe(t, withPass); code != 0 || r.Error != "" {
		t.Errorf("204: exit %d, error %q", code, r.Error)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if code, r := probe(t, "tcp://"+addr); code != 0 {
		t.Errorf("tcp listening: exit %d, error %q", code, r.Error)
	}
	ln.Close()
	if code, r := probe(t, "tcp://"+addr); code != license.ExitProbeFailed || !strings.Contains(r.Error, "refused") {
		t.Errorf("tcp closed: exit %d, error %q", code, r.Error)
	}

	// A server that never answers: the deadline svinit gives ends the attempt.
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hung.Close()
	soon := strconv.FormatInt(time.Now().Add(50*time.Millisecond).UnixMilli(), 10)
	if code, r := probe(t, hung.URL, license.EnvNetDeadline, soon); code != license.ExitProbeFailed || !strings.Contains(r.Error, "deadline") {
		t.Errorf("unanswered: exit %d, error %q", code, r.Error)
	}

	for _, bad := range []string{"", "file:/x", "exec:true", "tcp://nohost"} {
		if code, r := probe(t, bad); code != license.ExitHelperUsage || r.Error == "" {
			t.Errorf("probe %q: exit %d, error %q; want 2 and why", bad, code, r.Error)
		}
	}
}
