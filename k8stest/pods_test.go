package k8stest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/svinit/svinit/internal/proctest"
	"github.com/svinit/svinit/k8stest/cluster"
)

// The tests named TestPods* run svinit in real pods on a node of their own
// (cluster.StartNode): `go test ./k8stest -run Pods`.

// image is what every pod runs: the static svinit of this checkout and a static busybox.
const image = "k8stest.invalid/svinit-busybox:test"

const podTimeout = 90 * time.Second

// startNode starts a node with the suite's image imported and returns it and a fresh
// namespace whose "default" ServiceAccount exists.
func startNode(t *testing.T) (*cluster.Node, string) {
	t.Helper()
	n := cluster.StartNode(t)
	n.ImportImage(t, image, imageFiles(t), []string{"/usr/local/bin/svinit", "--"})
	ns := n.Namespace(t)
	// The controller-manager creates it a moment after the namespace; the pods need it.
	proctest.Poll(t, podTimeout, "ServiceAccount default in "+ns, throttled(func() bool {
		status, _ := n.Do(t, http.MethodGet, "/api/v1/namespaces/"+ns+"/serviceaccounts/default", "", nil)
		return status == http.StatusOK
	}))
	return n, ns
}

// script is an executable stand-in at path.
func script(path, text string) cluster.File {
	return cluster.File{Path: path, Mode: 0o755, Data: []byte(text)}
}

// imageFiles: /usr/local/bin/svinit (static), /bin/busybox with every applet linked, and the
// stand-ins.
func imageFiles(t *testing.T) []cluster.File {
	t.Helper()
	svinit, err := os.ReadFile(svinitBin)
	if err != nil {
		t.Fatal(err)
	}
	busyboxPath, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("no busybox: apt-get install busybox-static: %v", err)
	}
	busybox, err := os.ReadFile(busyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("file", "-L", busyboxPath).Output(); err == nil && !strings.Contains(string(out), "statically linked") {
		t.Fatalf("%s is not static (apt-get install busybox-static): %s", busyboxPath, out)
	}
	net, err := os.ReadFile(filepath.Join(filepath.Dir(svinitBin), "svinit-net"))
	if err != nil {
		t.Fatal(err)
	}
	files := []cluster.File{
		{Path: "/usr/local/bin/svinit", Mode: 0o755, Data: svinit},
		{Path: "/usr/local/bin/svinit-net", Mode: 0o755, Data: net},
		{Path: "/bin/busybox", Mode: 0o755, Data: busybox},
	}
	// The vendors' servers as the examples' args name them (shell scripts that record what
	// the tests check), and the directories their images have.
	files = append(files, svServerStandIn, icapStandIn, xroadStandIn, xroadSecondaryStandIn, reportWriterStandIn)
	files = append(files, agdbStandIn...)
	list, err := exec.Command(busyboxPath, "--list-full").Output()
	if err != nil {
		t.Fatalf("busybox --list-full: %v", err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "bin/busybox" {
			files = append(files, cluster.File{Path: "/" + applet, Link: "/bin/busybox"})
		}
	}
	return files
}

// realPod is the part of a running Pod the tests read.
type realPod struct {
	Metadata struct {
		Name              string            `json:"name"`
		UID               string            `json:"uid"`
		Labels            map[string]string `json:"labels"`
		DeletionTimestamp *string           `json:"deletionTimestamp"`
	} `json:"metadata"`
	Status struct {
		Phase      string `json:"phase"`
		PodIP      string `json:"podIP"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		ContainerStatuses []struct {
			Name         string `json:"name"`
			ContainerID  string `json:"containerID"`
			Ready        bool   `json:"ready"`
			Started      *bool  `json:"started"`
			RestartCount int    `json:"restartCount"`
			State        struct {
				Running    *struct{} `json:"running"`
				Terminated *struct {
					ExitCode int    `json:"exitCode"`
					Reason   string `json:"reason"`
					Message  string `json:"message"`
				} `json:"terminated"`
			} `json:"state"`
			LastState struct {
				Terminated *struct {
					ExitCode int    `json:"exitCode"`
					Reason   string `json:"reason"`
					Message  string `json:"message"`
				} `json:"terminated"`
			} `json:"lastState"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

func (p realPod) ready() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

func (p realPod) running() bool {
	return len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Running != nil
}

// getPod returns ns/name and whether it exists.
func getPod(t *testing.T, n *cluster.Node, ns, name string) (realPod, bool) {
	t.Helper()
	status, body := n.Do(t, http.MethodGet, "/api/v1/namespaces/"+ns+"/pods/"+name, "", nil)
	if status == http.StatusNotFound {
		return realPod{}, false
	}
	if status != http.StatusOK {
		t.Fatalf("get pod %s: %d: %s", name, status, cluster.StatusMessage(body))
	}
	var p realPod
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	return p, true
}

// listPods returns the pods of ns that match the label selector.
func listPods(t *testing.T, n *cluster.Node, ns, selector string) []realPod {
	t.Helper()
	status, body := n.Do(t, http.MethodGet, "/api/v1/namespaces/"+ns+"/pods?labelSelector="+selector, "", nil)
	if status != http.StatusOK {
		t.Fatalf("list pods %s: %d: %s", selector, status, cluster.StatusMessage(body))
	}
	var list struct {
		Items []realPod `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// waitPod polls ns/name until cond holds and returns it; the pod's events and log go with
// a failure.
func waitPod(t *testing.T, n *cluster.Node, ns, name, what string, cond func(realPod) bool) realPod {
	t.Helper()
	var p realPod
	defer func() {
		if t.Failed() {
			t.Logf("pod %s:\n%s", name, describe(n, ns, name))
		}
	}()
	proctest.Poll(t, podTimeout, fmt.Sprintf("pod %s %s", name, what), throttled(func() bool {
		var ok bool
		p, ok = getPod(t, n, ns, name)
		return ok && cond(p)
	}))
	return p
}

// waitSelected polls the pods of ns that selector selects until one satisfies cond, and
// returns its name.
func waitSelected(t *testing.T, n *cluster.Node, ns, selector, what string, cond func(realPod) bool) string {
	t.Helper()
	var name string
	proctest.Poll(t, podTimeout, what, throttled(func() bool {
		for _, p := range listPods(t, n, ns, selector) {
			if cond(p) {
				name = p.Metadata.Name
				return true
			}
		}
		return false
	}))
	return name
}

// throttled asks cond at most every 100 ms: proctest.Poll looks every few milliseconds, which
// is too often for requests to the API server.
func throttled(cond func() bool) func() bool {
	var last time.Time
	return func() bool {
		if time.Since(last) < 100*time.Millisecond {
			return false
		}
		last = time.Now()
		return cond()
	}
}

// describe is what a failure shows of a pod: its state, events and log.
func describe(n *cluster.Node, ns, name string) string {
	out, _ := n.Kubectl("-n", ns, "describe", "pod", name)
	logs, _ := n.Kubectl("-n", ns, "logs", name, "--tail=30")
	return string(out) + "\nlog:\n" + string(logs)
}

// example returns the manifest examples/k8s/PATH with the image names replaced by the
// suite's (pulled never), then each old string of replace (pairs old, new) by its new one;
// an old string the file lacks fails the test, so that the examples cannot drift from what
// the tests patch.
func example(t *testing.T, path string, replace ...string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(examplesDir, path))
	if err != nil {
		t.Fatal(err)
	}
	out := exampleImage.ReplaceAllString(string(data), "${1}image: "+image+"\n${1}imagePullPolicy: Never")
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(out, replace[i]) {
			t.Fatalf("examples/k8s/%s no longer has %q: update the test", path, replace[i])
		}
		out = strings.ReplaceAll(out, replace[i], replace[i+1])
	}
	return []byte(out)
}

var exampleImage = regexp.MustCompile(`(?m)^(\s*)image: registry\.example\.com/\S+.*$`)

// exec runs a command in the pod's container through the API server and the kubelet, as
// `kubectl exec` does, and returns its output and exit code.
func execIn(t *testing.T, n *cluster.Node, ns, name string, command ...string) (string, int) {
	t.Helper()
	out, err := n.Kubectl(append([]string{"-n", ns, "exec", name, "--"}, command...)...)
	if err == nil {
		return string(out), 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	t.Fatalf("kubectl exec %s %v: %v: %s", name, command, err, out)
	return "", 0
}

// TestPodsStatusAndStopInAPod: in a real pod where svinit is PID 1, `svinit status` exits 0
// while the program runs, and `kubectl exec POD -- svinit stop --wait` makes svinit forward
// SIGTERM to the program and returns 0 once svinit has exited, which ends the container.
// Then the node's teardown has left nothing on the host.
func TestPodsStatusAndStopInAPod(t *testing.T) {
	var n *cluster.Node
	t.Run("pod", func(t *testing.T) {
		var ns string
		n, ns = startNode(t)
		// The program says on its termination log which signal it got.
		n.Apply(t, ns, []byte(`apiVersion: v1
kind: Pod
metadata:
  name: any
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 30
  containers:
    - name: main
      image: `+image+`
      imagePullPolicy: Never
      command: ["/usr/local/bin/svinit", "--"]
      args: ["sh", "-c", "trap 'echo got SIGTERM >/dev/termination-log; exit 0' TERM; while :; do sleep 0.1; done"]
`))
		waitPod(t, n, ns, "any", "running", realPod.running)

		out, code := execIn(t, n, ns, "any", "svinit", "status")
		if code != 0 || !strings.Contains(out, "running") {
			t.Fatalf("svinit status in the running pod: exit %d, want 0 saying running:\n%s", code, out)
		}
		began := time.Now()
		out, code = execIn(t, n, ns, "any", "svinit", "stop", "--wait", "--timeout", "20s")
		if code != 0 {
			t.Fatalf("svinit stop --wait: exit %d, want 0:\n%s", code, out)
		}
		t.Logf("svinit stop --wait returned 0 after %v", time.Since(began).Round(time.Millisecond))
		p := waitPod(t, n, ns, "any", "terminated", func(p realPod) bool {
			return len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Terminated != nil
		})
		term := p.Status.ContainerStatuses[0].State.Terminated
		if term.Message != "got SIGTERM\n" || term.ExitCode != 0 {
			t.Fatalf("container terminated with exit %d, message %q; want 0 and the program's \"got SIGTERM\"", term.ExitCode, term.Message)
		}
	})
	if n == nil {
		return
	}
	if left := n.Leftovers(); len(left) > 0 {
		t.Errorf("the node's teardown left on the host:\n%s", strings.Join(left, "\n"))
	}
}
