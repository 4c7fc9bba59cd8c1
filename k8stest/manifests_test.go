package k8stest

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/svinit/svinit/k8stest/cluster"
)

// examplesDir holds the manifests that replace the vendors' wrappers with svinit.
const examplesDir = "../examples/k8s"

// dryRun creates doc in ns as the API server would (admission, validation, defaults) without
// storing it. Strict field validation turns an unknown or duplicate field into an error
// instead of a warning; the body goes as YAML, as kubectl sends it, so duplicate keys reach
// the server instead of being merged away by a client-side decoder.
func dryRun(t *testing.T, c *cluster.Cluster, ns string, doc []byte, strict bool) (status int, body []byte) {
	t.Helper()
	tm, err := cluster.ReadTypeMeta(doc)
	if err != nil {
		t.Fatal(err)
	}
	path, err := cluster.CollectionPath(tm.APIVersion, tm.Kind, ns)
	if err != nil {
		t.Fatal(err)
	}
	path += "?dryRun=All"
	if strict {
		path += "&fieldValidation=Strict"
	}
	return c.Do(t, http.MethodPost, path, "application/yaml", doc)
}

// exampleFiles returns the manifests in examples/k8s/.
func exampleFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(examplesDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d manifests in %s (%v); want one per example at least", len(files), examplesDir, files)
	}
	return files
}

// TestManifestsDryRun sends every document of every manifest in examples/k8s/ to a real
// API server with server-side dry run, so a schema mistake (a misspelt field, a duplicate
// key, a wrong type, an invalid name) fails CI; then it checks, on the objects as the server
// would store them, what each example is for.
func TestManifestsDryRun(t *testing.T) {
	files := exampleFiles(t)
	c := cluster.Start(t)
	ns := c.Namespace(t)
	accepted := map[string][]byte{} // "Kind/name" -> the server's answer
	sent := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(examplesDir, file)
		for _, doc := range cluster.SplitDocuments(data) {
			tm, err := cluster.ReadTypeMeta(doc)
			if err != nil {
				t.Errorf("%s: %v", rel, err)
				continue
			}
			t.Run(rel+"/"+tm.Kind+"/"+tm.Name, func(t *testing.T) {
				status, body := dryRun(t, c, ns, doc, true)
				if status != http.StatusCreated && status != http.StatusOK {
					t.Errorf("%s %s %s refused: status %d: %s", rel, tm.Kind, tm.Name, status, cluster.StatusMessage(body))
					return
				}
				accepted[tm.Kind+"/"+tm.Name] = body
			})
			sent++
		}
	}
	t.Logf("%d documents in %d files accepted", sent, len(files))

	// Dry run stored nothing: the namespace has no StatefulSet named agdb.
	if status, _ := c.Do(t, http.MethodGet, "/apis/apps/v1/namespaces/"+ns+"/statefulsets/agdb", "", nil); status != http.StatusNotFound {
		t.Errorf("GET the dry-run StatefulSet: status %d, want 404", status)
	}

	t.Run("agdb", func(t *testing.T) {
		spec := podSpecOf(t, accepted, "StatefulSet/agdb")
		main := spec.svinitContainer(t)
		// The vendor's duplicate securityContext dropped runAsUser; the server's copy has it.
		if main.SecurityContext["runAsUser"] != 1000.0 || main.SecurityContext["allowPrivilegeEscalation"] != false {
			t.Errorf("container securityContext %v: want runAsUser 1000 and allowPrivilegeEscalation false together", main.SecurityContext)
		}
		if env := main.env(); !strings.HasSuffix(env["SVINIT_TEMPLATES"], ":/agdb/agdb_server.yaml") {
			t.Errorf("SVINIT_TEMPLATES %q: want the vendor's rendered config path", env["SVINIT_TEMPLATES"])
		}
		var cm struct {
			Data map[string]string `json:"data"`
		}
		mustDecode(t, accepted, "ConfigMap/agdb-config", &cm)
		if _, ok := cm.Data["start.sh"]; ok || !strings.Contains(cm.Data["agdb_server.yaml"], "agdb-{id}.agdb") {
			t.Errorf("ConfigMap keys %v: want agdb_server.yaml with {id} and no start.sh", keysOf(cm.Data))
		}
	})
	t.Run("sv-server", func(t *testing.T) {
		spec := podSpecOf(t, accepted, "Deployment/sv-server")
		main := spec.svinitContainer(t)
		if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds != 120 {
			t.Errorf("terminationGracePeriodSeconds %v, want 120", spec.TerminationGracePeriodSeconds)
		}
		if spec.SecurityContext["runAsUser"] != 1234.0 || spec.SecurityContext["runAsGroup"] != 1234.0 {
			t.Errorf("pod securityContext %v: want user and group 1234", spec.SecurityContext)
		}
		if main.Lifecycle != nil {
			t.Errorf("lifecycle %v: svinit needs no preStop hook", main.Lifecycle)
		}
		if env := main.env(); env["SVINIT_LOCK"] == "" || env["SVINIT_GRACE"] == "" {
			t.Errorf("env %v: want SVINIT_LOCK and SVINIT_GRACE", env)
		}
	})
	t.Run("icap", func(t *testing.T) {
		spec := podSpecOf(t, accepted, "Deployment/md-icapsrv")
		main := spec.svinitContainer(t)
		env := main.env()
		if env["SVINIT_LICENSE_PROVIDER"] == "" || env["SVINIT_LICENSE_STATE"] != "k8s-secret:"+ledgerSecret {
			t.Errorf("env %v: want a license provider and the ledger the Role grants (k8s-secret:%s)", env, ledgerSecret)
		}
		for _, v := range []string{"SVINIT_POD_NAME", "SVINIT_POD_UID", "SVINIT_LICENSE_KEY_FILE"} {
			if _, ok := env[v]; !ok {
				t.Errorf("env has no %s", v)
			}
		}
		if spec.ServiceAccountName != serviceAccount {
			t.Errorf("serviceAccountName %q, want %q (bound to the ledger Role)", spec.ServiceAccountName, serviceAccount)
		}
	})
}

// podSpec is the part of a workload's pod template the example checks read.
type podSpec struct {
	ServiceAccountName            string         `json:"serviceAccountName"`
	TerminationGracePeriodSeconds *int64         `json:"terminationGracePeriodSeconds"`
	SecurityContext               map[string]any `json:"securityContext"`
	Containers                    []container    `json:"containers"`
}

type container struct {
	Name    string   `json:"name"`
	Command []string `json:"command"`
	Env     []struct {
		Name      string `json:"name"`
		Value     string `json:"value"`
		ValueFrom any    `json:"valueFrom"`
	} `json:"env"`
	SecurityContext map[string]any `json:"securityContext"`
	Lifecycle       map[string]any `json:"lifecycle"`
}

// env maps each variable to its value ("" for one from the downward API).
func (c container) env() map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

// svinitContainer is the one container whose command is svinit.
func (s podSpec) svinitContainer(t *testing.T) container {
	t.Helper()
	for _, c := range s.Containers {
		if strings.Join(c.Command, " ") == "/usr/local/bin/svinit --" {
			return c
		}
	}
	t.Fatalf("no container runs /usr/local/bin/svinit -- (containers %+v)", s.Containers)
	return container{}
}

func podSpecOf(t *testing.T, accepted map[string][]byte, key string) podSpec {
	t.Helper()
	var w struct {
		Spec struct {
			Template struct {
				Spec podSpec `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	mustDecode(t, accepted, key, &w)
	return w.Spec.Template.Spec
}

func mustDecode(t *testing.T, accepted map[string][]byte, key string, v any) {
	t.Helper()
	body, ok := accepted[key]
	if !ok {
		t.Fatalf("%s was not accepted by the dry run (or is not in examples/k8s)", key)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestManifestsUseRealOptions checks every SVINIT_ variable the examples set against
// svinit's own --help, so a misspelt or renamed option fails here rather than being ignored
// in a cluster, and that each example directory has its README.
func TestManifestsUseRealOptions(t *testing.T) {
	help, err := exec.Command(svinitBin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("svinit --help: %v\n%s", err, help)
	}
	variable := regexp.MustCompile(`SVINIT_[A-Z0-9_]+`)
	known := map[string]bool{}
	for _, v := range variable.FindAllString(string(help), -1) {
		known[v] = true
	}
	if !known["SVINIT_LICENSE_STATE"] || !known["SVINIT_LICENSE_SWEEP_TIMEOUT"] {
		t.Fatalf("svinit --help lists no SVINIT_LICENSE_STATE or SVINIT_LICENSE_SWEEP_TIMEOUT:\n%s", help)
	}
	used := 0
	for _, file := range exampleFiles(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range variable.FindAllString(string(data), -1) {
			used++
			if !known[v] {
				t.Errorf("%s sets %s, which is not an svinit option (svinit --help)", file, v)
			}
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(file), "README.md")); err != nil {
			t.Errorf("%s has no README.md beside it: %v", file, err)
		}
	}
	t.Logf("%d uses of %d svinit variables checked", used, len(known))
}

// duplicateSecurityContext is the vendor's agdb StatefulSet, trimmed to the container that
// repeats securityContext: the first one (with runAsUser) is silently replaced by the second.
const duplicateSecurityContext = `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: agdb
spec:
  serviceName: "agdb"
  selector:
    matchLabels:
      app: agdb
  template:
    metadata:
      labels:
        app: agdb
    spec:
      containers:
        - name: agdb
          image: agnesoft/agdb:dev
          command: ["sh", "/agdb/config/start.sh"]
          securityContext:
            runAsUser: 1000
            runAsGroup: 1000
          securityContext:
            allowPrivilegeEscalation: false
`

// TestDryRunRefusesDuplicateKeys shows that TestManifestsDryRun has teeth: the seed's
// duplicate securityContext is refused under strict validation, and without it the server
// keeps only the second one, so the pod would run as whatever user the image says.
func TestDryRunRefusesDuplicateKeys(t *testing.T) {
	c := cluster.Start(t)
	ns := c.Namespace(t)

	status, body := dryRun(t, c, ns, []byte(duplicateSecurityContext), true)
	msg := cluster.StatusMessage(body)
	if status != http.StatusBadRequest || !strings.Contains(msg, `key "securityContext" already set`) {
		t.Errorf("strict dry run of the duplicate securityContext: status %d %q; want 400 naming the duplicate securityContext", status, msg)
	} else {
		t.Logf("refused as it should be: %s", msg)
	}

	status, body = dryRun(t, c, ns, []byte(duplicateSecurityContext), false)
	if status != http.StatusCreated {
		t.Fatalf("lenient dry run: status %d: %s", status, cluster.StatusMessage(body))
	}
	var sts struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						SecurityContext map[string]any `json:"securityContext"`
					} `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(body, &sts); err != nil || len(sts.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("lenient dry run answered %s: %v", body, err)
	}
	sc := sts.Spec.Template.Spec.Containers[0].SecurityContext
	if _, ok := sc["runAsUser"]; ok || sc["allowPrivilegeEscalation"] != false {
		t.Errorf("lenient dry run kept securityContext %v; want only the second one (runAsUser dropped)", sc)
	}
}

// TestICAPRoleIsLeastPrivilege applies examples/k8s/icap/rbac.yaml as it is and checks,
// with the ServiceAccount's own token, that the Role allows what svinit's Secret ledger and
// zombie sweep do and refuses the rest.
func TestICAPRoleIsLeastPrivilege(t *testing.T) {
	const (
		sa     = serviceAccount
		ledger = ledgerSecret
	)
	rbac, err := os.ReadFile(filepath.Join(examplesDir, "icap", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c := cluster.Start(t)
	ns := c.Namespace(t)
	c.Apply(t, ns, rbac)
	token := c.ServiceAccountToken(t, ns, sa)
	c.WaitAllowed(t, ns, sa, "get", "pods", "")
	c.CreatePod(t, ns, "md-icapsrv-0")

	secrets := "/api/v1/namespaces/" + ns + "/secrets"
	pods := "/api/v1/namespaces/" + ns + "/pods"
	const jsonType = "application/json"
	for _, tc := range []struct {
		what, method, path, contentType, body string
		want                                  int
	}{
		{"create the ledger", http.MethodPost, secrets, jsonType, `{"metadata":{"name":"` + ledger + `"}}`, http.StatusCreated},
		{"get the ledger", http.MethodGet, secrets + "/" + ledger, "", "", http.StatusOK},
		{"patch an entry", http.MethodPatch, secrets + "/" + ledger, "application/merge-patch+json", `{"stringData":{"md-icapsrv-0":"{}"}}`, http.StatusOK},
		{"update the ledger", http.MethodPut, secrets + "/" + ledger, jsonType, `{"metadata":{"name":"` + ledger + `"},"data":{}}`, http.StatusOK},
		{"get a live pod", http.MethodGet, pods + "/md-icapsrv-0", "", "", http.StatusOK},
		// 404, not 403: the sweep tells a dead pod from a missing permission.
		{"get a dead pod", http.MethodGet, pods + "/md-icapsrv-gone", "", "", http.StatusNotFound},

		{"get another Secret", http.MethodGet, secrets + "/mdicapsrv-license-key", "", "", http.StatusForbidden},
		{"list Secrets", http.MethodGet, secrets, "", "", http.StatusForbidden},
		{"watch the ledger", http.MethodGet, secrets + "?watch=1&fieldSelector=metadata.name%3D" + ledger, "", "", http.StatusForbidden},
		{"delete the ledger", http.MethodDelete, secrets + "/" + ledger, "", "", http.StatusForbidden},
		{"list pods", http.MethodGet, pods, "", "", http.StatusForbidden},
		{"delete a pod", http.MethodDelete, pods + "/md-icapsrv-0", "", "", http.StatusForbidden},
		{"get a ConfigMap", http.MethodGet, "/api/v1/namespaces/" + ns + "/configmaps/x", "", "", http.StatusForbidden},
	} {
		status, body := c.DoAs(t, token, tc.method, tc.path, tc.contentType, []byte(tc.body))
		if status != tc.want {
			t.Errorf("%s (%s %s): status %d, want %d: %s", tc.what, tc.method, tc.path, status, tc.want, cluster.StatusMessage(body))
		}
	}
}

// TestLeaseRoleIsLeastPrivilege applies examples/k8s/lease/rbac.yaml as it is and checks,
// with the ServiceAccount's own token, that the Role allows what svinit's --lock
// k8s-lease:NAME does (create the Lease, get and update it) and refuses the rest. Create
// cannot be limited by name in RBAC (the name is not known when it is authorized).
func TestLeaseRoleIsLeastPrivilege(t *testing.T) {
	rbac, name, sa := leaseRBAC(t)
	c := cluster.Start(t)
	ns := c.Namespace(t)
	c.Apply(t, ns, rbac)
	token := c.ServiceAccountToken(t, ns, sa)
	c.WaitAllowed(t, ns, sa, "get", "coordination.k8s.io/leases", name)

	leases := "/apis/coordination.k8s.io/v1/namespaces/" + ns + "/leases"
	const jsonType = "application/json"
	do := func(what, method, path, contentType, body string, want int) []byte {
		t.Helper()
		status, resp := c.DoAs(t, token, method, path, contentType, []byte(body))
		if status != want {
			t.Errorf("%s (%s %s): status %d, want %d: %s", what, method, path, status, want, cluster.StatusMessage(resp))
		}
		return resp
	}
	do("create the Lease", http.MethodPost, leases, jsonType, `{"metadata":{"name":"`+name+`"},"spec":{"holderIdentity":"x_00000000"}}`, http.StatusCreated)
	var got struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(do("get the Lease", http.MethodGet, leases+"/"+name, "", "", http.StatusOK), &got); err != nil {
		t.Fatal(err)
	}
	do("update the Lease", http.MethodPut, leases+"/"+name, jsonType,
		`{"metadata":{"name":"`+name+`","resourceVersion":"`+got.Metadata.ResourceVersion+`"},"spec":{"holderIdentity":""}}`, http.StatusOK)

	c.Apply(t, ns, []byte("apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: another\n"))
	for _, tc := range []struct{ what, method, path, contentType, body string }{
		{"get another Lease", http.MethodGet, leases + "/another", "", ""},
		{"update another Lease", http.MethodPut, leases + "/another", jsonType, `{"metadata":{"name":"another"},"spec":{}}`},
		{"list Leases", http.MethodGet, leases, "", ""},
		{"watch the Lease", http.MethodGet, leases + "?watch=1&fieldSelector=metadata.name%3D" + name, "", ""},
		{"patch the Lease", http.MethodPatch, leases + "/" + name, "application/merge-patch+json", `{"spec":{"holderIdentity":"y_00000000"}}`},
		{"delete the Lease", http.MethodDelete, leases + "/" + name, "", ""},
		{"get a Secret", http.MethodGet, "/api/v1/namespaces/" + ns + "/secrets/x", "", ""},
		{"get a pod", http.MethodGet, "/api/v1/namespaces/" + ns + "/pods/x", "", ""},
	} {
		do(tc.what, tc.method, tc.path, tc.contentType, tc.body, http.StatusForbidden)
	}
}
