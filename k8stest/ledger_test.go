package k8stest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/svinit/svinit/internal/license/licensetest"
	"github.com/svinit/svinit/internal/proctest"
	"github.com/svinit/svinit/internal/state"
	"github.com/svinit/svinit/k8stest/cluster"
)

// The ledger's names, as examples/k8s/icap/rbac.yaml grants them.
const (
	ledgerSecret   = "metadefender-icap-licenses"
	serviceAccount = "md-icapsrv"
	licenseKey     = "K8S-test-key-0042"
	waitLimit      = 60 * time.Second
)

// ledgerEnv is one namespace with the example Role bound to the example ServiceAccount, a
// real token for it, and the license test double.
type ledgerEnv struct {
	c     *cluster.Cluster
	ns    string
	saDir string
	srv   *licensetest.Server
}

func newLedgerEnv(t *testing.T, c *cluster.Cluster, seats int, rbac []byte) *ledgerEnv {
	t.Helper()
	e := &ledgerEnv{c: c, ns: c.Namespace(t), srv: licensetest.Start(t, licensetest.Options{Seats: seats, Keys: []string{licenseKey}})}
	c.Apply(t, e.ns, rbac)
	e.saDir = c.ServiceAccountDir(t, e.ns, serviceAccount)
	// "update" on the ledger: a rule every variant of the Role in these tests keeps, so
	// once it is allowed the binding has reached the authorizer.
	c.WaitAllowed(t, e.ns, serviceAccount, "update", "secrets", ledgerSecret)
	return e
}

// pod is one svinit process standing for the container of Pod name.
type pod struct {
	name, uid string
	cmd       *exec.Cmd
	stderr    *strings.Builder
	mu        *sync.Mutex
	state     string
	done      chan struct{}
}

// start runs svinit as the pod's PID 1 would, with the ledger, over a sleeping child.
func (e *ledgerEnv) start(t *testing.T, name, uid string, extra ...string) *pod {
	t.Helper()
	p := &pod{name: name, uid: uid, stderr: &strings.Builder{}, mu: &sync.Mutex{}, done: make(chan struct{}),
		state: filepath.Join(t.TempDir(), "state.json")}
	args := append([]string{"--license-provider", "opswat", "--license-url", e.srv.URL,
		"--license-state", "k8s-secret:" + ledgerSecret, "--license-timeout", "20s"}, extra...)
	p.cmd = exec.Command(svinitBin, append(args, "--", "sleep", "600")...)
	p.cmd.Env = append(e.c.InClusterEnv(e.saDir), "PATH="+os.Getenv("PATH"),
		"SVINIT_POD_NAME="+name, "SVINIT_POD_UID="+uid, "SVINIT_LICENSE_KEY="+licenseKey,
		"SVINIT_STATE_FILE="+p.state)
	p.cmd.Stderr = lockedWriter{p.mu, p.stderr}
	// PID 1 of a PID namespace of its own, as in a container: a SIGKILL of svinit takes its
	// child with it, as the kernel does when a node or a container runtime kills the pod.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if strings.Contains(p.log(), licenseKey) {
			t.Errorf("the license key is in the log of svinit of %s", name)
		}
		if t.Failed() {
			t.Logf("svinit of %s:\n%s", name, p.log())
		}
	})
	return p
}

func (p *pod) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(b)
}

// running waits until the pod's child runs, read from svinit's state file.
func (p *pod) running(t *testing.T) {
	t.Helper()
	poll(t, p.name+" running", func() bool {
		select {
		case <-p.done:
			t.Fatalf("svinit of %s exited %d before its child ran:\n%s", p.name, p.cmd.ProcessState.ExitCode(), p.log())
		default:
		}
		st, err := state.Read(p.state)
		return err == nil && st.Phase == state.Running
	})
}

// stop sends SIGTERM and returns svinit's exit code.
func (p *pod) stop(t *testing.T) int {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	return p.wait(t)
}

func (p *pod) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(waitLimit):
		t.Fatalf("svinit of %s did not exit:\n%s", p.name, p.log())
		return -1
	}
}

// crash SIGKILLs the pod's svinit, and so its child, as a node failure would: nothing is
// given back.
func (p *pod) crash(t *testing.T) {
	t.Helper()
	p.cmd.Process.Kill()
	p.wait(t)
}

func (p *pod) instance() string { return p.name + "-" + p.uid }

func (p *pod) key() string { return p.name + "_" + p.uid }

// logEntry returns the fields of svinit's first JSON log line with message msg.
func (p *pod) logEntry(t *testing.T, msg string) map[string]any {
	t.Helper()
	for _, line := range strings.Split(p.log(), "\n") {
		var fields map[string]any
		if json.Unmarshal([]byte(line), &fields) == nil && fields["message"] == msg {
			return fields
		}
	}
	t.Fatalf("svinit of %s logged no %q:\n%s", p.name, msg, p.log())
	return nil
}

// sweepSummary is svinit's "zombie sweep done" line.
func (p *pod) sweepSummary(t *testing.T) map[string]any {
	t.Helper()
	return p.logEntry(t, "zombie sweep done")
}

// entries returns the ledger's entries by key, as the admin reads the Secret.
func (e *ledgerEnv) entries(t *testing.T) map[string]map[string]any {
	t.Helper()
	status, body := e.c.Do(t, http.MethodGet, "/api/v1/namespaces/"+e.ns+"/secrets/"+ledgerSecret, "", nil)
	if status == http.StatusNotFound {
		return nil
	}
	if status != http.StatusOK {
		t.Fatalf("get ledger: %d %s", status, cluster.StatusMessage(body))
	}
	if strings.Contains(string(body), licenseKey) || strings.Contains(string(body), base64.StdEncoding.EncodeToString([]byte(licenseKey))) {
		t.Fatal("the license key is in the ledger")
	}
	var s struct {
		Data map[string][]byte `json:"data"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for k, v := range s.Data {
		var m map[string]any
		if err := json.Unmarshal(v, &m); err != nil {
			t.Fatalf("entry %s: %v", k, err)
		}
		out[k] = m
	}
	return out
}

func exampleRBAC(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../examples/k8s/icap/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withoutRule returns the example RBAC with rule (text of the Role) replaced, failing when
// the example no longer holds it.
func withoutRule(t *testing.T, rule, replacement string) []byte {
	t.Helper()
	rbac := string(exampleRBAC(t))
	if !strings.Contains(rbac, rule) {
		t.Fatalf("examples/k8s/icap/rbac.yaml has no %q any more; update this test", rule)
	}
	return []byte(strings.Replace(rbac, rule, replacement, 1))
}

// TestLedger runs every ledger scenario against one real API server, each in a namespace
// of its own, with a real ServiceAccount token bound to the example Role.
func TestLedger(t *testing.T) {
	if os.Geteuid() != 0 {
		if testing.Short() {
			t.Skip("runs each svinit as PID 1 of a new PID namespace, which needs root; skipped under -short")
		}
		t.Fatal("runs each svinit as PID 1 of a new PID namespace, which needs root (run as root, or go test -short)")
	}
	c := cluster.Start(t)
	t.Run("entry-lives-with-the-seat", func(t *testing.T) { testEntryLifecycle(t, c) })
	t.Run("entry-names-every-seat", func(t *testing.T) { testEntryNamesEverySeat(t, c) })
	t.Run("missing-permission-is-named", func(t *testing.T) { testMissingPermission(t, c) })
	t.Run("sweep-without-get-pods", func(t *testing.T) { testSweepWithoutGetPods(t, c) })
	t.Run("twenty-pods-at-once", func(t *testing.T) { testManyPods(t, c) })
	t.Run("sweep-exactly-the-dead", func(t *testing.T) { testSweep(t, c) })
	t.Run("sweep-is-bounded", func(t *testing.T) { testSweepBounded(t, c) })
	t.Run("token-rotation", func(t *testing.T) { testTokenRotation(t, c) })
}

func testEntryLifecycle(t *testing.T, c *cluster.Cluster) {
	e := newLedgerEnv(t, c, 1, exampleRBAC(t))
	uid := c.CreatePod(t, e.ns, "icap-0")
	p := e.start(t, "icap-0", uid)
	p.running(t)
	entries := e.entries(t)
	entry, ok := entries[p.key()]
	if len(entries) != 1 || !ok || entry["state"] != "active" || entry["instance"] != p.instance() ||
		entry["pod"] != "icap-0" || entry["pod_uid"] != uid || entry["provider"] != "opswat" || entry["activation_id"] == "" {
		t.Fatalf("ledger %v, want one active entry for icap-0", entries)
	}
	if !e.srv.Holds(p.instance()) {
		t.Fatal("the license server holds no seat for the pod")
	}
	if code := p.stop(t); code != 143 {
		t.Fatalf("exit %d:\n%s", code, p.log())
	}
	if entries := e.entries(t); len(entries) != 0 || e.srv.Live() != 0 {
		t.Fatalf("after a clean stop: ledger %v, %d seats live; want both empty", entries, e.srv.Live())
	}
}

// testEntryNamesEverySeat: what a kill during a heartbeat's re-activation leaves (the intent,
// and an id learned before) goes through the Secret whole, and the pod's restart gives it all
// back before it activates again.
func testEntryNamesEverySeat(t *testing.T, c *cluster.Cluster) {
	e := newLedgerEnv(t, c, 1, exampleRBAC(t))
	uid := c.CreatePod(t, e.ns, "icap-0")
	p := e.start(t, "icap-0", uid)
	p.running(t)
	p.crash(t)
	entry, err := json.Marshal(map[string]any{"pod": "icap-0", "pod_uid": uid, "instance": p.instance(), "provider": "opswat",
		"state": "activating", "earlier_activation_ids": []string{"act-earlier"}, "updated": time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	patch, _ := json.Marshal(map[string]any{"data": map[string][]byte{p.key(): entry}})
	path := "/api/v1/namespaces/" + e.ns + "/secrets/" + ledgerSecret
	if status, body := e.c.Do(t, http.MethodPatch, path, "application/merge-patch+json", patch); status != http.StatusOK {
		t.Fatalf("patch the entry: %d %s", status, cluster.StatusMessage(body))
	}

	again := e.start(t, "icap-0", uid)
	again.running(t) // one seat: only if the crashed run's was given back
	reclaim := again.logEntry(t, "reclaiming the activation a previous run left behind")
	if reclaim["state"] != "activating" || fmt.Sprint(reclaim["earlier_activation_ids"]) != "[act-earlier]" {
		t.Errorf("reclaimed %v; want the intent and the earlier id read back from the Secret", reclaim)
	}
	if code := again.stop(t); code != 143 {
		t.Fatalf("exit %d:\n%s", code, again.log())
	}
	if entries := e.entries(t); len(entries) != 0 || e.srv.Live() != 0 {
		t.Fatalf("after a clean stop: ledger %v, %d seats live; want both empty", entries, e.srv.Live())
	}
}

// testMissingPermission takes one permission away from the example Role at a time: the real
// RBAC refuses the call, svinit exits 78 (configuration) naming the verb, the resource and
// the name the Role lacks, and no seat is taken.
func testMissingPermission(t *testing.T, c *cluster.Cluster) {
	for _, tc := range []struct {
		name, rule, replacement string
		verb, scope             string // what svinit must name
	}{
		{"patch", `verbs: ["get", "patch", "update"]`, `verbs: ["get", "update"]`,
			"patch", "secrets (resourceNames: [" + ledgerSecret + "])"},
		{"get", `verbs: ["get", "patch", "update"]`, `verbs: ["patch", "update"]`,
			"get", "secrets (resourceNames: [" + ledgerSecret + "])"},
		{"create", "  - apiGroups: [\"\"]\n    resources: [\"secrets\"]\n    verbs: [\"create\"]\n", "", "create", "secrets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newLedgerEnv(t, c, 1, withoutRule(t, tc.rule, tc.replacement))
			p := e.start(t, "icap-0", c.CreatePod(t, e.ns, "icap-0"))
			code := p.wait(t)
			named := fmt.Sprintf(`lacks permission \"%s\" on %s in namespace %s`, tc.verb, tc.scope, e.ns)
			// The API server's own words: the refusal came from the real RBAC.
			refused := fmt.Sprintf(`cannot %s resource \"secrets\"`, tc.verb)
			if code != 78 || !strings.Contains(p.log(), named) || !strings.Contains(p.log(), refused) {
				t.Fatalf("exit %d, want 78 and a log naming the permission (%s) and the refusal (%s):\n%s", code, named, refused, p.log())
			}
			if e.srv.Live() != 0 {
				t.Fatalf("%d seats taken by a start that failed", e.srv.Live())
			}
		})
	}
}

// testSweepWithoutGetPods: without "get pods" the sweep cannot tell the dead from the
// living. It names the missing permission and sweeps nothing, and the pod starts anyway.
func testSweepWithoutGetPods(t *testing.T, c *cluster.Cluster) {
	e := newLedgerEnv(t, c, 2, withoutRule(t, "  - apiGroups: [\"\"]\n    resources: [\"pods\"]\n    verbs: [\"get\"]\n", ""))
	dead := e.start(t, "icap-a", c.CreatePod(t, e.ns, "icap-a"))
	dead.running(t)
	dead.crash(t)
	c.DeletePod(t, e.ns, "icap-a")

	p := e.start(t, "icap-b", c.CreatePod(t, e.ns, "icap-b"))
	p.running(t)
	named := fmt.Sprintf(`lacks permission \"get\" on pods (resourceNames: [icap-a]) in namespace %s`, e.ns)
	if sum := p.sweepSummary(t); sum["swept"] != 0.0 || !strings.Contains(p.log(), named) {
		t.Errorf("sweep %v; want nothing swept and the log naming the permission (%s):\n%s", sum, named, p.log())
	}
	if _, ok := e.entries(t)[dead.key()]; !ok || !e.srv.Holds(dead.instance()) {
		t.Error("the dead pod's entry or seat went without a sweep that could check it")
	}
}

func testManyPods(t *testing.T, c *cluster.Cluster) {
	const n = 20
	e := newLedgerEnv(t, c, n, exampleRBAC(t))
	pods := make([]*pod, n)
	for i := range pods {
		name := fmt.Sprintf("icap-%d", i)
		pods[i] = &pod{name: name, uid: c.CreatePod(t, e.ns, name)}
	}
	began := time.Now()
	for i, p := range pods { // all at once: the first creates the Secret, the others race it
		pods[i] = e.start(t, p.name, p.uid)
	}
	for _, p := range pods {
		p.running(t)
	}
	t.Logf("%d svinits started at once: all children running after %v", n, time.Since(began).Round(time.Millisecond))
	entries := e.entries(t)
	for _, p := range pods {
		if entries[p.key()]["state"] != "active" || !e.srv.Holds(p.instance()) {
			t.Errorf("entry or seat of %s lost: ledger has %d entries", p.name, len(entries))
		}
	}
	if len(entries) != n || e.srv.Live() != n {
		t.Fatalf("%d entries, %d seats; want %d of each", len(entries), e.srv.Live(), n)
	}
	began = time.Now()
	for _, p := range pods {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range pods {
		if code := p.wait(t); code != 143 {
			t.Errorf("%s exit %d", p.name, code)
		}
	}
	t.Logf("%d svinits stopped at once in %v", n, time.Since(began).Round(time.Millisecond))
	if entries := e.entries(t); len(entries) != 0 || e.srv.Live() != 0 {
		t.Fatalf("after stopping all: %d entries (%v), %d seats; want none", len(entries), keys(entries), e.srv.Live())
	}
}

func testSweep(t *testing.T, c *cluster.Cluster) {
	e := newLedgerEnv(t, c, 10, exampleRBAC(t))
	names := []string{"deleted-0", "deleted-1", "deleted-2", "recreated", "alive", "terminating"}
	pods := map[string]*pod{}
	for _, name := range names {
		var uid string
		if name == "terminating" {
			uid = c.TerminatingPod(t, e.ns, name) // still there, on its way out
		} else {
			uid = c.CreatePod(t, e.ns, name)
		}
		pods[name] = e.start(t, name, uid)
		pods[name].running(t)
	}
	for _, p := range pods {
		p.crash(t) // no deactivation: six zombie activations
	}
	if e.srv.Live() != 6 || len(e.entries(t)) != 6 {
		t.Fatalf("after the crashes: %d seats, %d entries; want 6", e.srv.Live(), len(e.entries(t)))
	}
	for _, name := range []string{"deleted-0", "deleted-1", "deleted-2"} {
		c.DeletePod(t, e.ns, name)
	}
	c.DeletePod(t, e.ns, "recreated")
	newUID := c.CreatePod(t, e.ns, "recreated") // a StatefulSet reusing the name
	if newUID == pods["recreated"].uid {
		t.Fatal("the recreated pod has its old UID")
	}

	sweeper := e.start(t, "sweeper", c.CreatePod(t, e.ns, "sweeper"))
	sweeper.running(t)
	for _, name := range []string{"deleted-0", "deleted-1", "deleted-2", "recreated"} {
		if e.srv.Holds(pods[name].instance()) {
			t.Errorf("the seat of dead pod %s was not given back", name)
		}
	}
	for _, name := range []string{"alive", "terminating"} {
		if !e.srv.Holds(pods[name].instance()) {
			t.Errorf("the seat of existing pod %s was given back", name)
		}
	}
	if e.srv.Live() != 3 {
		t.Errorf("%d seats live, want 3 (alive, terminating, sweeper)", e.srv.Live())
	}
	entries := e.entries(t)
	want := []string{pods["alive"].key(), pods["terminating"].key(), sweeper.key()}
	for _, k := range want {
		if _, ok := entries[k]; !ok {
			t.Errorf("entry %s is gone", k)
		}
	}
	if len(entries) != len(want) {
		t.Errorf("ledger keeps %d entries, want %d (%v)", len(entries), len(want), keys(entries))
	}
	sum := sweeper.sweepSummary(t)
	if sum["swept"] != 4.0 || sum["alive"] != 2.0 || sum["failed"] != 0.0 {
		t.Errorf("sweep summary %v, want 4 swept, 2 alive, 0 failed", sum)
	}
	t.Logf("sweep of 6 entries (4 dead) took %vms", sum["elapsed_ms"])
	if sweeper.stop(t) != 143 {
		t.Error("the sweeper did not stop cleanly")
	}
}

// testSweepBounded: a license server that never answers a deactivation holds up the sweep
// for --license-sweep-timeout and no longer; the pod starts, the zombie's entry stays, and
// the next start sweeps it once the server answers.
func testSweepBounded(t *testing.T, c *cluster.Cluster) {
	e := newLedgerEnv(t, c, 3, exampleRBAC(t))
	target, err := url.Parse(e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	forward := httputil.NewSingleHostReverseProxy(target)
	var hold atomic.Bool
	var held atomic.Int32
	hold.Store(true)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/deactivation" && hold.Load() {
			held.Add(1)
			<-r.Context().Done() // until the client gives up
			return
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	// A request timeout far beyond the test's own wait: only the sweep timeout can end the
	// held request in time.
	const sweepTimeout = "2s"
	args := []string{"--license-url", front.URL, "--license-request-timeout", "10m", "--license-sweep-timeout", sweepTimeout}

	zombie := e.start(t, "zombie", c.CreatePod(t, e.ns, "zombie"), args...)
	zombie.running(t)
	zombie.crash(t)
	c.DeletePod(t, e.ns, "zombie")

	began := time.Now()
	p := e.start(t, "icap-0", c.CreatePod(t, e.ns, "icap-0"), args...)
	p.running(t)
	t.Logf("start with a sweep held up by the license server (--license-sweep-timeout %s): child running after %v",
		sweepTimeout, time.Since(began).Round(time.Millisecond))
	sum := p.sweepSummary(t)
	if held.Load() == 0 || sum["swept"] != 0.0 || sum["failed"] != 1.0 || !strings.Contains(fmt.Sprint(sum["error"]), "deadline exceeded") {
		t.Fatalf("%d deactivations held; sweep %v; want one held and the sweep cut at its deadline", held.Load(), sum)
	}
	t.Logf("the sweep gave up after %vms", sum["elapsed_ms"])
	if _, ok := e.entries(t)[zombie.key()]; !ok || !e.srv.Holds(zombie.instance()) {
		t.Fatal("the zombie's entry or seat went although its deactivation never finished")
	}

	hold.Store(false)
	next := e.start(t, "icap-1", c.CreatePod(t, e.ns, "icap-1"), args...)
	next.running(t)
	if sum := next.sweepSummary(t); sum["swept"] != 1.0 || e.srv.Holds(zombie.instance()) {
		t.Fatalf("next sweep %v, zombie seat held %v; want it swept", sum, e.srv.Holds(zombie.instance()))
	}
}

// testTokenRotation replaces the token file while svinit runs, as the kubelet does before a
// bound token expires, and makes the old token invalid (its ServiceAccount is deleted and
// created again): svinit's stop must read the new one to remove its entry.
func testTokenRotation(t *testing.T, c *cluster.Cluster) {
	e := newLedgerEnv(t, c, 1, exampleRBAC(t))
	p := e.start(t, "icap-0", c.CreatePod(t, e.ns, "icap-0"))
	p.running(t)

	tokenFile := filepath.Join(e.saDir, "token")
	old, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	saPath := "/api/v1/namespaces/" + e.ns + "/serviceaccounts/" + serviceAccount
	if status, body := c.Do(t, http.MethodDelete, saPath, "", nil); status != http.StatusOK {
		t.Fatalf("delete the ServiceAccount: %d %s", status, cluster.StatusMessage(body))
	}
	ledgerPath := "/api/v1/namespaces/" + e.ns + "/secrets/" + ledgerSecret
	began := time.Now()
	poll(t, "the old token refused", func() bool {
		status, _ := c.DoAs(t, string(old), http.MethodGet, ledgerPath, "", nil)
		return status == http.StatusUnauthorized
	})
	refused := time.Since(began)
	token := c.ServiceAccountToken(t, e.ns, serviceAccount) // creates it again
	poll(t, "the new token accepted", func() bool {
		status, _ := c.DoAs(t, token, http.MethodGet, ledgerPath, "", nil)
		return status == http.StatusOK
	})
	t.Logf("old token refused %v after its ServiceAccount was deleted; new token accepted %v after that",
		refused.Round(time.Millisecond), (time.Since(began) - refused).Round(time.Millisecond))
	// Replaced whole, as the kubelet's atomic writer does.
	if err := os.WriteFile(tokenFile+".new", []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tokenFile+".new", tokenFile); err != nil {
		t.Fatal(err)
	}

	if code := p.stop(t); code != 143 {
		t.Fatalf("exit %d:\n%s", code, p.log())
	}
	if entries := e.entries(t); len(entries) != 0 || e.srv.Live() != 0 || strings.Contains(p.log(), "Unauthorized") {
		t.Fatalf("after the rotation and a clean stop: ledger %v, %d seats; want both empty and no 401:\n%s", keys(entries), e.srv.Live(), p.log())
	}
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// poll waits for cond, failing the test after waitLimit.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	proctest.Poll(t, waitLimit, what, cond)
}
