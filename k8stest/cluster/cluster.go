// Package cluster starts a real Kubernetes API server for tests: etcd (Debian's etcd-server)
// and kube-apiserver (built by k8stest/build-apiserver) on loopback, with RBAC, a static
// admin token, a generated CA and a service-account signing key. There is no kubelet,
// scheduler or controller-manager: a Pod stays Pending, and nothing creates objects behind a
// test's back.
//
// StartNode (node.go) adds the rest of a single-node cluster, with a containerd and a kubelet
// of its own, for tests on real pods.
//
// Start gives a *Cluster (6-13 s on a busy 2-core machine) and stops it when the test ends;
// tests that need no isolation from each other can share one through subtests. Requests go
// through Do (as admin) or DoAs (any bearer token, e.g. a ServiceAccount's from
// ServiceAccountDir); Apply creates or updates objects by server-side apply; CreatePod,
// DeletePod and TerminatingPod make the pods a ledger refers to. Only the standard library
// is used: the tests speak the same wire protocol as svinit's own client, not client-go's.
//
// What the missing controllers mean: a deleted namespace stays Terminating (so Namespace
// hands out fresh ones and never deletes), the ServiceAccount admission plugin is off (no
// namespace gets a "default" ServiceAccount), and ServiceAccount tokens come only from the
// TokenRequest API. etcd 3.4 lacks watch progress requests, so the API server serves
// consistent lists from etcd instead of its cache (it logs this once); nothing else differs.
package cluster

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// APIServerVersion is the kube-apiserver version k8stest/build-apiserver builds and caches.
const APIServerVersion = "v1.34.4"

// BuildCommand is what a developer runs to get the kube-apiserver binary Start needs.
const BuildCommand = "k8stest/build-apiserver"

// How long Start waits for etcd and for kube-apiserver to report ready; cold starts on a
// loaded 2-core machine take several seconds.
const (
	etcdReadyTimeout      = 30 * time.Second
	apiserverReadyTimeout = 90 * time.Second
	stopTimeout           = 10 * time.Second
	requestTimeout        = 30 * time.Second
	pollInterval          = 50 * time.Millisecond
)

// Cluster is a running API server. Its fields are what an in-cluster client gets from the
// environment and the service-account directory.
type Cluster struct {
	URL        string // https://127.0.0.1:PORT
	Host, Port string // KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT
	CAFile     string // PEM of the CA that signed the serving certificate (ca.crt)
	AdminToken string // bearer token of a member of system:masters

	client *http.Client
}

// Start starts etcd and kube-apiserver for the test and stops both (and removes their data)
// when it ends. The binaries: kube-apiserver from $SVINIT_KUBE_APISERVER, else
// ${SVINIT_CACHE:-~/.cache/svinit}/kube-apiserver-APIServerVersion; etcd from $SVINIT_ETCD,
// else PATH. A missing binary fails the test with the command that provides it, or skips it
// under `go test -short`.
func Start(t testing.TB) *Cluster {
	t.Helper()
	apiserverBin, etcdBin := binaries(t)
	c, _ := start(t, t.TempDir(), apiserverBin, etcdBin, "127.0.0.1", nil, nil)
	return c
}

// start runs etcd and kube-apiserver with their files in dir, the API server on host (which
// its serving certificate covers, with serverIPs) with extraArgs(its pki) appended to its
// flags.
func start(t testing.TB, dir, apiserverBin, etcdBin, host string, serverIPs []net.IP, extraArgs func(pki) []string) (*Cluster, pki) {
	t.Helper()
	pki, err := writePKI(dir, serverIPs...)
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	adminToken := randomToken()
	tokens := filepath.Join(dir, "tokens.csv")
	// token,user,uid,"group,..."
	line := fmt.Sprintf("%s,k8stest-admin,k8stest-admin,\"system:masters\"\n", adminToken)
	if err := os.WriteFile(tokens, []byte(line), 0o600); err != nil {
		t.Fatalf("cluster: %v", err)
	}
	var extra []string
	if extraArgs != nil {
		extra = extraArgs(pki)
	}

	began := time.Now()
	etcdURL := startEtcd(t, etcdBin, dir)
	port := startAPIServer(t, apiserverBin, dir, etcdURL, host, pki, tokens, adminToken, extra)

	c := &Cluster{
		URL:        "https://" + net.JoinHostPort(host, port),
		Host:       host,
		Port:       port,
		CAFile:     pki.caFile,
		AdminToken: adminToken,
		client:     newClient(pki.caPool),
	}
	t.Logf("cluster: kube-apiserver %s at %s ready in %v", APIServerVersion, c.URL, time.Since(began).Round(time.Millisecond))
	return c, pki
}

func binaries(t testing.TB) (apiserver, etcd string) {
	t.Helper()
	apiserver = os.Getenv("SVINIT_KUBE_APISERVER")
	if apiserver == "" {
		apiserver = cached(t, "kube-apiserver")
	}
	if fi, err := os.Stat(apiserver); err != nil || fi.Mode()&0o111 == 0 {
		missing(t, "no kube-apiserver binary at "+apiserver, BuildCommand+"   (from the repository root)")
	}
	etcd = os.Getenv("SVINIT_ETCD")
	if etcd == "" {
		etcd = "etcd"
	}
	if _, err := exec.LookPath(etcd); err != nil {
		missing(t, "no etcd: "+err.Error(), "apt-get install etcd-server   (or "+BuildCommand+", which installs it)")
	}
	return apiserver, etcd
}

// cached returns the path k8stest/build-apiserver caches component at:
// ${SVINIT_CACHE:-~/.cache/svinit}/COMPONENT-APIServerVersion.
func cached(t testing.TB, component string) string {
	t.Helper()
	cache := os.Getenv("SVINIT_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("cluster: no SVINIT_CACHE and no home directory: %v", err)
		}
		cache = filepath.Join(home, ".cache", "svinit")
	}
	return filepath.Join(cache, component+"-"+APIServerVersion)
}

// missing fails the test for lack of what (fix provides it), or skips it under -short.
func missing(t testing.TB, what, fix string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("cluster: %s; skipped under -short (provide it with: %s)", what, fix)
	}
	t.Fatalf("cluster: %s; provide it with:\n\t%s\n(or run go test -short to skip the tests that need a cluster)", what, fix)
}

// startEtcd runs a one-member etcd on free loopback ports and returns its client URL once it
// reports healthy.
func startEtcd(t testing.TB, bin, dir string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		client, peer := freePort(t), freePort(t)
		clientURL := "http://127.0.0.1:" + client
		peerURL := "http://127.0.0.1:" + peer
		p := startProcess(t, "etcd", bin, filepath.Join(dir, fmt.Sprintf("etcd-%d.log", attempt)),
			"--name=k8stest",
			"--data-dir="+filepath.Join(dir, fmt.Sprintf("etcd-data-%d", attempt)),
			"--listen-client-urls="+clientURL,
			"--advertise-client-urls="+clientURL,
			"--listen-peer-urls="+peerURL,
			"--initial-advertise-peer-urls="+peerURL,
			"--initial-cluster=k8stest="+peerURL,
			"--initial-cluster-state=new",
			"--logger=zap",
			"--log-outputs=stderr",
			"--log-level=warn",
		)
		healthy := func() bool {
			resp, err := http.Get(clientURL + "/health")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"true"`))
		}
		err := p.waitUntil(etcdReadyTimeout, healthy)
		if err == nil {
			return clientURL
		}
		if p.portTaken() && attempt < 3 {
			t.Logf("cluster: etcd: %v; retrying with other ports", err)
			p.stop()
			continue
		}
		p.fail(t, err)
	}
}

// startAPIServer runs kube-apiserver on host against etcdURL and returns its port once
// /readyz answers ok. The extra flags replace the defaults they name.
func startAPIServer(t testing.TB, bin, dir, etcdURL, host string, pki pki, tokens, adminToken string, extra []string) (port string) {
	t.Helper()
	client := newClient(pki.caPool)
	for attempt := 1; ; attempt++ {
		port = freePort(t)
		args := []string{
			"--etcd-servers=" + etcdURL,
			// A fresh prefix per attempt, so a retry never finds a half-initialised store.
			fmt.Sprintf("--etcd-prefix=/registry-%d", attempt),
			"--bind-address=" + host,
			"--advertise-address=" + host,
			"--secure-port=" + port,
			"--cert-dir=" + filepath.Join(dir, "cert-dir"),
			"--tls-cert-file=" + pki.serverCertFile,
			"--tls-private-key-file=" + pki.serverKeyFile,
			"--client-ca-file=" + pki.caFile,
			"--token-auth-file=" + tokens,
			"--authorization-mode=Node,RBAC",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + pki.saPublicFile,
			"--service-account-signing-key-file=" + pki.saKeyFile,
			"--service-cluster-ip-range=10.96.0.0/16",
			// Nothing runs the controllers that would create a namespace's "default"
			// ServiceAccount, so the plugin that requires it would refuse every Pod.
			"--disable-admission-plugins=ServiceAccount",
			// The "kubernetes" Service's endpoints would point at a loopback address, which
			// endpoint validation refuses; nothing here needs them.
			"--endpoint-reconciler-type=none",
			"--profiling=false",
			"--v=1",
		}
		p := startProcess(t, "kube-apiserver", bin, filepath.Join(dir, fmt.Sprintf("kube-apiserver-%d.log", attempt)),
			withFlags(args, extra)...)
		ready := func() bool {
			status, body, err := request(client, http.MethodGet, "https://"+net.JoinHostPort(host, port)+"/readyz", adminToken, "", nil)
			return err == nil && status == http.StatusOK && string(body) == "ok"
		}
		err := p.waitUntil(apiserverReadyTimeout, ready)
		if err == nil {
			return port
		}
		if p.portTaken() && attempt < 3 {
			t.Logf("cluster: kube-apiserver: %v; retrying with another port", err)
			p.stop()
			continue
		}
		p.fail(t, err)
	}
}

// withFlags returns args with each of extra ("--name=value", or "--name" to drop the default)
// in place of the default of the same name, or appended.
func withFlags(args, extra []string) []string {
	out := append([]string(nil), args...)
	for _, e := range extra {
		name, _, hasValue := strings.Cut(e, "=")
		kept := out[:0]
		for _, a := range out {
			if n, _, _ := strings.Cut(a, "="); n != name {
				kept = append(kept, a)
			}
		}
		out = kept
		if hasValue {
			out = append(out, e)
		}
	}
	return out
}

// process is a server started for a test, in its own process group.
type process struct {
	name, log string
	cmd       *exec.Cmd
	exited    chan struct{} // closed once Wait returned
	waitErr   error
	stopped   bool
}

func startProcess(t testing.TB, name, bin, logFile string, args ...string) *process {
	t.Helper()
	log, err := os.Create(logFile)
	if err != nil {
		t.Fatalf("cluster: %s: %v", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	// Own process group: stop reaches whatever the server started. Pdeathsig: a test binary
	// that dies (timeout panic, SIGKILL) takes its servers with it instead of leaking them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("cluster: start %s: %v", name, err)
	}
	p := &process{name: name, log: logFile, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		log.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() && !p.stopped {
			t.Logf("cluster: last lines of the %s log (%s):\n%s", name, logFile, tail(logFile, 40))
		}
		p.stop()
	})
	return p
}

// waitUntil polls ready until it is true, the process exits, or the timeout passes.
func (p *process) waitUntil(timeout time.Duration, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if ready() {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it was ready: %v", p.name, p.waitErr)
		case <-time.After(pollInterval):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v", p.name, timeout)
		}
	}
}

// portTaken tells whether the process failed because another process took the free port
// between freePort and the server's bind.
func (p *process) portTaken() bool {
	data, _ := os.ReadFile(p.log)
	return bytes.Contains(data, []byte("address already in use"))
}

// stop sends SIGTERM to the process group, SIGKILL after stopTimeout, and waits for the exit.
func (p *process) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
	}
	// Anything the server left in its group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

func (p *process) fail(t testing.TB, err error) {
	t.Helper()
	p.stop()
	t.Fatalf("cluster: %v; last lines of %s:\n%s", err, p.log, tail(p.log, 60))
}

func tail(file string, lines int) string {
	data, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cluster: free port: %v", err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func newClient(roots *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 64,
		},
	}
}

func request(client *http.Client, method, url, token, contentType string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// Do sends a request as the admin (system:masters) and returns the status and body; path
// is everything after the host (e.g. "/api/v1/namespaces/NS/pods?limit=1"). A transport
// error fails the test, so call it from the test's goroutine; other goroutines use Request.
func (c *Cluster) Do(t testing.TB, method, path, contentType string, body []byte) (status int, resp []byte) {
	t.Helper()
	return c.DoAs(t, c.AdminToken, method, path, contentType, body)
}

// DoAs is Do with another bearer token, e.g. a ServiceAccount's.
func (c *Cluster) DoAs(t testing.TB, token, method, path, contentType string, body []byte) (status int, resp []byte) {
	t.Helper()
	status, resp, err := c.Request(token, method, path, contentType, body)
	if err != nil {
		t.Fatalf("cluster: %s %s: %v", method, path, err)
	}
	return status, resp
}

// Request is DoAs returning the transport error instead of failing the test: safe from any
// goroutine.
func (c *Cluster) Request(token, method, path, contentType string, body []byte) (status int, resp []byte, err error) {
	return request(c.client, method, c.URL+path, token, contentType, body)
}

// StatusMessage returns the message of a metav1.Status body (what the API server answers
// with on errors), else the body itself.
func StatusMessage(body []byte) string {
	var s struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &s) == nil && s.Kind == "Status" && s.Message != "" {
		return s.Message
	}
	return strings.TrimSpace(string(body))
}

// must fails the test unless status is one of ok.
func must(t testing.TB, what string, status int, body []byte, ok ...int) {
	t.Helper()
	for _, s := range ok {
		if status == s {
			return
		}
	}
	t.Fatalf("cluster: %s: status %d: %s", what, status, StatusMessage(body))
}

var notDNSLabel = regexp.MustCompile(`[^a-z0-9-]+`)

// Namespace creates a fresh namespace named after the test and returns its name. It is not
// deleted (nothing would empty it); the cluster's data goes when the test ends.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	prefix := strings.Trim(notDNSLabel.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(prefix) > 40 {
		prefix = strings.TrimRight(prefix[:40], "-")
	}
	body := fmt.Sprintf(`{"apiVersion":"v1","kind":"Namespace","metadata":{"generateName":%q}}`, prefix+"-")
	status, resp := c.Do(t, http.MethodPost, "/api/v1/namespaces", "application/json", []byte(body))
	must(t, "create namespace", status, resp, http.StatusCreated)
	return objectMeta(t, resp).Name
}

type meta struct {
	Name              string   `json:"name"`
	UID               string   `json:"uid"`
	ResourceVersion   string   `json:"resourceVersion"`
	DeletionTimestamp *string  `json:"deletionTimestamp"`
	Finalizers        []string `json:"finalizers"`
}

func objectMeta(t testing.TB, body []byte) meta {
	t.Helper()
	var obj struct {
		Metadata meta `json:"metadata"`
	}
	if err := json.Unmarshal(body, &obj); err != nil || obj.Metadata.Name == "" {
		t.Fatalf("cluster: no object metadata in %q: %v", body, err)
	}
	return obj.Metadata
}

// Apply creates or updates every object in yamlOrJSON (YAML documents separated by lines
// that are exactly "---", or one JSON object) in namespace ns by server-side apply, as
// admin. Kinds: those of CollectionPath. RBAC objects reach the authorizer a moment after
// they are stored: WaitAllowed before relying on a new binding.
func (c *Cluster) Apply(t testing.TB, ns string, yamlOrJSON []byte) {
	t.Helper()
	docs := SplitDocuments(yamlOrJSON)
	if len(docs) == 0 {
		t.Fatalf("cluster: apply: no object in %q", yamlOrJSON)
	}
	for _, doc := range docs {
		tm, err := ReadTypeMeta(doc)
		if err != nil {
			t.Fatalf("cluster: apply: %v", err)
		}
		if tm.Name == "" {
			t.Fatalf("cluster: apply %s: no metadata.name", tm.Kind)
		}
		collection, err := CollectionPath(tm.APIVersion, tm.Kind, ns)
		if err != nil {
			t.Fatalf("cluster: apply: %v", err)
		}
		path := collection + "/" + url.PathEscape(tm.Name) + "?fieldManager=k8stest&force=true&fieldValidation=Strict"
		status, resp := c.Do(t, http.MethodPatch, path, "application/apply-patch+yaml", doc)
		must(t, fmt.Sprintf("apply %s %s", tm.Kind, tm.Name), status, resp, http.StatusOK, http.StatusCreated)
	}
}

// ServiceAccountDir creates ServiceAccount ns/sa unless it exists, gets a token for it from
// the TokenRequest API (valid one hour, audience the API server), and writes what a pod
// finds in /var/run/secrets/kubernetes.io/serviceaccount/ (token, ca.crt, namespace) to a
// new temporary directory, which it returns: svinit's SVINIT_K8S_SA_DIR.
func (c *Cluster) ServiceAccountDir(t testing.TB, ns, sa string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(c.ServiceAccountToken(t, ns, sa)), 0o600); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(c.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "namespace"), []byte(ns), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// InClusterEnv returns the variables a process in a pod uses to find the API server, plus
// SVINIT_K8S_SA_DIR=saDir (from ServiceAccountDir) in place of the pod's mounted
// service-account directory: append them to a svinit's environment.
func (c *Cluster) InClusterEnv(saDir string) []string {
	return []string{
		"KUBERNETES_SERVICE_HOST=" + c.Host,
		"KUBERNETES_SERVICE_PORT=" + c.Port,
		"SVINIT_K8S_SA_DIR=" + saDir,
	}
}

// ServiceAccountToken creates ServiceAccount ns/sa unless it exists and returns a new token
// for it from the TokenRequest API (valid one hour). Calling it again gives another valid
// token, as the kubelet's rotation does.
func (c *Cluster) ServiceAccountToken(t testing.TB, ns, sa string) string {
	t.Helper()
	body := fmt.Sprintf(`{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":%q}}`, sa)
	status, resp := c.Do(t, http.MethodPost, "/api/v1/namespaces/"+ns+"/serviceaccounts", "application/json", []byte(body))
	must(t, "create serviceaccount "+sa, status, resp, http.StatusCreated, http.StatusConflict)

	req := `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":3600}}`
	status, resp = c.Do(t, http.MethodPost, "/api/v1/namespaces/"+ns+"/serviceaccounts/"+sa+"/token", "application/json", []byte(req))
	must(t, "token request for "+sa, status, resp, http.StatusCreated)
	var tr struct {
		Status struct {
			Token string `json:"token"`
		} `json:"status"`
	}
	if err := json.Unmarshal(resp, &tr); err != nil || tr.Status.Token == "" {
		t.Fatalf("cluster: token request for %s: no token in the answer: %v", sa, err)
	}
	return tr.Status.Token
}

// Allowed asks the API server's own authorizer (a SubjectAccessReview, as admin) whether
// ServiceAccount ns/sa may do verb on resource ("secrets", or "group/resource" like
// "apps/deployments") in ns; name "" means any object.
func (c *Cluster) Allowed(t testing.TB, ns, sa, verb, resource, name string) bool {
	t.Helper()
	group, res, ok := strings.Cut(resource, "/")
	if !ok {
		group, res = "", resource
	}
	review := map[string]any{
		"apiVersion": "authorization.k8s.io/v1",
		"kind":       "SubjectAccessReview",
		"spec": map[string]any{
			"user":   "system:serviceaccount:" + ns + ":" + sa,
			"groups": []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
			"resourceAttributes": map[string]string{
				"namespace": ns, "verb": verb, "group": group, "resource": res, "name": name,
			},
		},
	}
	body, _ := json.Marshal(review)
	status, resp := c.Do(t, http.MethodPost, "/apis/authorization.k8s.io/v1/subjectaccessreviews", "application/json", body)
	must(t, "subjectaccessreview", status, resp, http.StatusCreated)
	var sar struct {
		Status struct {
			Allowed bool `json:"allowed"`
		} `json:"status"`
	}
	if err := json.Unmarshal(resp, &sar); err != nil {
		t.Fatalf("cluster: subjectaccessreview: %v", err)
	}
	return sar.Status.Allowed
}

// WaitAllowed polls Allowed until it is true: a Role or RoleBinding just applied reaches the
// authorizer's cache a moment after it is stored.
func (c *Cluster) WaitAllowed(t testing.TB, ns, sa, verb, resource, name string) {
	t.Helper()
	deadline := time.Now().Add(requestTimeout)
	for !c.Allowed(t, ns, sa, verb, resource, name) {
		if time.Now().After(deadline) {
			t.Fatalf("cluster: %s:%s still may not %s %s %q after %v", ns, sa, verb, resource, name, requestTimeout)
		}
		time.Sleep(pollInterval)
	}
}

// CreatePod creates a minimal Pod ns/name and returns its UID. No node ever runs it: it
// stays Pending, and deleting it removes it at once.
func (c *Cluster) CreatePod(t testing.TB, ns, name string) (uid string) {
	t.Helper()
	return c.createPod(t, ns, name, nil)
}

func (c *Cluster) createPod(t testing.TB, ns, name string, finalizers []string) string {
	t.Helper()
	pod := map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata":   map[string]any{"name": name, "finalizers": finalizers},
		"spec": map[string]any{
			"containers": []map[string]any{{"name": "main", "image": "registry.invalid/k8stest:none"}},
		},
	}
	body, _ := json.Marshal(pod)
	status, resp := c.Do(t, http.MethodPost, "/api/v1/namespaces/"+ns+"/pods", "application/json", body)
	must(t, "create pod "+name, status, resp, http.StatusCreated)
	return objectMeta(t, resp).UID
}

// DeletePod deletes Pod ns/name and waits until it is gone (404).
func (c *Cluster) DeletePod(t testing.TB, ns, name string) {
	t.Helper()
	path := "/api/v1/namespaces/" + ns + "/pods/" + name
	status, resp := c.Do(t, http.MethodDelete, path, "", nil)
	must(t, "delete pod "+name, status, resp, http.StatusOK, http.StatusAccepted, http.StatusNotFound)
	deadline := time.Now().Add(requestTimeout)
	for {
		status, resp = c.Do(t, http.MethodGet, path, "", nil)
		if status == http.StatusNotFound {
			return
		}
		must(t, "get pod "+name, status, resp, http.StatusOK)
		if time.Now().After(deadline) {
			t.Fatalf("cluster: pod %s/%s still there %v after its deletion", ns, name, requestTimeout)
		}
		time.Sleep(pollInterval)
	}
}

// TerminatingPod creates Pod ns/name held by a finalizer and deletes it, so that it exists
// with a deletionTimestamp (kubectl shows Terminating) until the test ends; returns its
// UID. This is a pod whose svinit may still be stopping: its ledger entry must be kept.
func (c *Cluster) TerminatingPod(t testing.TB, ns, name string) (uid string) {
	t.Helper()
	const finalizer = "k8stest.svinit.dev/hold"
	uid = c.createPod(t, ns, name, []string{finalizer})
	path := "/api/v1/namespaces/" + ns + "/pods/" + name
	t.Cleanup(func() {
		// Let it go, so that a cluster shared by several tests does not collect them.
		status, resp, err := c.Request(c.AdminToken, http.MethodPatch, path, "application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`))
		if err == nil && status != http.StatusOK && status != http.StatusNotFound {
			t.Errorf("cluster: release pod %s: status %d: %s", name, status, StatusMessage(resp))
		}
	})
	status, resp := c.Do(t, http.MethodDelete, path, "", nil)
	must(t, "delete pod "+name, status, resp, http.StatusOK, http.StatusAccepted)
	if m := objectMeta(t, resp); m.DeletionTimestamp == nil {
		t.Fatalf("cluster: pod %s has no deletionTimestamp after its deletion", name)
	}
	return uid
}
