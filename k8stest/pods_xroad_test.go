package k8stest

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/svinit/svinit/internal/proctest"
	"github.com/svinit/svinit/k8stest/cluster"
)

// The X-Road stand-in writes the environment it got to /tmp/server-env.
var xroadStandIn = script("/root/entrypoint.sh", `#!/bin/sh
env >/tmp/server-env
echo $$ >/tmp/server-pid
trap 'exit 0' TERM
while :; do sleep 0.1; done
`)

// livenessPasses returns how many liveness probes of ns/pod passed, from the kubelet's
// prober metrics (through the API server's node proxy).
func livenessPasses(t *testing.T, n *cluster.Node, ns, pod string) int {
	t.Helper()
	status, body := n.Do(t, http.MethodGet, "/api/v1/nodes/"+cluster.NodeName+"/proxy/metrics/probes", "", nil)
	if status != http.StatusOK {
		t.Fatalf("kubelet probe metrics: %d: %s", status, cluster.StatusMessage(body))
	}
	re := regexp.MustCompile(`(?m)^prober_probe_total\{[^}]*namespace="` + regexp.QuoteMeta(ns) + `"[^}]*pod="` +
		regexp.QuoteMeta(pod) + `"[^}]*probe_type="Liveness",result="successful"\} (\d+)`)
	m := re.FindStringSubmatch(string(body))
	if m == nil {
		return 0
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

// TestPodsXRoad runs examples/k8s/xroad: the server gets each secret from its file through
// --file-env (and no NAME_FILE), the values are nowhere in the pod's spec; the startup and
// liveness probes (`svinit status`) keep the pod Ready and unrestarted while the server
// runs; `svinit stop` makes the probe fail while svinit stops (the stop delay) and the
// container is restarted and Ready again; a server frozen by SIGSTOP (hung, as far as the
// probe can tell) fails the liveness probe and is restarted.
func TestPodsXRoad(t *testing.T) {
	n, ns := startNode(t)
	// The example's placeholders, replaced by test values.
	secrets := map[string]string{}
	var replace []string
	for _, s := range []struct{ name, placeholder, value string }{
		{"XROAD_TOKEN_PIN", "<token pin>", "pin-31337"},
		{"XROAD_ADMIN_USER", "<admin user>", "xrd-admin"},
		{"XROAD_ADMIN_PASSWORD", "<admin password>", "pw-in-a-file"},
		{"XROAD_DB_PWD", "<database password>", "db-in-a-file"},
	} {
		secrets[s.name] = s.value
		replace = append(replace, fmt.Sprintf("%s: %q", s.name, s.placeholder), fmt.Sprintf("%s: %q", s.name, s.value))
	}
	n.Apply(t, ns, example(t, "xroad/xroad.yaml", replace...))

	name := waitSelected(t, n, ns, "app=security-server-sidecar", "a Ready security-server-sidecar pod", realPod.ready)

	t.Run("secrets from files", func(t *testing.T) {
		env, code := execIn(t, n, ns, name, "cat", "/tmp/server-env")
		if code != 0 {
			t.Fatalf("cat /tmp/server-env: exit %d: %s", code, env)
		}
		for k, v := range secrets {
			if !strings.Contains(env, "\n"+k+"="+v+"\n") && !strings.HasPrefix(env, k+"="+v+"\n") {
				t.Errorf("the server's environment lacks %s from its file:\n%s", k, env)
			}
			if strings.Contains(env, k+"_FILE=") {
				t.Errorf("the server's environment still has %s_FILE", k)
			}
		}
		status, body := n.Do(t, http.MethodGet, "/api/v1/namespaces/"+ns+"/pods/"+name, "", nil)
		if status != http.StatusOK {
			t.Fatalf("get pod: %d", status)
		}
		for _, v := range secrets {
			if strings.Contains(string(body), v) {
				t.Errorf("a secret value is in the pod's spec or status")
			}
		}
	})

	t.Run("svinit status probes keep the pod Ready", func(t *testing.T) {
		proctest.Poll(t, podTimeout, "2 passed liveness probes", throttled(func() bool {
			return livenessPasses(t, n, ns, name) >= 2
		}))
		p, _ := getPod(t, n, ns, name)
		if !p.ready() || p.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Errorf("after 2 liveness probes: Ready %v, restarts %d; want Ready, none", p.ready(), p.Status.ContainerStatuses[0].RestartCount)
		}
	})

	t.Run("svinit stop: the probe fails, the container restarts", func(t *testing.T) {
		if out, code := execIn(t, n, ns, name, "svinit", "stop"); code != 0 {
			t.Fatalf("svinit stop: exit %d: %s", code, out)
		}
		// The stop delay keeps svinit in its stopping phase: the probe's answer.
		out, code := execIn(t, n, ns, name, "svinit", "status")
		if code != 3 {
			t.Errorf("svinit status while svinit stops: exit %d, want 3 (not running):\n%s", code, out)
		}
		waitPod(t, n, ns, name, "restarted and Ready", func(p realPod) bool {
			return p.Status.ContainerStatuses[0].RestartCount == 1 && p.ready()
		})
	})

	t.Run("a frozen server: the liveness probe restarts it", func(t *testing.T) {
		if out, code := execIn(t, n, ns, name, "sh", "-c", "kill -STOP $(cat /tmp/server-pid)"); code != 0 {
			t.Fatalf("kill -STOP the server: exit %d: %s", code, out)
		}
		if out, code := execIn(t, n, ns, name, "svinit", "status"); code != 3 || !strings.Contains(out, "frozen") {
			t.Errorf("svinit status of a frozen server: exit %d, want 3 saying frozen:\n%s", code, out)
		}
		// Three failed probes 10 s apart, then the stop delay: the kubelet's SIGTERM reaches
		// the frozen server, continued by svinit, well within the pod's grace.
		waitPod(t, n, ns, name, "restarted by its liveness probe and Ready", func(p realPod) bool {
			return p.Status.ContainerStatuses[0].RestartCount == 2 && p.ready()
		})
	})
}
