package k8stest

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svinit/svinit/k8stest/cluster"
)

// TestServiceAccountTokenIsSubjectToRBAC proves the harness gives real authentication and
// authorization: a ServiceAccount's token from ServiceAccountDir may do what its Role allows
// and nothing else, and the API server says why not.
func TestServiceAccountTokenIsSubjectToRBAC(t *testing.T) {
	c := cluster.Start(t)
	ns := c.Namespace(t)
	c.Apply(t, ns, []byte(`
apiVersion: v1
kind: ConfigMap
metadata:
  name: readable
data:
  k: v
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: hidden
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: reader
rules:
  - apiGroups: [""]
    resources: ["configmaps"]
    resourceNames: ["readable"]
    verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: reader
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: reader
subjects:
  - kind: ServiceAccount
    name: reader
`))
	dir := c.ServiceAccountDir(t, ns, "reader")
	token := readFile(t, dir, "token")
	if got := readFile(t, dir, "namespace"); got != ns {
		t.Errorf("namespace file %q, want %q", got, ns)
	}
	if ca := readFile(t, dir, "ca.crt"); ca != readFile(t, filepath.Dir(c.CAFile), filepath.Base(c.CAFile)) {
		t.Error("ca.crt is not the cluster's CA")
	}
	c.WaitAllowed(t, ns, "reader", "get", "configmaps", "readable")

	cm := "/api/v1/namespaces/" + ns + "/configmaps/"
	status, body := c.DoAs(t, token, http.MethodGet, cm+"readable", "", nil)
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"k":"v"`)) {
		t.Fatalf("GET the allowed ConfigMap: status %d: %s", status, cluster.StatusMessage(body))
	}

	user := "system:serviceaccount:" + ns + ":reader"
	for _, tc := range []struct {
		what, method, path, want string
	}{
		{"another verb", http.MethodDelete, cm + "readable", `cannot delete resource "configmaps"`},
		{"another object", http.MethodGet, cm + "hidden", `cannot get resource "configmaps"`},
		{"the collection", http.MethodGet, "/api/v1/namespaces/" + ns + "/configmaps", `cannot list resource "configmaps"`},
		{"another resource", http.MethodGet, "/api/v1/namespaces/" + ns + "/secrets/readable", `cannot get resource "secrets"`},
		{"another namespace", http.MethodGet, "/api/v1/namespaces/default/configmaps/readable", `in the namespace "default"`},
	} {
		status, body := c.DoAs(t, token, tc.method, tc.path, "", nil)
		msg := cluster.StatusMessage(body)
		if status != http.StatusForbidden || !strings.Contains(msg, tc.want) || !strings.Contains(msg, user) {
			t.Errorf("%s (%s %s): status %d %q; want 403 naming %q and %q", tc.what, tc.method, tc.path, status, msg, user, tc.want)
		}
	}

	// The token is verified, not trusted: a forged signature is not a user at all.
	if status, body := c.DoAs(t, token[:len(token)-4]+"AAAA", http.MethodGet, cm+"readable", "", nil); status != http.StatusUnauthorized {
		t.Errorf("forged token: status %d %s; want 401", status, cluster.StatusMessage(body))
	}
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
