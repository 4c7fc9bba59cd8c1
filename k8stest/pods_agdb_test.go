package k8stest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/svinit/svinit/internal/proctest"
	"github.com/svinit/svinit/k8stest/cluster"
)

// The agdb stand-in answers the probes' GET /api/v1/status; the image's /agdb belongs to the
// agdb user, as the vendor's does.
var agdbStandIn = []cluster.File{
	{Path: "/agdb", Dir: true, Mode: 0o755, UID: 1000, GID: 1000},
	script("/usr/local/bin/agdb_server", `#!/bin/sh
mkdir -p /tmp/www/api/v1 && echo ok >/tmp/www/api/v1/status
exec httpd -f -p 3000 -h /tmp/www
`),
}

// agdbClusterLine is the vendor's three-node list in agdb_server.yaml.
const agdbClusterLine = "cluster: [http://agdb-0.agdb.default.svc.cluster.local:3000, http://agdb-1.agdb.default.svc.cluster.local:3000, http://agdb-2.agdb.default.svc.cluster.local:3000]"

// TestPodsAgdb runs examples/k8s/agdb: each of the StatefulSet's pods renders the ConfigMap
// byte for byte as the vendor's start.sh (`sed "s/{id}/$INDEX/g"`) with its own index from
// the pod-index label; a pod deleted and recreated renders the same; with the README's
// .tmpl cluster list, scaling to 5 (replicas and SVINIT_REPLICAS) gives every pod the
// five-node list.
func TestPodsAgdb(t *testing.T) {
	n, ns := startNode(t)
	// The volumeClaimTemplates' claims, bound to hostPath volumes ahead, writable by agdb.
	for i := 0; i < 5; i++ {
		dir := t.TempDir()
		if err := os.Chown(dir, 1000, 1000); err != nil {
			t.Fatal(err)
		}
		n.Apply(t, "", []byte(fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata:
  name: %s-agdb-data-%d
spec:
  capacity: {storage: 1Gi}
  accessModes: ["ReadWriteOnce"]
  hostPath: {path: %q, type: Directory}
  claimRef: {namespace: %s, name: agdb-data-agdb-%d}
`, ns, i, dir, ns, i)))
	}
	n.Apply(t, ns, example(t, "agdb/agdb.yaml"))

	status, body := n.Do(t, http.MethodGet, "/api/v1/namespaces/"+ns+"/configmaps/agdb-config", "", nil)
	if status != http.StatusOK {
		t.Fatalf("get configmap: %d: %s", status, cluster.StatusMessage(body))
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal(body, &cm); err != nil {
		t.Fatal(err)
	}
	vendor := cm.Data["agdb_server.yaml"]
	if !strings.Contains(vendor, agdbClusterLine+"\n") {
		t.Fatalf("the example's agdb_server.yaml no longer has the vendor's cluster line: update the test:\n%s", vendor)
	}

	// rendered checks that every pod 0..replicas-1 is Ready and wrote want(index).
	rendered := func(t *testing.T, replicas int, want func(i int) string) {
		t.Helper()
		for i := 0; i < replicas; i++ {
			name := fmt.Sprintf("agdb-%d", i)
			waitPod(t, n, ns, name, "Ready", realPod.ready)
			got, code := execIn(t, n, ns, name, "cat", "/agdb/agdb_server.yaml")
			if code != 0 {
				t.Fatalf("cat in %s: exit %d: %s", name, code, got)
			}
			if w := want(i); got != w {
				t.Errorf("%s rendered:\n%s\nwant:\n%s", name, got, w)
			}
		}
	}
	sed := func(i int) string { return vendorSed(t, vendor, i) }

	t.Run("3 replicas render as the vendor's sed", func(t *testing.T) {
		rendered(t, 3, sed)
	})

	t.Run("a recreated pod renders the same", func(t *testing.T) {
		old, _ := getPod(t, n, ns, "agdb-1")
		if out, err := n.Kubectl("-n", ns, "delete", "pod", "agdb-1"); err != nil {
			t.Fatalf("kubectl delete pod: %v: %s", err, out)
		}
		waitPod(t, n, ns, "agdb-1", "recreated", func(p realPod) bool {
			return p.Metadata.UID != old.Metadata.UID && p.ready()
		})
		rendered(t, 3, sed)
	})

	t.Run("scale to 5 with the .tmpl cluster list", func(t *testing.T) {
		list := func(replicas int) string {
			var urls []string
			for i := 0; i < replicas; i++ {
				urls = append(urls, fmt.Sprintf("http://agdb-%d.agdb.default.svc.cluster.local:3000", i))
			}
			return "cluster: [" + strings.Join(urls, ", ") + "]"
		}
		tmpl := func(replicas int) []byte {
			return example(t, "agdb/agdb.yaml",
				"  agdb_server.yaml: |", "  agdb_server.yaml.tmpl: |",
				"    "+agdbClusterLine, "    cluster: [{{ range $i := seq .Replicas }}{{ if $i }}, {{ end }}http://agdb-{{ $i }}.agdb.default.svc.cluster.local:3000{{ end }}]",
				"value: /agdb/config/agdb_server.yaml:/agdb/agdb_server.yaml", "value: /agdb/config/agdb_server.yaml.tmpl:/agdb/agdb_server.yaml",
				"            - name: SVINIT_REPLICA_INDEX", fmt.Sprintf("            - name: SVINIT_REPLICAS\n              value: %q\n            - name: SVINIT_REPLICA_INDEX", fmt.Sprint(replicas)),
				"  replicas: 3", fmt.Sprintf("  replicas: %d", replicas))
		}
		want := func(replicas int) func(int) string {
			return func(i int) string { return strings.Replace(sed(i), list(3), list(replicas), 1) }
		}
		n.Apply(t, ns, tmpl(3))
		waitRollout(t, n, ns, "statefulset/agdb")
		rendered(t, 3, want(3))
		n.Apply(t, ns, tmpl(5))
		waitRollout(t, n, ns, "statefulset/agdb")
		rendered(t, 5, want(5))
	})
}

// vendorSed is what the vendor's start.sh wrote for index: `sed "s/{id}/$INDEX/g"` run on
// the ConfigMap's file.
func vendorSed(t *testing.T, config string, index int) string {
	t.Helper()
	cmd := exec.Command("sed", fmt.Sprintf("s/{id}/%d/g", index))
	cmd.Stdin = strings.NewReader(config)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sed: %v", err)
	}
	return string(out)
}

// waitRollout waits until `kubectl rollout status` says the workload is rolled out.
func waitRollout(t *testing.T, n *cluster.Node, ns, workload string) {
	t.Helper()
	proctest.Poll(t, podTimeout, "rollout of "+workload, throttled(func() bool {
		out, err := n.Kubectl("-n", ns, "rollout", "status", workload, "--timeout=1s")
		return err == nil && strings.Contains(string(out), "roll")
	}))
}
