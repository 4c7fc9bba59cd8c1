package k8stest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/svinit/svinit/internal/proctest"
)

// configChangeLimit bounds the time from `kubectl apply` of a changed ConfigMap to the
// program's SIGHUP: the kubelet updates the volume at the pod's next sync (syncFrequency 5s
// in k8stest/cluster, configMapAndSecretChangeDetectionStrategy left at Watch), then svinit
// waits for its debounce. Generous for a busy 2-core machine; the time taken is logged.
const configChangeLimit = 60 * time.Second

// watchManifest is the README's --template-watch example with the suite's image and a
// program that, at each SIGHUP, appends what it reads from the rendered file to /tmp/rec.
func watchManifest(version string) []byte {
	return []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  app.conf.tmpl: |
    host = {{ .Hostname }}
    version = ` + version + `
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 1
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      containers:
        - name: app
          image: ` + image + `
          imagePullPolicy: Never
          command: ["/usr/local/bin/svinit", "--"]
          args:
            - sh
            - -c
            - |
              conf() { tr '\n' ' ' </etc/app/app.conf; }
              trap 'echo "HUP $(conf)" >>/tmp/rec' HUP
              trap 'exit 0' TERM
              echo "ready $(conf)" >>/tmp/rec
              while :; do sleep 1 & wait $!; done
          env:
            - name: SVINIT_TEMPLATES # --template SRC:DST: the ConfigMap volume, rendered into /etc/app
              value: /config:/etc/app
            - name: SVINIT_TEMPLATE_WATCH # --template-watch
              value: "true"
            - name: SVINIT_RELOAD_SIGNAL # --reload-signal
              value: HUP
          volumeMounts:
            - {name: config, mountPath: /config, readOnly: true} # no subPath: a subPath mount is never updated
            - {name: rendered, mountPath: /etc/app}
      volumes:
        - name: config
          configMap: {name: app-config}
        - name: rendered
          emptyDir: {}
`)
}

// TestPodsTemplateWatch: in a real pod, `kubectl apply` of a changed ConfigMap reaches the
// program as the new rendered file and one SIGHUP, within configChangeLimit; svinit's log
// says so.
func TestPodsTemplateWatch(t *testing.T) {
	n, ns := startNode(t)
	apply := func(version string) {
		t.Helper()
		file := filepath.Join(t.TempDir(), "app.yaml")
		if err := os.WriteFile(file, watchManifest(version), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := n.Kubectl("-n", ns, "apply", "-f", file); err != nil {
			t.Fatalf("kubectl apply: %v: %s", err, out)
		}
	}
	apply("1")
	pod := waitSelected(t, n, ns, "app=app", "the Deployment's pod running", realPod.running)
	defer func() {
		if t.Failed() {
			t.Logf("pod %s:\n%s", pod, describe(n, ns, pod))
		}
	}()
	rec := func() string {
		out, _ := execIn(t, n, ns, pod, "cat", "/tmp/rec")
		return out
	}
	ready := "ready host = " + pod + " version = 1 \n"
	proctest.Poll(t, podTimeout, "the program started", throttled(func() bool { return rec() == ready }))

	applied := time.Now()
	apply("2")
	want := ready + "HUP host = " + pod + " version = 2 \n"
	proctest.Poll(t, configChangeLimit, "the program's SIGHUP with the new file", throttled(func() bool {
		got := rec()
		if got != ready && got != want {
			t.Fatalf("the program saw:\n%s\nwant:\n%s", got, want)
		}
		return got == want
	}))
	t.Logf("the program had the new file and its SIGHUP %v after kubectl apply", time.Since(applied).Round(time.Millisecond))

	logs, err := n.Kubectl("-n", ns, "logs", pod)
	if err != nil || !strings.Contains(string(logs), "signalling the child") {
		t.Errorf("svinit's log does not say it signalled the child (%v):\n%s", err, logs)
	}
	if p, _ := getPod(t, n, ns, pod); !p.running() || p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("the container restarted or stopped: %+v", p.Status.ContainerStatuses)
	}
}
