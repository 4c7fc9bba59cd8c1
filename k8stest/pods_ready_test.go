package k8stest

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/svinit/svinit/internal/proctest"
	"github.com/svinit/svinit/k8stest/cluster"
)

// The X-Road secondary stand-in records its environment, as xroadStandIn does, and starts
// slowly: its proxy (8080) and health check interface (5588) answer only once the test
// creates /tmp/xroad-up.
var xroadSecondaryStandIn = script("/root/entrypoint-secondary.sh", `#!/bin/sh
trap 'kill $proxy $health 2>/dev/null; exit 0' TERM
env >/tmp/server-env
mkdir -p /tmp/www && echo ok >/tmp/www/index.html
until [ -e /tmp/xroad-up ]; do sleep 0.1; done
httpd -f -p 127.0.0.1:8080 -h /tmp/www & proxy=$!
httpd -f -p 127.0.0.1:5588 -h /tmp/www & health=$!
while :; do sleep 0.1; done
`)

// gatedServer starts the pod name, whose httpd listens on port only once the test creates
// /tmp/up in it, and returns its IP.
func gatedServer(t *testing.T, n *cluster.Node, ns, image, name string, port int) string {
	t.Helper()
	n.Apply(t, ns, shPod(name, image, fmt.Sprintf("until [ -e /tmp/up ]; do sleep 0.1; done; exec httpd -f -p %d -h /tmp", port), ""))
	return waitPod(t, n, ns, name, "running with an IP", func(p realPod) bool { return p.running() && p.Status.PodIP != "" }).Status.PodIP
}

// shPod is the manifest of the pod name that runs script with sh under svinit; container
// is appended to its container (env, probes).
func shPod(name, image, script, container string) []byte {
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  terminationGracePeriodSeconds: 5
  containers:
    - name: main
      image: %s
      imagePullPolicy: Never
      command: ["/usr/local/bin/svinit", "--"]
      args: ["sh", "-c", %q]
`, name, image, script) + container)
}

// probeCount returns how many probes of type probeType ("Startup", "Readiness", "Liveness")
// of ns/pod ended with result ("successful", "failed"), from the kubelet's prober metrics.
func probeCount(t *testing.T, n *cluster.Node, ns, pod, probeType, result string) int {
	t.Helper()
	status, body := n.Do(t, http.MethodGet, "/api/v1/nodes/"+cluster.NodeName+"/proxy/metrics/probes", "", nil)
	if status != http.StatusOK {
		t.Fatalf("kubelet probe metrics: %d: %s", status, cluster.StatusMessage(body))
	}
	re := regexp.MustCompile(`(?m)^prober_probe_total\{[^}]*namespace="` + regexp.QuoteMeta(ns) + `"[^}]*pod="` +
		regexp.QuoteMeta(pod) + `"[^}]*probe_type="` + probeType + `",result="` + result + `"\} (\d+)`)
	m := re.FindStringSubmatch(string(body))
	if m == nil {
		return 0
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

// hostUptime is the host's /proc/uptime in seconds: the clock the pods' scripts and the
// test share (uptime is not namespaced).
func hostUptime(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	up, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return up
}

// started says whether the kubelet counts the pod's container as started (its startupProbe
// passed).
func started(p realPod) bool {
	cs := p.Status.ContainerStatuses
	return len(cs) > 0 && cs[0].Started != nil && *cs[0].Started
}

// TestPodsReady: svinit's readiness in a real pod. With --ready on a server that answers
// only after a moment the test chooses, a startupProbe and a readinessProbe calling
// `svinit status --ready` keep the pod not started and not Ready while it does not answer,
// Ready once it does, and not Ready again (never restarted) when it stops answering. With
// --wait-for on another pod's port (its pod IP), the program starts only once that pod
// serves; meanwhile `svinit status` says waiting-for-dependencies and the pod is not Ready.
// Both together in examples/k8s/xroad with the README's lines for a secondary: it waits for
// its primary, then is neither started nor Ready until its proxy and health check answer.
func TestPodsReady(t *testing.T) {
	n, ns := startNode(t)

	t.Run("startupProbe and readinessProbe on svinit status --ready", func(t *testing.T) {
		// httpd serves /tmp/www: 404 on /ok until the test creates the file. The checks come
		// from the environment, as the examples set svinit's options.
		n.Apply(t, ns, shPod("slow", image, "mkdir -p /tmp/www && exec httpd -f -p 127.0.0.1:8080 -h /tmp/www", `      env:
        - name: SVINIT_READY
          value: http://127.0.0.1:8080/ok
        - name: SVINIT_READY_INTERVAL
          value: 1s
      startupProbe:
        exec:
          command: ["/usr/local/bin/svinit", "status", "--ready"]
        periodSeconds: 1
        failureThreshold: 300
      readinessProbe:
        exec:
          command: ["/usr/local/bin/svinit", "status", "--ready"]
        periodSeconds: 1
        failureThreshold: 1
`))
		waitPod(t, n, ns, "slow", "running", realPod.running)
		proctest.Poll(t, podTimeout, "2 failed startup probes of pod slow", throttled(func() bool {
			return probeCount(t, n, ns, "slow", "Startup", "failed") >= 2
		}))
		p, _ := getPod(t, n, ns, "slow")
		if p.ready() || started(p) {
			t.Fatalf("before the server answers: Ready %v, started %v; want neither", p.ready(), started(p))
		}
		if out, code := execIn(t, n, ns, "slow", "svinit", "status", "--ready"); code != 3 {
			t.Errorf("svinit status --ready before the server answers: exit %d, want 3:\n%s", code, out)
		}
		if out, code := execIn(t, n, ns, "slow", "svinit", "status"); code != 0 {
			t.Errorf("the plain svinit status while the server runs, not ready: exit %d, want 0:\n%s", code, out)
		}

		if out, code := execIn(t, n, ns, "slow", "touch", "/tmp/www/ok"); code != 0 {
			t.Fatalf("touch /tmp/www/ok: exit %d: %s", code, out)
		}
		p = waitPod(t, n, ns, "slow", "started and Ready", func(p realPod) bool { return started(p) && p.ready() })
		if r := p.Status.ContainerStatuses[0].RestartCount; r != 0 {
			t.Errorf("the container was restarted %d times, want never", r)
		}

		if out, code := execIn(t, n, ns, "slow", "rm", "/tmp/www/ok"); code != 0 {
			t.Fatalf("rm /tmp/www/ok: exit %d: %s", code, out)
		}
		p = waitPod(t, n, ns, "slow", "not Ready again", func(p realPod) bool { return !p.ready() })
		if !p.running() || p.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Errorf("once the server stopped answering: running %v, restarts %d; want running, never restarted",
				p.running(), p.Status.ContainerStatuses[0].RestartCount)
		}
	})

	t.Run("--wait-for another pod's port", func(t *testing.T) {
		// The server listens only once the test creates /tmp/up.
		ip := gatedServer(t, n, ns, image, "db", 5432)
		check := "tcp://" + ip + ":5432"
		// The program records when it started (host uptime); the plain `svinit status` is
		// its readiness probe, which fails until the program runs.
		n.Apply(t, ns, shPod("app", image, "read up _ </proc/uptime; echo $up >/tmp/started; trap 'exit 0' TERM; while :; do sleep 0.1; done", fmt.Sprintf(`      env:
        - name: SVINIT_WAIT_FOR
          value: %s
        - name: SVINIT_WAIT_TIMEOUT
          value: 5m
      readinessProbe:
        exec:
          command: ["/usr/local/bin/svinit", "status"]
        periodSeconds: 1
`, check)))
		waitPod(t, n, ns, "app", "running", realPod.running)
		proctest.Poll(t, podTimeout, "2 failed readiness probes of pod app", throttled(func() bool {
			return probeCount(t, n, ns, "app", "Readiness", "failed") >= 2
		}))
		if out, code := execIn(t, n, ns, "app", "svinit", "status"); code != 3 || !strings.Contains(out, "waiting-for-dependencies") ||
			!strings.Contains(out, "waiting for: "+check) {
			t.Errorf("svinit status while db does not listen: exit %d, want 3 saying waiting-for-dependencies and naming %s:\n%s", code, check, out)
		}
		if out, code := execIn(t, n, ns, "app", "cat", "/tmp/started"); code == 0 {
			t.Fatalf("the program started while db did not listen: %s", out)
		}
		if p, _ := getPod(t, n, ns, "app"); p.ready() {
			t.Errorf("app is Ready while its program waits")
		}

		up := hostUptime(t)
		if out, code := execIn(t, n, ns, "db", "touch", "/tmp/up"); code != 0 {
			t.Fatalf("touch /tmp/up in db: exit %d: %s", code, out)
		}
		p := waitPod(t, n, ns, "app", "Ready", realPod.ready)
		out, code := execIn(t, n, ns, "app", "cat", "/tmp/started")
		at, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
		if code != 0 || err != nil {
			t.Fatalf("cat /tmp/started in a Ready app: exit %d, %v: %s", code, err, out)
		}
		if at < up {
			t.Errorf("the program started %.2f s before db was made to listen", up-at)
		}
		t.Logf("the program started %.2f s after db was made to listen", at-up)
		if r := p.Status.ContainerStatuses[0].RestartCount; r != 0 {
			t.Errorf("app was restarted %d times while it waited, want never", r)
		}
		if logs, _ := n.Kubectl("-n", ns, "logs", "app"); !strings.Contains(string(logs), check) {
			t.Errorf("svinit's log does not name the check %s it waited for:\n%s", check, logs)
		}
	})
	t.Run("the README's X-Road secondary", func(t *testing.T) {
		// The primary accepts SSH (port 22) only once the test creates /tmp/up.
		ip := gatedServer(t, n, ns, image, "primary", 22)
		primary := "tcp://" + ip + ":22"
		// examples/k8s/xroad with the README's lines for a secondary: --wait-for its primary,
		// --ready on the proxy and the health check, the probes on `svinit status --ready`
		// (every second here, not every 10).
		const grace = `            - name: SVINIT_GRACE # --grace; the stop delay counts against it
              value: 60s
`
		n.Apply(t, ns, example(t, "xroad/xroad.yaml",
			`args: ["/root/entrypoint.sh"]`, `args: ["/root/entrypoint-secondary.sh"]`,
			grace, grace+`            - name: SVINIT_WAIT_FOR
              value: "`+primary+`"
            - name: SVINIT_WAIT_TIMEOUT
              value: 10m
            - name: SVINIT_READY
              value: "tcp://127.0.0.1:8080,http://127.0.0.1:5588/"
`,
			`          startupProbe:
            exec:
              command: ["/usr/local/bin/svinit", "status"]
            periodSeconds: 5
            failureThreshold: 60
`, `          startupProbe:
            exec:
              command: ["/usr/local/bin/svinit", "status", "--ready"]
            periodSeconds: 1
            failureThreshold: 600
          readinessProbe:
            exec:
              command: ["/usr/local/bin/svinit", "status", "--ready"]
            periodSeconds: 1
`))
		name := waitSelected(t, n, ns, "app=security-server-sidecar", "a running security-server-sidecar pod", realPod.running)
		if out, code := execIn(t, n, ns, name, "svinit", "status"); code != 3 || !strings.Contains(out, "waiting for: "+primary) {
			t.Errorf("svinit status of a secondary whose primary is down: exit %d, want 3 naming %s:\n%s", code, primary, out)
		}
		if out, code := execIn(t, n, ns, name, "cat", "/tmp/server-env"); code == 0 {
			t.Fatalf("the server started before its primary accepted SSH:\n%s", out)
		}

		if out, code := execIn(t, n, ns, "primary", "touch", "/tmp/up"); code != 0 {
			t.Fatalf("touch /tmp/up in the primary: exit %d: %s", code, out)
		}
		proctest.Poll(t, podTimeout, "the secondary's server to start", throttled(func() bool {
			_, code := execIn(t, n, ns, name, "test", "-e", "/tmp/server-env")
			return code == 0
		}))
		// The server runs, its slow start is not over: probed, not started, not Ready.
		before := probeCount(t, n, ns, name, "Startup", "failed")
		proctest.Poll(t, podTimeout, "2 more failed startup probes of "+name, throttled(func() bool {
			return probeCount(t, n, ns, name, "Startup", "failed") >= before+2
		}))
		if out, code := execIn(t, n, ns, name, "svinit", "status", "--ready"); code != 3 || !strings.Contains(out, "127.0.0.1:8080") {
			t.Errorf("svinit status --ready while the proxy does not listen: exit %d, want 3 naming the proxy:\n%s", code, out)
		}
		if p, _ := getPod(t, n, ns, name); p.ready() || started(p) {
			t.Errorf("while the server starts: Ready %v, started %v; want neither", p.ready(), started(p))
		}

		if out, code := execIn(t, n, ns, name, "touch", "/tmp/xroad-up"); code != 0 {
			t.Fatalf("touch /tmp/xroad-up: exit %d: %s", code, out)
		}
		p := waitPod(t, n, ns, name, "started and Ready", func(p realPod) bool { return started(p) && p.ready() })
		if r := p.Status.ContainerStatuses[0].RestartCount; r != 0 {
			t.Errorf("the secondary was restarted %d times, want never", r)
		}
	})
}
