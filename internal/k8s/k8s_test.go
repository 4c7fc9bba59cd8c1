package k8s

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The calls themselves are tested against a real API server in k8stest; these are the parts
// that need none.

// TestEntryKey: every pod name the API allows gives a valid Secret key, unique by UID.
func TestEntryKey(t *testing.T) {
	const uid = "0b3c9a4e-6f6d-4a55-9d0e-2f1a6c1e9b77"
	validKey := regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
	for _, pod := range []string{"icap-0", "md-icapsrv-7d9f8c6b5-x2x9q", strings.Repeat("p", 253)} {
		key := entryKey(pod, uid)
		if len(key) > maxKey || !validKey.MatchString(key) || !strings.HasSuffix(key, "_"+uid) {
			t.Errorf("entryKey(%.20s..., uid) = %q (%d bytes): not a Secret key ending in the UID", pod, key, len(key))
		}
	}
	if got := entryKey("icap-0", uid); got != "icap-0_"+uid {
		t.Errorf("entryKey = %q", got)
	}
}

func TestInClusterErrors(t *testing.T) {
	env := func(dir string) func(string) (string, bool) {
		vars := map[string]string{"SVINIT_K8S_SA_DIR": dir, "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	saDir := func(t *testing.T, files map[string]string) string {
		dir := t.TempDir()
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	ca := testCA(t)

	if _, err := InCluster(func(string) (string, bool) { return "", false }); err == nil || !strings.Contains(err.Error(), "KUBERNETES_SERVICE_HOST") {
		t.Errorf("outside a pod: %v", err)
	}
	for _, tc := range []struct {
		what  string
		files map[string]string
		want  string
	}{
		{"no token mounted", map[string]string{}, "automountServiceAccountToken"},
		{"no CA", map[string]string{"namespace": "ns"}, "cluster CA"},
		{"CA not PEM", map[string]string{"namespace": "ns", "ca.crt": "x", "token": "t"}, "no PEM certificate"},
		{"empty token", map[string]string{"namespace": "ns", "ca.crt": ca, "token": "\n"}, "is empty"},
	} {
		if _, err := InCluster(env(saDir(t, tc.files))); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.what, err, tc.want)
		}
	}

	c, err := InCluster(env(saDir(t, map[string]string{"namespace": "ns\n", "ca.crt": ca, "token": "t1\n"})))
	if err != nil {
		t.Fatal(err)
	}
	if c.Namespace() != "ns" || c.base != "https://10.96.0.1:443" {
		t.Errorf("namespace %q, base %q", c.Namespace(), c.base)
	}
}

func testCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// An answer that is not a Kubernetes Status (a proxy's error page) is cut short in the error.
func TestForeignErrorBodyIsCut(t *testing.T) {
	page := "<html>" + strings.Repeat("x", 4096) + "</html>"
	err := (&Client{}).apiError(&http.Response{StatusCode: http.StatusBadGateway}, []byte(page), "get", "pods", "", "web-0")
	if msg := err.Error(); len(msg) > maxForeignBody+200 || !strings.Contains(msg, "<html>xxx") {
		t.Errorf("error of %d bytes: %.300s", len(msg), msg)
	}
}

// A sweep whose budget runs out while it looks pods up still gets the entries it looked up:
// giving back some dead pods' seats at every start beats giving back none at any.
func TestOthersAnswersWhatItLookedUpByTheDeadline(t *testing.T) {
	data := map[string][]byte{}
	for _, pod := range []string{"web-1", "web-2", "web-3", "web-4"} {
		data[entryKey(pod, "old-uid")] = []byte(`{"pod":"` + pod + `","pod_uid":"old-uid","instance":"` + pod + `"}`)
	}
	secret, _ := json.Marshal(map[string]any{"metadata": map[string]any{"name": "licenses"}, "data": data})
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/pods/") {
			if !strings.HasSuffix(r.URL.Path, "/web-1") {
				<-r.Context().Done() // a slow API server, for every pod but the first
				return
			}
			http.Error(w, `{"kind":"Status","reason":"NotFound","message":"gone"}`, http.StatusNotFound)
			return
		}
		w.Write(secret)
	}))
	defer ts.Close()
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("t"), 0o600)
	c := &Client{base: ts.URL, namespace: "ns", tokenPath: token, http: ts.Client()}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	others, partial, err := NewLedger(c, "licenses", "web-0", "uid-0").Others(ctx)
	if err != nil || !partial || len(others) != 1 || others[0].Pod != "web-1" || others[0].Alive {
		t.Errorf("Others = %+v, partial %v, %v; want web-1 dead, and partial", others, partial, err)
	}
}
