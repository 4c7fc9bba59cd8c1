package k8stest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/svinit/svinit/internal/proctest"
	"github.com/svinit/svinit/k8stest/cluster"
)

// The SV Server stand-in appends "EVENT HOSTNAME UPTIME UID GID" to logs/events: start, term
// (SIGTERM received), stop (exited by itself). work/stop-seconds says how long it takes to
// stop after SIGTERM; "forever": it ignores SIGTERM; "release": it stops once the test
// creates work/release.
var svServerStandIn = script("/opt/microfocus/sv-server/bin/start-server.sh", `#!/bin/sh
dir=/opt/microfocus/sv-server
ev() { read up _ </proc/uptime; echo "$1 $(hostname) $up $(id -u) $(id -g)" >>$dir/logs/events; }
ev start
trap 'ev term
s=$(cat $dir/work/stop-seconds 2>/dev/null || echo 0)
if [ "$s" = forever ]; then while :; do sleep 1; done; fi
if [ "$s" = release ]; then while [ ! -e $dir/work/release ]; do sleep 0.05; done; s=0; fi
sleep $s; ev stop; exit 0' TERM
while :; do sleep 0.1; done
`)

type svEvent struct {
	what, pod string
	at        float64 // host uptime, seconds
	uid, gid  string
}

// svServer is the example Deployment on hostPath volumes the test reads directly.
type svServer struct {
	n             *cluster.Node
	ns, work, log string
}

func (s *svServer) events(t *testing.T) []svEvent {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.log, "events"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var evs []svEvent
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 5 {
			continue
		}
		at, _ := strconv.ParseFloat(f[2], 64)
		evs = append(evs, svEvent{f[0], f[1], at, f[3], f[4]})
	}
	return evs
}

// event returns pod's last event of the kind, if any.
func (s *svServer) event(t *testing.T, what, pod string) (svEvent, bool) {
	t.Helper()
	evs := s.events(t)
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].what == what && evs[i].pod == pod {
			return evs[i], true
		}
	}
	return svEvent{}, false
}

func (s *svServer) stopSeconds(t *testing.T, v string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.work, "stop-seconds"), []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (s *svServer) lockExists() bool {
	_, err := os.Lstat(filepath.Join(s.work, "lock"))
	return err == nil
}

// runningPod waits for the Deployment's one pod that is running and not terminating and
// returns its name.
func (s *svServer) runningPod(t *testing.T) string {
	t.Helper()
	return waitSelected(t, s.n, s.ns, "app=sv-server", "a running sv-server pod", func(p realPod) bool {
		return p.Metadata.DeletionTimestamp == nil && p.ready()
	})
}

// deleteDeployment runs `kubectl delete deployment` and waits until its pods are gone;
// returns how long that took.
func (s *svServer) deleteDeployment(t *testing.T) time.Duration {
	t.Helper()
	began := time.Now()
	if out, err := s.n.Kubectl("-n", s.ns, "delete", "deployment", "sv-server", "--wait=false"); err != nil {
		t.Fatalf("kubectl delete deployment: %v: %s", err, out)
	}
	proctest.Poll(t, 3*time.Minute, "the sv-server pods gone", throttled(func() bool {
		return len(listPods(t, s.n, s.ns, "app=sv-server")) == 0
	}))
	return time.Since(began)
}

// TestPodsSVServer runs examples/k8s/sv-server on hostPath volumes: the server runs as
// 1234:1234 once svinit holds the lock; a rolling update's new pod waits on the lock and its
// server starts within a second of the old one's exit; `kubectl delete` reaches the server as
// SIGTERM and the lock is removed; svinit's --grace SIGKILLs a server that ignores SIGTERM
// before a longer terminationGracePeriodSeconds (and removes the lock), and a shorter
// terminationGracePeriodSeconds lets the kubelet's SIGKILL win (the lock stays, and the next
// pod takes it at once).
func TestPodsSVServer(t *testing.T) {
	// Made before the node, so that they are removed after its teardown (cleanups run last
	// first): the pods mount them until then.
	work, log := t.TempDir(), t.TempDir()
	n, ns := startNode(t)
	s := &svServer{n: n, ns: ns, work: work, log: log}
	for _, dir := range []string{s.work, s.log} {
		if err := os.Chown(dir, 1234, 1234); err != nil {
			t.Fatal(err)
		}
	}
	// The example's claims, bound to hostPath volumes ahead.
	for _, v := range []struct{ claim, size, path string }{{"sv-storage-work", "2Gi", s.work}, {"sv-storage-logs", "1Gi", s.log}} {
		n.Apply(t, "", []byte(fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata:
  name: %s-%s
spec:
  capacity: {storage: %s}
  accessModes: ["ReadWriteOnce"]
  hostPath: {path: %q, type: Directory}
  claimRef: {namespace: %s, name: %s}
`, ns, v.claim, v.size, v.path, ns, v.claim)))
	}
	n.Apply(t, ns, example(t, "sv-server/sv-server.yaml"))

	first := s.runningPod(t)
	start, ok := s.event(t, "start", first)
	if !ok {
		t.Fatalf("no start event of %s: %v", first, s.events(t))
	}
	if start.uid != "1234" || start.gid != "1234" {
		t.Errorf("the server runs as %s:%s, want 1234:1234", start.uid, start.gid)
	}
	if !s.lockExists() {
		t.Fatal("the server runs and the lock file is not in the work volume")
	}

	t.Run("rolling update hands the lock over", func(t *testing.T) {
		// The old server stops only once the new pod's svinit waits on its lock.
		s.stopSeconds(t, "release")
		out, err := n.Kubectl("-n", ns, "rollout", "restart", "deployment/sv-server")
		if err != nil {
			t.Fatalf("kubectl rollout restart: %v: %s", err, out)
		}
		proctest.Poll(t, podTimeout, "the new pod's svinit waiting on the lock", throttled(func() bool {
			for _, p := range listPods(t, n, ns, "app=sv-server") {
				if p.Metadata.Name != first {
					logs, _ := n.Kubectl("-n", ns, "logs", p.Metadata.Name)
					if strings.Contains(string(logs), "lock is held; waiting") {
						return true
					}
				}
			}
			return false
		}))
		if _, ok := s.event(t, "stop", first); ok {
			t.Fatal("the old server stopped before it was released")
		}
		if err := os.WriteFile(filepath.Join(s.work, "release"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		proctest.Poll(t, podTimeout, "the old pod gone", throttled(func() bool {
			_, exists := getPod(t, n, ns, first)
			return !exists
		}))
		second := s.runningPod(t)
		stop, ok1 := s.event(t, "stop", first)
		next, ok2 := s.event(t, "start", second)
		if !ok1 || !ok2 {
			t.Fatalf("want the old server's stop and the new one's start: %v", s.events(t))
		}
		gap := next.at - stop.at
		t.Logf("old server stopped at %.2f, new one started at %.2f: %.2f s later", stop.at, next.at, gap)
		if gap < 0 || gap > 1 {
			t.Errorf("the new server started %.2f s after the old one stopped, want within [0, 1] s: %v", gap, s.events(t))
		}
		first = second
	})

	t.Run("kubectl delete stops the server and removes the lock", func(t *testing.T) {
		s.stopSeconds(t, "1")
		s.deleteDeployment(t)
		if _, ok := s.event(t, "term", first); !ok {
			t.Errorf("the server got no SIGTERM: %v", s.events(t))
		}
		if _, ok := s.event(t, "stop", first); !ok {
			t.Errorf("the server did not stop by itself: %v", s.events(t))
		}
		if s.lockExists() {
			t.Error("the lock file is still there after the pod is gone")
		}
	})

	// A server that ignores SIGTERM, under two budgets: whichever grace is shorter ends it.
	for _, tc := range []struct {
		name, from, to, budgets, killer string
		lockKept                        bool // svinit was SIGKILLed before its clean-up
	}{
		{"--grace shorter than the pod's grace: svinit's SIGKILL", "value: 110s", "value: 2s",
			"svinit --grace 2s, terminationGracePeriodSeconds 120", "svinit's --grace", false},
		{"the pod's grace shorter than --grace: the kubelet's SIGKILL", "terminationGracePeriodSeconds: 120", "terminationGracePeriodSeconds: 2",
			"svinit --grace 110s, terminationGracePeriodSeconds 2", "the kubelet's SIGKILL", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.stopSeconds(t, "forever")
			n.Apply(t, ns, example(t, "sv-server/sv-server.yaml", tc.from, tc.to))
			pod := s.runningPod(t)
			took := s.deleteDeployment(t)
			t.Logf("pod gone %v after its deletion (%s)", took.Round(time.Millisecond), tc.budgets)
			if took > 60*time.Second {
				t.Errorf("the pod took %v to go: %s did not end it", took, tc.killer)
			}
			if _, ok := s.event(t, "stop", pod); ok {
				t.Error("the server stopped by itself; it should have ignored SIGTERM")
			}
			switch kept := s.lockExists(); {
			case kept && !tc.lockKept:
				t.Error("svinit did not remove the lock after its SIGKILL")
			case !kept && tc.lockKept:
				t.Error("the lock file is gone, yet svinit was SIGKILLed before its clean-up")
			case kept:
				// The next pod takes the dead holder's lock at once.
				s.stopSeconds(t, "0")
				n.Apply(t, ns, example(t, "sv-server/sv-server.yaml"))
				next := s.runningPod(t)
				if _, ok := s.event(t, "start", next); !ok || next == pod {
					t.Errorf("the next pod's server did not start: %v", s.events(t))
				}
			}
		})
	}
}
