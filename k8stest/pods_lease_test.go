package k8stest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proctest"
	"github.com/svinit/svinit/k8stest/cluster"
)

// The program every contender runs under --lock k8s-lease:NAME, in the place of
// examples/k8s/lease's report writer: it appends "EVENT POD UPTIME"
// to /events/log, a hostPath all pods share: start when it starts, term when it gets SIGTERM
// (it exits at once). UPTIME is the host's (/proc/uptime is not namespaced), so the events of
// every pod, and the test's own, are on one clock.
var reportWriterStandIn = script("/usr/local/bin/report-writer", `#!/bin/sh
ev() { read up _ </proc/uptime; echo "$1 $(hostname) $up" >>/events/log; }
ev start
trap 'ev term; exit 0' TERM
while :; do sleep 0.1; done
`)

// Short Lease timings keep the test's wall time down; they satisfy svinit's rule
// duration > renew deadline + grace with a second to spare.
const (
	leaseDuration      = 6 * time.Second
	leaseRenewDeadline = 3 * time.Second
	leaseRetryPeriod   = 1 * time.Second
	leaseGrace         = 1 * time.Second
	// What the clocks' resolutions may take off a bound: /proc/uptime counts in 10 ms.
	clockSlack = 250 * time.Millisecond
)

const leaseRBACFile = "lease/rbac.yaml"

var (
	exampleLeaseName      = regexp.MustCompile(`resourceNames: \["([^"]+)"\]`)
	exampleServiceAccount = regexp.MustCompile(`(?m)^kind: ServiceAccount\n(?:.*\n)*?\s+name: (\S+)`)
)

// leaseRBAC returns examples/k8s/lease/rbac.yaml and the names it is for: the one Lease its
// Role may get and update, and the ServiceAccount it binds.
func leaseRBAC(t *testing.T) (rbac []byte, lease, sa string) {
	t.Helper()
	rbac, err := os.ReadFile(filepath.Join(examplesDir, leaseRBACFile))
	if err != nil {
		t.Fatal(err)
	}
	l, s := exampleLeaseName.FindSubmatch(rbac), exampleServiceAccount.FindSubmatch(rbac)
	if l == nil || s == nil {
		t.Fatalf("examples/k8s/%s names no Lease (resourceNames) or no ServiceAccount: update the test", leaseRBACFile)
	}
	return rbac, string(l[1]), string(s[1])
}

// leaseEvent is a line of the events log.
type leaseEvent struct {
	what, pod string
	at        time.Time
}

func (e leaseEvent) String() string {
	return fmt.Sprintf("%s %s %s", e.what, e.pod, e.at.Format("15:04:05.000"))
}

// leaseLog is the events log on the node, and the wall-clock time of the host's uptime 0, so
// that its events compare with a Lease's renewTime (the holders' wall clock, this host's).
type leaseLog struct {
	path string
	boot time.Time
}

func newLeaseLog(t *testing.T, dir string) *leaseLog {
	t.Helper()
	var ts unix.Timespec
	// /proc/uptime is CLOCK_BOOTTIME.
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		t.Fatal(err)
	}
	return &leaseLog{path: filepath.Join(dir, "log"), boot: time.Now().Add(-time.Duration(ts.Nano()))}
}

func (l *leaseLog) events(t *testing.T) []leaseEvent {
	t.Helper()
	data, err := os.ReadFile(l.path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var evs []leaseEvent
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		up, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			t.Fatalf("events log: %q: %v", line, err)
		}
		evs = append(evs, leaseEvent{f[0], f[1], l.boot.Add(time.Duration(up * float64(time.Second)))})
	}
	return evs
}

// event returns pod's last event of the kind, if any.
func (l *leaseLog) event(t *testing.T, what, pod string) (leaseEvent, bool) {
	t.Helper()
	evs := l.events(t)
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].what == what && evs[i].pod == pod {
			return evs[i], true
		}
	}
	return leaseEvent{}, false
}

// record appends the test's own event: "kill" once it has SIGKILLed a pod's processes, an
// upper bound on the time its program died.
func (l *leaseLog) record(t *testing.T, what, pod string) {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s %s %.3f\n", what, pod, float64(ts.Nano())/1e9); err != nil {
		t.Fatal(err)
	}
}

// running returns the pods whose program runs: started, not yet stopped or killed. It fails
// the test at once when that is more than one.
func (l *leaseLog) running(t *testing.T) []string {
	t.Helper()
	evs := l.events(t)
	if err := neverTwo(evs); err != nil {
		t.Fatalf("%v; events:\n%s", err, formatEvents(evs))
	}
	open := map[string]bool{}
	for _, e := range evs {
		open[e.pod] = e.what == "start"
	}
	var pods []string
	for pod, ok := range open {
		if ok {
			pods = append(pods, pod)
		}
	}
	return pods
}

// neverTwo checks that no program started while another ran: in time order, each start
// comes after the stop (term) or kill of the one before.
func neverTwo(evs []leaseEvent) error {
	evs = append([]leaseEvent(nil), evs...)
	sort.SliceStable(evs, func(i, j int) bool {
		if evs[i].at.Equal(evs[j].at) {
			return evs[i].what != "start" && evs[j].what == "start" // a stop and a start in one tick: no overlap
		}
		return evs[i].at.Before(evs[j].at)
	})
	var holder string
	for _, e := range evs {
		switch e.what {
		case "start":
			if holder != "" {
				return fmt.Errorf("two holders: %s started while %s's program ran", e, holder)
			}
			holder = e.pod
		case "term", "kill":
			if e.pod == holder {
				holder = ""
			}
		}
	}
	return nil
}

func formatEvents(evs []leaseEvent) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\t%s\n", e)
	}
	return b.String()
}

// waitStart waits for pod's program to start and returns its start event.
func (l *leaseLog) waitStart(t *testing.T, limit time.Duration, pod string) leaseEvent {
	t.Helper()
	var start leaseEvent
	proctest.Poll(t, limit, "the program of "+pod+" started", throttled(func() bool {
		var ok bool
		start, ok = l.event(t, "start", pod)
		return ok
	}))
	return start
}

// lease is the part of a coordination.k8s.io/v1 Lease the tests read.
type lease struct {
	Spec struct {
		HolderIdentity       *string `json:"holderIdentity"`
		RenewTime            *string `json:"renewTime"`
		LeaseDurationSeconds *int    `json:"leaseDurationSeconds"`
	} `json:"spec"`
}

func (l lease) holder() string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// heldBy: the holder identity is pod's: "POD_" and 8 hex digits, one per svinit run.
func (l lease) heldBy(pod string) bool {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(pod) + `_[0-9a-f]{8}$`).MatchString(l.holder())
}

func (l lease) renewed(t *testing.T) time.Time {
	t.Helper()
	if l.Spec.RenewTime == nil {
		t.Fatalf("the Lease held by %q has no renewTime", l.holder())
	}
	at, err := time.Parse(time.RFC3339Nano, *l.Spec.RenewTime)
	if err != nil {
		t.Fatalf("the Lease's renewTime: %v", err)
	}
	return at
}

func getLease(t *testing.T, n *cluster.Node, ns, name string) (lease, bool) {
	t.Helper()
	status, body := n.Do(t, http.MethodGet, "/apis/coordination.k8s.io/v1/namespaces/"+ns+"/leases/"+name, "", nil)
	if status == http.StatusNotFound {
		return lease{}, false
	}
	if status != http.StatusOK {
		t.Fatalf("get lease %s: %d: %s", name, status, cluster.StatusMessage(body))
	}
	var l lease
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatal(err)
	}
	return l, true
}

// leaseContenders is the setup the subtests share: the example Role in a namespace, the
// events log, and how a contender's pod is specified.
type leaseContenders struct {
	n         *cluster.Node
	ns        string
	lease, sa string
	log       *leaseLog
	dir       string
}

func newLeaseContenders(t *testing.T, n *cluster.Node, ns, dir string) *leaseContenders {
	t.Helper()
	rbac, name, sa := leaseRBAC(t)
	n.Apply(t, ns, rbac)
	for _, verb := range []string{"get", "update"} {
		n.WaitAllowed(t, ns, sa, verb, "coordination.k8s.io/leases", name)
	}
	n.WaitAllowed(t, ns, sa, "create", "coordination.k8s.io/leases", "")
	return &leaseContenders{n: n, ns: ns, lease: name, sa: sa, log: newLeaseLog(t, dir), dir: dir}
}

// podSpec is a contender's pod spec at the indentation of a Pod's spec (indent "  ") or a
// Deployment's template (indent "      ").
func (c *leaseContenders) podSpec(indent, restartPolicy string) string {
	spec := fmt.Sprintf(`restartPolicy: %s
serviceAccountName: %s
terminationGracePeriodSeconds: 10
containers:
  - name: main
    image: %s
    imagePullPolicy: Never
    command: ["/usr/local/bin/svinit"]
    args: ["--lock", "k8s-lease:%s", "--lease-duration", "%s", "--lease-renew-deadline", "%s",
           "--lease-retry-period", "%s", "--grace", "%s", "--", "/usr/local/bin/report-writer"]
    env:
      - name: SVINIT_POD_NAME
        valueFrom: {fieldRef: {fieldPath: metadata.name}}
    volumeMounts: [{name: events, mountPath: /events}]
volumes:
  - name: events
    hostPath: {path: %q, type: Directory}
`, restartPolicy, c.sa, image, c.lease, leaseDuration, leaseRenewDeadline, leaseRetryPeriod, leaseGrace, c.dir)
	return indent + strings.ReplaceAll(strings.TrimSuffix(spec, "\n"), "\n", "\n"+indent) + "\n"
}

// pods creates one Pod per name, never restarted, in one go so that they contend.
func (c *leaseContenders) pods(t *testing.T, names ...string) {
	t.Helper()
	var docs []string
	for _, name := range names {
		docs = append(docs, fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  labels: {app: lease-contender}\nspec:\n%s",
			name, c.podSpec("  ", "Never")))
	}
	c.n.Apply(t, c.ns, []byte(strings.Join(docs, "---\n")))
}

// waitHeldAgainst waits until holder's svinit has renewed the Lease for more than a lease
// duration after waiter's container started: had the waiter taken the Lease on its own
// clock, or ignored it, its program would have started by then.
func (c *leaseContenders) waitHeldAgainst(t *testing.T, holder, waiter string) {
	t.Helper()
	waitPod(t, c.n, c.ns, waiter, "running", realPod.running)
	since := time.Now()
	proctest.Poll(t, leaseDuration+podTimeout, holder+" renewing the Lease for a lease duration while "+waiter+" waits", throttled(func() bool {
		l, ok := getLease(t, c.n, c.ns, c.lease)
		if ok && !l.heldBy(holder) {
			t.Fatalf("the Lease is held by %q, want %s_ and 8 hex digits; events:\n%s", l.holder(), holder, formatEvents(c.log.events(t)))
		}
		return ok && l.renewed(t).After(since.Add(leaseDuration+leaseRetryPeriod))
	}))
	if running := c.log.running(t); len(running) != 1 || running[0] != holder {
		t.Fatalf("programs running: %v, want %s's only; events:\n%s", running, holder, formatEvents(c.log.events(t)))
	}
}

// kill SIGKILLs the processes of pod's container on the node (stopped first, so that
// nothing handles the SIGTERM of the force delete in between) and force-deletes the pod:
// a holder that dies without a word, so its svinit clears nothing. It records "kill" once
// they are gone.
func (c *leaseContenders) kill(t *testing.T, pod string) {
	t.Helper()
	// The program may run before the pod's status names its container.
	var pids []int
	proctest.Poll(t, podTimeout, "the processes of "+pod+"'s container on the node", throttled(func() bool {
		p, ok := getPod(t, c.n, c.ns, pod)
		if !ok {
			t.Fatalf("pod %s is gone before its kill", pod)
		}
		if !p.running() || p.Status.ContainerStatuses[0].ContainerID == "" {
			return false
		}
		pids = c.n.ContainerPIDs(p.Metadata.UID, p.Status.ContainerStatuses[0].ContainerID)
		return len(pids) > 0
	}))
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	if out, err := c.n.Kubectl("-n", c.ns, "delete", "pod", pod, "--force", "--grace-period=0"); err != nil {
		t.Fatalf("kubectl delete --force: %v: %s", err, out)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	proctest.Poll(t, 30*time.Second, "the processes of "+pod+" gone", func() bool {
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); err == nil {
				if data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(data), ") Z ") {
					return false
				}
			}
		}
		return true
	})
	c.log.record(t, "kill", pod)
	if _, ok := c.log.event(t, "term", pod); ok {
		t.Fatalf("the program of %s got SIGTERM: it was to die without a word", pod)
	}
}

func (c *leaseContenders) deletePods(t *testing.T, pods ...string) {
	t.Helper()
	if out, err := c.n.Kubectl(append([]string{"-n", c.ns, "delete", "pod", "--wait=false"}, pods...)...); err != nil {
		t.Fatalf("kubectl delete pod %v: %v: %s", pods, err, out)
	}
}

// TestPodsLease runs svinit --lock k8s-lease:NAME in real pods with the example Role of
// examples/k8s/lease: of two pods started together exactly one runs its program while the
// other waits; a clean stop (kubectl delete) clears the holder, so the waiter's program
// starts well within the lease duration of the holder's; a holder SIGKILLed on the node
// keeps the Lease until it expires, a lease duration after its last renewal; a holder cut
// off from the API server for longer than the renew deadline stops its program (SIGTERM,
// svinit exits 73) before its Lease can expire for anyone else; and over rounds of deletes
// and kills of the holder of the example's Deployment (3 replicas), no two programs ever run
// at once.
func TestPodsLease(t *testing.T) {
	// Made before the node, so that they are removed after its teardown: the pods mount them.
	events, roundsEvents := t.TempDir(), t.TempDir()
	n, ns := startNode(t)
	c := newLeaseContenders(t, n, ns, events)

	// Each of the first three subtests starts from the holder the one before left.
	var holder string
	ok := t.Run("two pods: one runs, a clean stop hands over at once", func(t *testing.T) {
		c.pods(t, "lease-a", "lease-b")
		proctest.Poll(t, podTimeout, "a program started", throttled(func() bool {
			return len(c.log.running(t)) > 0
		}))
		holder = c.log.running(t)[0]
		waiter := map[string]string{"lease-a": "lease-b", "lease-b": "lease-a"}[holder]
		c.waitHeldAgainst(t, holder, waiter)

		c.deletePods(t, holder)
		start := c.log.waitStart(t, podTimeout, waiter)
		stop, ok := c.log.event(t, "term", holder)
		if !ok {
			t.Fatalf("the program of %s got no SIGTERM; events:\n%s", holder, formatEvents(c.log.events(t)))
		}
		gap := start.at.Sub(stop.at)
		t.Logf("%s's program stopped at %s, %s's started %v later", holder, stop.at.Format("15:04:05.000"), waiter, gap.Round(time.Millisecond))
		// An expired Lease would be taken no sooner than a lease duration after the last
		// renewal, which is at most a retry period before the stop.
		if gap < 0 || gap > leaseDuration/2 {
			t.Errorf("the waiter's program started %v after the holder's stopped, want within [0, %v]: the released Lease was not taken at once; events:\n%s",
				gap, leaseDuration/2, formatEvents(c.log.events(t)))
		}
		holder = waiter
	})

	ok = ok && t.Run("a holder killed on the node keeps the Lease a lease duration", func(t *testing.T) {
		c.pods(t, "lease-c")
		c.waitHeldAgainst(t, holder, "lease-c")
		l, _ := getLease(t, n, ns, c.lease)
		last := l.renewed(t)
		c.kill(t, holder)
		killed := time.Now()
		// The last renewal: a request in flight at the SIGSTOP may still land, so every
		// record of the dead holder is read until the Lease changes hands.
		proctest.Poll(t, leaseDuration+podTimeout, "lease-c's program started", throttled(func() bool {
			if l, ok := getLease(t, n, ns, c.lease); ok && l.heldBy(holder) && l.renewed(t).After(last) {
				last = l.renewed(t)
			}
			_, ok := c.log.event(t, "start", "lease-c")
			return ok
		}))
		start, _ := c.log.event(t, "start", "lease-c")
		after := start.at.Sub(last)
		t.Logf("the dead holder's last renewal at %s, killed %v later; lease-c's program started %v after that renewal",
			last.Format("15:04:05.000"), killed.Sub(last).Round(time.Millisecond), after.Round(time.Millisecond))
		if after < leaseDuration-clockSlack {
			t.Errorf("lease-c's program started %v after the dead holder's last renewal, want at least the lease duration %v", after, leaseDuration)
		}
		holder = "lease-c"
	})

	if ok {
		t.Run("an API server outage longer than the renew deadline stops the program", func(t *testing.T) {
			p := waitPod(t, n, ns, holder, "running", realPod.running)
			l, _ := getLease(t, n, ns, c.lease)
			if !l.heldBy(holder) {
				t.Fatalf("the Lease is held by %q, want %s", l.holder(), holder)
			}
			restore := n.CutFromAPIServer(t, p.Status.PodIP)
			cut := time.Now()
			// Generous: svinit acts at the renew deadline.
			proctest.Poll(t, 3*leaseDuration, holder+"'s program stopped after the cut", throttled(func() bool {
				_, ok := c.log.event(t, "term", holder)
				return ok
			}))
			p = waitPod(t, n, ns, holder, "terminated", func(p realPod) bool {
				return len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Terminated != nil
			})
			restore()
			logs, _ := n.Kubectl("-n", ns, "logs", holder)
			if code := p.Status.ContainerStatuses[0].State.Terminated.ExitCode; code != 73 {
				t.Errorf("svinit exited %d after losing the API server, want 73; log:\n%s", code, logs)
			}
			term, ok := c.log.event(t, "term", holder)
			if !ok {
				t.Fatalf("the program got no SIGTERM; events:\n%s\nlog:\n%s", formatEvents(c.log.events(t)), logs)
			}
			l, _ = getLease(t, n, ns, c.lease)
			if !l.heldBy(holder) {
				t.Fatalf("the Lease is held by %q, want still the cut-off %s", l.holder(), holder)
			}
			last := l.renewed(t)
			after := term.at.Sub(last)
			t.Logf("cut %v after the last renewal; the program got SIGTERM %v after it (renew deadline %v, lease duration %v)",
				cut.Sub(last).Round(time.Millisecond), after.Round(time.Millisecond), leaseRenewDeadline, leaseDuration)
			if after < leaseRenewDeadline-clockSlack {
				t.Errorf("the program was stopped %v after the last renewal, before the renew deadline %v", after, leaseRenewDeadline)
			}
			// The program exits on SIGTERM at once: it must be gone before anyone may take the
			// Lease, a lease duration after that renewal.
			if after >= leaseDuration {
				t.Errorf("the program was stopped %v after the last renewal, not before the Lease could expire (%v)", after, leaseDuration)
			}
		})
	}

	// A namespace and Lease of its own.
	t.Run("never two holders over rounds of deletes and kills", func(t *testing.T) {
		ns := n.Namespace(t)
		// As startNode: the controller-manager has set the namespace up.
		proctest.Poll(t, podTimeout, "ServiceAccount default in "+ns, throttled(func() bool {
			status, _ := n.Do(t, http.MethodGet, "/api/v1/namespaces/"+ns+"/serviceaccounts/default", "", nil)
			return status == http.StatusOK
		}))
		c := newLeaseContenders(t, n, ns, roundsEvents)
		// The example as it is, but for 3 replicas (two waiters race for each release), the
		// short timings, and the events log.
		n.Apply(t, ns, example(t, "lease/deployment.yaml",
			"replicas: 2", "replicas: 3",
			"value: 45s", fmt.Sprintf("value: %s", leaseDuration),
			"value: 15s", fmt.Sprintf("value: %s", leaseRenewDeadline),
			"value: 2s", fmt.Sprintf("value: %s", leaseRetryPeriod),
			"value: 20s", fmt.Sprintf("value: %s", leaseGrace),
			`              drop: ["ALL"]
`, `              drop: ["ALL"]
          volumeMounts: [{name: events, mountPath: /events}]
`,
			"            periodSeconds: 5\n", `            periodSeconds: 5
      volumes:
        - name: events
          hostPath: {path: "`+roundsEvents+`", type: Directory}
`))
		const rounds = 12
		began := time.Now()
		for round := 1; round <= rounds; round++ {
			var running []string
			proctest.Poll(t, leaseDuration+podTimeout, fmt.Sprintf("round %d: a program running", round), throttled(func() bool {
				running = c.log.running(t)
				return len(running) > 0
			}))
			holder := running[0]
			starts := 0
			for _, e := range c.log.events(t) {
				if e.what == "start" {
					starts++
				}
			}
			var waiter string
			for _, p := range listPods(t, n, ns, "app=report-writer") {
				if p.Metadata.Name != holder && p.Metadata.DeletionTimestamp == nil && p.running() {
					waiter = p.Metadata.Name
				}
			}
			switch {
			case round%6 == 0:
				c.kill(t, holder)
			case round%3 == 0 && waiter != "":
				c.deletePods(t, holder, waiter) // the replacements contend too
			default:
				c.deletePods(t, holder)
			}
			proctest.Poll(t, leaseDuration+podTimeout, fmt.Sprintf("round %d: a program started after %s's", round, holder), throttled(func() bool {
				n := 0
				for _, e := range c.log.events(t) {
					if e.what == "start" {
						n++
					}
				}
				return n > starts
			}))
		}
		t.Logf("%d rounds in %v", rounds, time.Since(began).Round(time.Millisecond))
		if out, err := n.Kubectl("-n", ns, "delete", "deployment", "report-writer", "--wait=false"); err != nil {
			t.Fatalf("kubectl delete deployment: %v: %s", err, out)
		}
		proctest.Poll(t, podTimeout, "the contenders gone", throttled(func() bool {
			return len(listPods(t, n, ns, "app=report-writer")) == 0
		}))
		evs := c.log.events(t)
		if err := neverTwo(evs); err != nil {
			t.Errorf("%v; events:\n%s", err, formatEvents(evs))
		}
		if running := c.log.running(t); len(running) != 0 {
			t.Errorf("programs still running after their pods are gone: %v", running)
		}
		t.Logf("events:\n%s", formatEvents(evs))
	})
}
