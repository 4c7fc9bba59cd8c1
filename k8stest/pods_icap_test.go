package k8stest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/svinit/svinit/internal/license/licensetest"
	"github.com/svinit/svinit/internal/proctest"
	"github.com/svinit/svinit/k8stest/cluster"
)

// The MetaDefender ICAP stand-in listens on the ICAP port for the readiness probe.
var icapStandIn = script("/usr/sbin/mdicapsrv", `#!/bin/sh
exec httpd -f -p 1344 -h /tmp
`)

// icap is examples/k8s/icap in a namespace, against the license double on the node's
// address.
type icap struct {
	n   *cluster.Node
	ns  string
	srv *licensetest.Server
}

// deploy applies the Deployment with the double's URL, rbac as the Role, and the license key
// Secret holding keyItem.
func (e *icap) deploy(t *testing.T, rbac []byte, keyItem string) {
	t.Helper()
	e.n.Apply(t, e.ns, rbac)
	e.n.Apply(t, e.ns, []byte(fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: mdicapsrv-license-key
stringData:
  %s: %s
`, keyItem, licenseKey)))
	e.n.Apply(t, e.ns, example(t, "icap/deployment.yaml",
		"              value: opswat\n",
		"              value: opswat\n            - name: SVINIT_LICENSE_URL\n              value: "+e.srv.URL+"\n"))
}

// readyPods waits until want pods of the Deployment are Ready and not terminating.
func (e *icap) readyPods(t *testing.T, want int) []realPod {
	t.Helper()
	var ready []realPod
	proctest.Poll(t, podTimeout, fmt.Sprintf("%d ready md-icapsrv pods", want), throttled(func() bool {
		ready = ready[:0]
		for _, p := range listPods(t, e.n, e.ns, "app=md-icapsrv") {
			if p.Metadata.DeletionTimestamp == nil && p.ready() {
				ready = append(ready, p)
			}
		}
		return len(ready) == want
	}))
	return ready
}

func (e *icap) deleteDeployment(t *testing.T) {
	t.Helper()
	if out, err := e.n.Kubectl("-n", e.ns, "delete", "deployment", "md-icapsrv", "--wait=false"); err != nil {
		t.Fatalf("kubectl delete deployment: %v: %s", err, out)
	}
	proctest.Poll(t, podTimeout, "the md-icapsrv pods gone", throttled(func() bool {
		return len(listPods(t, e.n, e.ns, "app=md-icapsrv")) == 0
	}))
}

// failedStart waits for the Deployment's first pod whose container exited and returns the
// exit code and the container's log.
func (e *icap) failedStart(t *testing.T) (int, string) {
	t.Helper()
	var code int
	var name string
	proctest.Poll(t, podTimeout, "a md-icapsrv container that exited", throttled(func() bool {
		for _, p := range listPods(t, e.n, e.ns, "app=md-icapsrv") {
			for _, c := range p.Status.ContainerStatuses {
				if term := c.LastState.Terminated; term != nil {
					code, name = term.ExitCode, p.Metadata.Name
					return true
				}
				if term := c.State.Terminated; term != nil {
					code, name = term.ExitCode, p.Metadata.Name
					return true
				}
			}
		}
		return false
	}))
	logs, _ := e.n.Kubectl("-n", e.ns, "logs", name, "--previous")
	if len(logs) == 0 || strings.Contains(string(logs), "previous terminated container") {
		logs, _ = e.n.Kubectl("-n", e.ns, "logs", name)
	}
	return code, string(logs)
}

// TestPodsICAP runs examples/k8s/icap against the license double: two pods hold two seats
// and the Secret ledger lists both; a pod force-deleted while its container is SIGKILLed on
// the node keeps its seat until the replacement pod's start sweeps it back; deleting the
// Deployment gives every seat back; the Role is the least that works (without "get" on the
// ledger the pod stops with exit 78 naming the permission, and takes no seat); a key
// Secret without the key item takes no seat either.
func TestPodsICAP(t *testing.T) {
	n, ns := startNode(t)
	e := &icap{n: n, ns: ns, srv: licensetest.Start(t, licensetest.Options{
		Seats: 3, Keys: []string{licenseKey}, Listen: net.JoinHostPort(cluster.NodeIP, "0")})}
	rbac, err := os.ReadFile(examplesDir + "/icap/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	instance := func(p realPod) string { return p.Metadata.Name + "-" + p.Metadata.UID }

	t.Run("2 replicas hold 2 seats in the ledger", func(t *testing.T) {
		e.deploy(t, rbac, "key")
		pods := e.readyPods(t, 2)
		status, body := n.Do(t, http.MethodGet, "/api/v1/namespaces/"+ns+"/secrets/"+ledgerSecret, "", nil)
		if status != http.StatusOK {
			t.Fatalf("the ledger Secret: %d: %s", status, cluster.StatusMessage(body))
		}
		for _, p := range pods {
			if !e.srv.Holds(instance(p)) {
				t.Errorf("pod %s holds no seat", p.Metadata.Name)
			}
			if !strings.Contains(string(body), p.Metadata.UID) {
				t.Errorf("the ledger has no entry of pod %s (%s):\n%s", p.Metadata.Name, p.Metadata.UID, body)
			}
		}
		if live := e.srv.Live(); live != 2 {
			t.Errorf("%d seats live, want 2", live)
		}
	})

	t.Run("a force-deleted SIGKILLed pod's seat is swept", func(t *testing.T) {
		pods := e.readyPods(t, 2)
		dead := pods[0]
		pids := n.ContainerPIDs(dead.Metadata.UID, dead.Status.ContainerStatuses[0].ContainerID)
		if len(pids) == 0 {
			t.Fatalf("no processes of pod %s's container on the node", dead.Metadata.Name)
		}
		// Stopped first, so that the kubelet's SIGTERM after the deletion is never handled.
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGSTOP)
		}
		if out, err := n.Kubectl("-n", ns, "delete", "pod", dead.Metadata.Name, "--force", "--grace-period=0"); err != nil {
			t.Fatalf("kubectl delete --force: %v: %s", err, out)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if !e.srv.Holds(instance(dead)) {
			t.Fatalf("the dead pod's seat was given back without a sweep: its svinit was not killed in time")
		}
		pods = e.readyPods(t, 2)
		if e.srv.Holds(instance(dead)) {
			t.Errorf("the dead pod %s still holds its seat after the replacement started", dead.Metadata.Name)
		}
		for _, p := range pods {
			if !e.srv.Holds(instance(p)) {
				t.Errorf("pod %s holds no seat", p.Metadata.Name)
			}
		}
		if live := e.srv.Live(); live != 2 {
			t.Errorf("%d seats live, want 2", live)
		}
	})

	t.Run("deleting the Deployment gives the seats back", func(t *testing.T) {
		e.deleteDeployment(t)
		if live := e.srv.Live(); live != 0 {
			t.Errorf("%d seats live after the pods stopped, want 0", live)
		}
	})

	t.Run("a Role without get on the ledger is refused", func(t *testing.T) {
		activations := e.srv.Activations()
		less := strings.Replace(string(rbac), `verbs: ["get", "patch", "update"]`, `verbs: ["patch", "update"]`, 1)
		if less == string(rbac) {
			t.Fatal("examples/k8s/icap/rbac.yaml no longer has the ledger's verbs: update the test")
		}
		e.deploy(t, []byte(less), "key")
		code, logs := e.failedStart(t)
		if code != 78 || !strings.Contains(logs, "lacks permission") || !strings.Contains(logs, ledgerSecret) {
			t.Errorf("exit %d, want 78 and a log naming the missing permission:\n%s", code, logs)
		}
		if got := e.srv.Activations(); got != activations {
			t.Errorf("%d activations by pods that may not read the ledger", got-activations)
		}
		e.deleteDeployment(t)
	})

	t.Run("no activation without the key", func(t *testing.T) {
		activations := e.srv.Activations()
		if out, err := n.Kubectl("-n", ns, "delete", "secret", "mdicapsrv-license-key"); err != nil {
			t.Fatalf("kubectl delete secret: %v: %s", err, out)
		}
		e.deploy(t, rbac, "not-the-key")
		code, logs := e.failedStart(t)
		if code == 0 || !strings.Contains(logs, "/etc/svinit/license/key") {
			t.Errorf("exit %d, want an error naming the missing key file:\n%s", code, logs)
		}
		if got := e.srv.Activations(); got != activations {
			t.Errorf("%d activations without a key", got-activations)
		}
		if strings.Contains(logs, licenseKey) {
			t.Error("the license key is in the log")
		}
	})
}
