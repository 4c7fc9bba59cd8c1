package cluster

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/proc"
)

// The node's network: a bridge the test creates is the node IP, the API server's address,
// the pods' gateway and their CNI bridge. The ServiceCIDR's first address (the "kubernetes"
// Service) is sent to the API server by one DNAT rule, as kube-proxy would.
const (
	NodeName   = "k8stest-node"
	NodeIP     = "10.244.0.1"
	bridgeName = "svk8s0"
	podSubnet  = "10.244.0.0/24"
	serviceIP  = "10.96.0.1"
	cniNetwork = "svinit-k8stest"
	netnsDir   = "/var/run/netns"
	// PauseImage is the sandbox image containerd runs; the node builds it from pause.c.
	PauseImage = "registry.k8s.io/pause:3.10"

	nodeReadyTimeout = 120 * time.Second
)

// NodeBuildCommand is what a developer runs to get everything StartNode needs.
const NodeBuildCommand = "k8stest/build-apiserver --node"

// Node is a single-node cluster: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, a containerd of its own and a kubelet, with the bridge CNI. Pods run for
// real; images come only from ImportImage (no registry).
type Node struct {
	*Cluster
	Dir        string // everything the node writes, removed when the test ends
	Kubeconfig string // admin kubeconfig for Kubectl
	kubectl    string
	sock       string          // containerd's socket
	cgroupRoot string          // the kubelet's cgroup root, "svk8s-" and random hex, in every v1 hierarchy
	netns      map[string]bool // the pods' network namespaces (paths) seen at the teardown
	sandboxes  map[string]bool // the containers' IDs seen at the teardown
	before     hostSnapshot
	kept       bool // Dir left for a failed test's post-mortem
}

// StartNode starts a node for the test (root only; cgroup v1 hosts only) and tears it down
// when the test ends: the recorded processes, then the processes and cgroups under the
// kubelet's own cgroup root, the shims of this containerd's socket, every mount under Dir,
// the network namespaces and CNI results of this node's pods, the bridge, the iptables
// rules, and net.ipv4.ip_forward (the bridge plugin sets it) back to its value before. The
// kubelet runs in a mount namespace of its own that shows it the sysctl values it would
// otherwise set on the host, and without iptables. It refuses to start beside another
// kubelet: what a kubelet writes to /var/lib/kubelet, /var/log/pods and
// /usr/libexec/kubernetes during the test is taken to be this node's and removed.
func StartNode(t testing.TB) *Node {
	t.Helper()
	if os.Geteuid() != 0 {
		if testing.Short() {
			t.Skip("cluster: a node needs root; skipped under -short")
		}
		t.Fatal("cluster: a node needs root (it runs containerd, the kubelet, a bridge)")
	}
	began := time.Now()
	apiserverBin, etcdBin := binaries(t)
	bins := map[string]string{}
	for _, c := range []string{"kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"} {
		bins[c] = cached(t, c)
		if fi, err := os.Stat(bins[c]); err != nil || fi.Mode()&0o111 == 0 {
			missing(t, "no "+c+" binary at "+bins[c], NodeBuildCommand+"   (from the repository root)")
		}
	}
	for _, c := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "ip", "unshare", "gcc"} {
		if _, err := exec.LookPath(c); err != nil {
			missing(t, "no "+c+" on PATH", NodeBuildCommand)
		}
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		missing(t, "no bridge CNI plugin in /usr/lib/cni", NodeBuildCommand)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &fs); err != nil || fs.Type == unix.CGROUP2_SUPER_MAGIC {
		t.Fatalf("cluster: /sys/fs/cgroup is cgroup v2 (unified) or unreadable (%v): the node handles cgroup v1 "+
			"hierarchies only (its kubelet cgroup root, the teardown and ContainerPIDs); run it on a cgroup v1 host", err)
	}
	if pids := processesNamed("kubelet"); len(pids) > 0 {
		t.Fatalf("cluster: a kubelet already runs (PIDs %v): the node's teardown would take what it writes to "+
			"/var/lib/kubelet, /var/log/pods and /usr/libexec/kubernetes for its own; stop it first", pids)
	}
	if out, err := exec.Command("ip", "link", "show", bridgeName).CombinedOutput(); err == nil {
		t.Fatalf("cluster: bridge %s exists: another node runs, or a killed test binary left one behind "+
			"(its containerd shims, mounts under /tmp/k8snode*, and the bridge: remove them once no test runs):\n%s", bridgeName, out)
	}

	// Short: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "k8snode")
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 6)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	n := &Node{Dir: dir, kubectl: bins["kubectl"], sock: filepath.Join(dir, "containerd.sock"),
		cgroupRoot: "svk8s-" + hex.EncodeToString(random), netns: map[string]bool{}, sandboxes: map[string]bool{}, before: takeSnapshot()}
	// Registered first, so it runs last: after every process is stopped.
	t.Cleanup(func() {
		if err := n.sweep(); err != nil {
			t.Errorf("cluster: node teardown: %v", err)
		}
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			n.kept = true
			t.Logf("cluster: node files kept in %s", dir)
		}
	})
	n.setUpNetwork(t)

	c, pki := start(t, dir, apiserverBin, etcdBin, NodeIP, []net.IP{net.ParseIP(NodeIP), net.ParseIP(serviceIP)},
		func(p pki) []string {
			return []string{
				"--kubelet-client-certificate=" + p.kubeletClientCertFile,
				"--kubelet-client-key=" + p.kubeletClientKeyFile,
				// The node's name does not resolve.
				"--kubelet-preferred-address-types=InternalIP",
				// The controller-manager creates each namespace's "default" ServiceAccount,
				// and the "kubernetes" Service's endpoints point at the bridge.
				"--disable-admission-plugins",
				"--endpoint-reconciler-type",
			}
		})
	n.Cluster = c
	n.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: k8stest
  cluster: {server: %q, certificate-authority: %q}
users:
- name: admin
  user: {token: %q}
contexts:
- name: k8stest
  context: {cluster: k8stest, user: admin}
current-context: k8stest
`, c.URL, c.CAFile, c.AdminToken)
	if err := os.WriteFile(n.Kubeconfig, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	n.iptables(t, "-A", natRule(c.Port)...)

	n.startContainerd(t)
	t.Cleanup(func() { n.removeContainers(t) })
	n.ImportImage(t, PauseImage, n.pauseLayer(t), []string{"/pause"})

	startProcess(t, "kube-controller-manager", bins["kube-controller-manager"], filepath.Join(dir, "kube-controller-manager.log"),
		"--kubeconfig="+n.Kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port="+freePort(t),
		"--leader-elect=false",
		"--root-ca-file="+c.CAFile,
		"--service-account-private-key-file="+pki.saKeyFile,
		"--flex-volume-plugin-dir="+filepath.Join(dir, "volume-plugins"),
		"--use-service-account-credentials=false",
		"--controllers=*,-bootstrapsigner,-tokencleaner,-csrsigning,-csrapproving,-nodeipam,-service,-route,-cloud-node-lifecycle",
		"--concurrent-deployment-syncs=2",
		"--v=1",
	)
	startProcess(t, "kube-scheduler", bins["kube-scheduler"], filepath.Join(dir, "kube-scheduler.log"),
		"--kubeconfig="+n.Kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port="+freePort(t),
		"--leader-elect=false",
		"--v=1",
	)
	n.startKubelet(t, bins["kubelet"], pki)
	n.waitNodeReady(t)
	t.Logf("cluster: node %s Ready in %v (dir %s)", NodeName, time.Since(began).Round(time.Millisecond), dir)
	return n
}

// natRule sends the "kubernetes" Service, entered from the bridge, to the API server.
func natRule(port string) []string {
	return []string{"PREROUTING", "-t", "nat", "-i", bridgeName, "-d", serviceIP, "-p", "tcp", "--dport", "443",
		"-j", "DNAT", "--to-destination", NodeIP + ":" + port, "-m", "comment", "--comment", "svinit-k8stest"}
}

// forwardRule lets pods reach each other across the bridge: Docker sets FORWARD's policy to
// DROP, and br_netfilter sends bridged traffic through it.
var forwardRule = []string{"FORWARD", "-i", bridgeName, "-o", bridgeName, "-j", "ACCEPT",
	"-m", "comment", "--comment", "svinit-k8stest"}

// iptables adds a rule (op -A or -I) and removes it when the test ends.
func (n *Node) iptables(t testing.TB, op string, rule ...string) {
	t.Helper()
	chain, spec := rule[0], rule[1:]
	args := append([]string{"-w", op, chain}, spec...)
	if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
		t.Fatalf("cluster: iptables %s: %v: %s", strings.Join(args, " "), err, out)
	}
	t.Cleanup(func() {
		args := append([]string{"-w", "-D", chain}, spec...)
		if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
			t.Errorf("cluster: iptables %s: %v: %s", strings.Join(args, " "), err, out)
		}
	})
}

// CutFromAPIServer drops what the pod at podIP sends to the API server (through the
// "kubernetes" Service or the node's address): an API server outage as that pod sees it,
// while the kubelet and the test still reach the API server. restore ends it; the test's end
// does too if restore was not called.
func (n *Node) CutFromAPIServer(t testing.TB, podIP string) (restore func()) {
	t.Helper()
	// Packets to the node's own address leave the bridge for INPUT, after the Service's DNAT.
	spec := []string{"INPUT", "-i", bridgeName, "-s", podIP, "-d", NodeIP, "-p", "tcp", "--dport", n.Port,
		"-j", "DROP", "-m", "comment", "--comment", "svinit-k8stest"}
	if out, err := exec.Command("iptables", append([]string{"-w", "-I"}, spec...)...).CombinedOutput(); err != nil {
		t.Fatalf("cluster: iptables -I %s: %v: %s", strings.Join(spec, " "), err, out)
	}
	done := false
	restore = func() {
		if done {
			return
		}
		done = true
		if out, err := exec.Command("iptables", append([]string{"-w", "-D"}, spec...)...).CombinedOutput(); err != nil {
			t.Errorf("cluster: iptables -D %s: %v: %s", strings.Join(spec, " "), err, out)
		}
	}
	t.Cleanup(restore)
	return restore
}

func (n *Node) setUpNetwork(t testing.TB) {
	t.Helper()
	for _, args := range [][]string{
		{"link", "add", bridgeName, "type", "bridge"},
		{"addr", "add", NodeIP + "/24", "dev", bridgeName},
		{"link", "set", bridgeName, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("cluster: ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	n.iptables(t, "-I", forwardRule...)
	cni := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q, "gateway": %q}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "loopback"}
  ]
}`, cniNetwork, bridgeName, filepath.Join(n.Dir, "cni-ipam"), podSubnet, NodeIP)
	confDir := filepath.Join(n.Dir, "cni")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-svinit.conflist"), []byte(cni), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (n *Node) startContainerd(t testing.TB) {
	t.Helper()
	d := n.Dir
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # This VM grants no CAP_SYS_RESOURCE: runc must not lower oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, filepath.Join(d, "containerd", "root"), filepath.Join(d, "containerd", "state"), n.sock, n.sock+".ttrpc",
		filepath.Join(d, "containerd", "opt"), PauseImage, filepath.Join(d, "runc"), filepath.Join(d, "cni"))
	file := filepath.Join(d, "containerd.toml")
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, "containerd", "containerd", filepath.Join(d, "containerd.log"), "--config", file, "--log-level", "warn")
	err := p.waitUntil(30*time.Second, func() bool {
		return exec.Command("ctr", "--address", n.sock, "version").Run() == nil
	})
	if err != nil {
		p.fail(t, err)
	}
}

// Ctr runs ctr against the node's containerd in the k8s.io namespace (the CRI's).
func (n *Node) Ctr(args ...string) ([]byte, error) {
	return exec.Command("ctr", append([]string{"--address", n.sock, "--namespace", "k8s.io"}, args...)...).CombinedOutput()
}

// removeContainers deletes every container the CRI made while containerd still runs, so
// that the shims exit and unmount the root file systems themselves.
func (n *Node) removeContainers(t testing.TB) {
	n.recordNetns()
	n.killCgroups()
	out, err := n.Ctr("tasks", "ls", "-q")
	if err != nil {
		t.Errorf("cluster: ctr tasks ls: %v: %s", err, out)
		return
	}
	for _, id := range strings.Fields(string(out)) {
		if out, err := n.Ctr("tasks", "rm", "-f", id); err != nil && !bytes.Contains(out, []byte("not found")) {
			t.Logf("cluster: ctr tasks rm %s: %v: %s", id, err, out)
		}
	}
	out, _ = n.Ctr("containers", "ls", "-q")
	for _, id := range strings.Fields(string(out)) {
		if out, err := n.Ctr("containers", "rm", id); err != nil {
			t.Logf("cluster: ctr containers rm %s: %v: %s", id, err, out)
		}
	}
}

// recordNetns adds to n.netns the network namespaces of the sandboxes this containerd has
// (their OCI specs name them) and those of recordCNINetns.
func (n *Node) recordNetns() {
	n.recordCNINetns()
	out, err := n.Ctr("containers", "ls", "-q")
	if err != nil {
		return
	}
	for _, id := range strings.Fields(string(out)) {
		n.sandboxes[id] = true
		spec, err := n.Ctr("containers", "info", "--spec", id)
		if err != nil {
			continue
		}
		var s struct {
			Linux struct {
				Namespaces []struct{ Type, Path string }
			}
		}
		if json.Unmarshal(spec, &s) == nil {
			for _, ns := range s.Linux.Namespaces {
				if ns.Type == "network" && strings.HasPrefix(ns.Path, netnsDir+"/") {
					n.netns[ns.Path] = true
				}
			}
		}
	}
}

// recordCNINetns adds to n.netns the network namespaces the CNI results of this node's
// network name.
func (n *Node) recordCNINetns() {
	for _, file := range n.cniResults() {
		data, _ := os.ReadFile(file)
		var r struct {
			ContainerID string
			Result      struct {
				Interfaces []struct{ Sandbox string }
			}
		}
		if json.Unmarshal(data, &r) == nil {
			if r.ContainerID != "" {
				n.sandboxes[r.ContainerID] = true
			}
			for _, i := range r.Result.Interfaces {
				if strings.HasPrefix(i.Sandbox, netnsDir+"/") {
					n.netns[i.Sandbox] = true
				}
			}
		}
	}
}

// cniResults are the files libcni cached for this node's network ("NETWORK-ID-IFNAME"),
// and for the loopback network containerd sets up in the sandboxes n.sandboxes lists.
func (n *Node) cniResults() []string {
	files, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", cniNetwork+"-*"))
	for id := range n.sandboxes {
		lo, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", "cni-loopback-"+id+"-*"))
		files = append(files, lo...)
	}
	return files
}

// cgroupMounts are the host's cgroup v1 hierarchies (one mount point each), and the cgroup2
// one a hybrid host mounts beside them (/sys/fs/cgroup/unified), where runc also creates
// the containers' cgroups.
func cgroupMounts() []string {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		if ok && len(f) >= 5 && (strings.HasPrefix(post, "cgroup ") || strings.HasPrefix(post, "cgroup2 ")) {
			mounts = append(mounts, unescapeMountPath(f[4]))
		}
	}
	return mounts
}

// makeCgroupRoot creates the kubelet's cgroup root in every hierarchy (the kubelet requires
// it to exist), with the cpuset hierarchy's cpus and mems copied from the top.
func (n *Node) makeCgroupRoot(t testing.TB) {
	t.Helper()
	for _, m := range cgroupMounts() {
		dir := filepath.Join(m, n.cgroupRoot)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("cluster: kubelet cgroup root: %v", err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if data, err := os.ReadFile(filepath.Join(m, f)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
					t.Fatalf("cluster: %v", err)
				}
			}
		}
	}
}

// nodeCgroups lists the cgroup directories under the kubelet's cgroup root, the root
// included, in every hierarchy, deepest first.
func (n *Node) nodeCgroups() []string {
	var dirs []string
	for _, m := range cgroupMounts() {
		_ = filepath.WalkDir(filepath.Join(m, n.cgroupRoot), func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	return dirs
}

// killCgroups SIGKILLs every process in the cgroups under the kubelet's root: the containers.
func (n *Node) killCgroups() {
	for _, dir := range n.nodeCgroups() {
		data, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// processesNamed returns the PIDs of the processes whose command name is comm.
func processesNamed(comm string) []int {
	return processesWhere("comm", func(b []byte) bool { return strings.TrimSpace(string(b)) == comm })
}

// processesWhere returns the PIDs of the processes whose /proc/PID/<file> satisfies match.
func processesWhere(file string, match func([]byte) bool) []int {
	var pids []int
	for _, pid := range proc.PIDs() {
		if data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), file)); err == nil && match(data) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// hostDirs are the host's directories the kubelet, containerd's CRI and the CNI plugins
// write to whatever their configuration says, deepest first.
var hostDirs = []string{"/var/run/netns", "/var/lib/cni/results", "/var/lib/cni", "/var/lib/kubelet",
	"/usr/libexec/kubernetes", "/var/log/containers", "/var/log/pods"}

// kubeletDirs are those of hostDirs whose new entries the teardown takes for this node's
// without looking at them: only a kubelet writes there, and StartNode refuses to start beside
// another one.
var kubeletDirs = []string{"/var/lib/kubelet", "/usr/libexec/kubernetes", "/var/log/pods"}

// ipForward is set to 1 by the bridge plugin ("isGateway"); the teardown restores it.
const ipForward = "net/ipv4/ip_forward"

// hostSnapshot is what the host had before the node started, so that the teardown removes
// only what the node added.
type hostSnapshot struct {
	entries map[string]map[string]bool // hostDirs: the names each held
	absent  map[string]bool            // hostDirs that did not exist
	sysctls map[string]string          // kubeletSysctls' and ipForward's host values
}

func takeSnapshot() hostSnapshot {
	h := hostSnapshot{entries: map[string]map[string]bool{}, absent: map[string]bool{}, sysctls: map[string]string{}}
	for _, dir := range hostDirs {
		h.entries[dir], h.absent[dir] = listDir(dir)
	}
	for key := range kubeletSysctls {
		data, _ := os.ReadFile("/proc/sys/" + key)
		h.sysctls[key] = string(data)
	}
	data, _ := os.ReadFile("/proc/sys/" + ipForward)
	h.sysctls[ipForward] = string(data)
	return h
}

func listDir(dir string) (names map[string]bool, absent bool) {
	entries, err := os.ReadDir(dir)
	names = map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = true
	}
	return names, errors.Is(err, os.ErrNotExist)
}

// sweep removes what the stopped node left: the processes and cgroups under the kubelet's
// cgroup root, shims started for this containerd, mounts under Dir, this node's network
// namespaces, CNI results and log symlinks, what was added to kubeletDirs, the host
// directories it created once empty, and the bridge; and it restores ip_forward.
func (n *Node) sweep() error {
	var errs []error
	deadline := time.Now().Add(stopTimeout)
	for {
		n.killCgroups()
		shims := n.shims()
		for _, pid := range shims {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		left := 0
		for _, dir := range n.nodeCgroups() {
			if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
				left++
			}
		}
		if left == 0 && len(shims) == 0 {
			break
		}
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("%d cgroups under %s and shims %v still there after %v", left, n.cgroupRoot, shims, stopTimeout))
			break
		}
		time.Sleep(pollInterval)
	}
	if err := unmountUnder(n.Dir); err != nil {
		errs = append(errs, err)
	}
	n.recordCNINetns()
	for path := range n.netns {
		if err := unmountUnder(path); err != nil {
			errs = append(errs, err)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for _, file := range n.cniResults() {
		if err := os.Remove(file); err != nil {
			errs = append(errs, err)
		}
	}
	// The kubelet links each container's log, in Dir, from /var/log/containers.
	links, _ := os.ReadDir("/var/log/containers")
	for _, e := range links {
		path := filepath.Join("/var/log/containers", e.Name())
		if target, err := os.Readlink(path); err == nil && strings.HasPrefix(target, n.Dir+"/") {
			if err := os.Remove(path); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, dir := range kubeletDirs {
		if n.before.absent[dir] {
			if err := unmountUnder(dir); err != nil {
				errs = append(errs, err)
			}
			if err := os.RemoveAll(dir); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		now, _ := listDir(dir)
		for name := range now {
			if !n.before.entries[dir][name] {
				path := filepath.Join(dir, name)
				if err := unmountUnder(path); err != nil {
					errs = append(errs, err)
				}
				if err := os.RemoveAll(path); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	// The host directories the node created, if nothing else is in them (deepest first).
	for _, dir := range hostDirs {
		if n.before.absent[dir] {
			_ = os.Remove(dir)
		}
	}
	if out, err := exec.Command("ip", "link", "del", bridgeName).CombinedOutput(); err != nil && !bytes.Contains(out, []byte("Cannot find")) {
		errs = append(errs, fmt.Errorf("ip link del %s: %v: %s", bridgeName, err, out))
	}
	if was := n.before.sysctls[ipForward]; was != "" {
		if now, _ := os.ReadFile("/proc/sys/" + ipForward); string(now) != was {
			if err := os.WriteFile("/proc/sys/"+ipForward, []byte(was), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("restore %s to %q: %w", ipForward, strings.TrimSpace(was), err))
			}
		}
	}
	return errors.Join(errs...)
}

// Leftovers lists what the node left on the host once its test (or subtest) has ended: a
// shim of its socket, a process naming Dir, a mount under Dir, a cgroup under its kubelet's
// cgroup root, anything new in hostDirs (whoever added it), the bridge, an iptables rule
// naming the bridge or svinit-k8stest, or a sysctl (kubeletSysctls, ip_forward) not at its
// value before. Empty after a complete teardown.
func (n *Node) Leftovers() []string {
	var left []string
	if pids := n.shims(); len(pids) > 0 {
		left = append(left, fmt.Sprintf("shims %v", pids))
	}
	for _, pid := range processesWhere("cmdline", func(b []byte) bool { return bytes.Contains(b, []byte(n.Dir)) }) {
		cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		left = append(left, fmt.Sprintf("process %d: %s", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
	}
	mountinfo, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mountinfo), "\n") {
		if strings.Contains(line, n.Dir) {
			left = append(left, "mount "+line)
		}
	}
	if dirs := n.nodeCgroups(); len(dirs) > 0 {
		left = append(left, fmt.Sprintf("cgroups %v", dirs))
	}
	if _, err := os.Stat(n.Dir); err == nil && !n.kept {
		left = append(left, "directory "+n.Dir)
	}
	after := takeSnapshot()
	for _, dir := range hostDirs {
		if after.absent[dir] != n.before.absent[dir] {
			left = append(left, "directory "+dir)
			continue
		}
		for name := range after.entries[dir] {
			if !n.before.entries[dir][name] {
				left = append(left, filepath.Join(dir, name))
			}
		}
	}
	for key, value := range after.sysctls {
		if value != n.before.sysctls[key] {
			left = append(left, fmt.Sprintf("sysctl %s = %q, was %q", key, value, n.before.sysctls[key]))
		}
	}
	if out, err := exec.Command("ip", "link", "show", bridgeName).CombinedOutput(); err == nil {
		left = append(left, "bridge "+string(out))
	}
	for _, table := range []string{"filter", "nat"} {
		out, _ := exec.Command("iptables", "-w", "-t", table, "-S").Output()
		for _, rule := range strings.Split(string(out), "\n") {
			if strings.Contains(rule, "svinit-k8stest") || strings.Contains(rule, bridgeName) {
				left = append(left, "iptables -t "+table+" "+rule)
			}
		}
	}
	return left
}

// shims returns the PIDs of the containerd shims started with this node's socket.
func (n *Node) shims() []int {
	return processesWhere("cmdline", func(b []byte) bool {
		return bytes.Contains(b, []byte("containerd-shim")) && bytes.Contains(b, []byte(n.sock))
	})
}

// unmountUnder detaches every mount at or under dir, deepest first.
func unmountUnder(dir string) error {
	// mountinfo names real paths (/run/netns for /var/run/netns).
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMountPath(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// kubeletSysctls are the values the kubelet sets on start unless it finds them: shown to it
// in its mount namespace instead of written to the host.
var kubeletSysctls = map[string]string{
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}

func (n *Node) startKubelet(t testing.TB, bin string, pki pki) {
	t.Helper()
	d := n.Dir
	root := filepath.Join(d, "kubelet")
	for _, sub := range []string{root, filepath.Join(d, "pod-logs"), filepath.Join(d, "volume-plugins"), filepath.Join(d, "sysctl"), filepath.Join(d, "kubelet-bin")} {
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The kubelet mounts volumes under its root in its own mount namespace; a shared mount
	// carries them to the host's, where containerd looks for them.
	if err := unix.Mount(root, root, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("cluster: bind %s: %v", root, err)
	}
	if err := unix.Mount("", root, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		t.Fatalf("cluster: make %s shared: %v", root, err)
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %q
port: 10250
readOnlyPort: 0
healthzPort: 0
cgroupDriver: cgroupfs
cgroupRoot: /%s
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
podLogsDir: %q
volumePluginDir: %q
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization:
  mode: Webhook
evictionHard: {"memory.available": "1Mi", "nodefs.available": "1%%", "imagefs.available": "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
syncFrequency: 5s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 2s
serializeImagePulls: false
`, NodeIP, n.cgroupRoot, n.sock, filepath.Join(d, "pod-logs"), filepath.Join(d, "volume-plugins"), pki.caFile)
	n.makeCgroupRoot(t)
	configFile := filepath.Join(d, "kubelet.yaml")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	// A PATH with what the kubelet runs, and no iptables: its chains would outlive it.
	binDir := filepath.Join(d, "kubelet-bin")
	for _, tool := range []string{"mount", "umount", "nsenter", "losetup", "du", "find", "nice", "ionice", "blkid", "mkfs.ext4", "ls"} {
		if path, err := exec.LookPath(tool); err == nil {
			_ = os.Symlink(path, filepath.Join(binDir, tool))
		}
	}
	var binds strings.Builder
	binds.WriteString("set -e; mount --make-rprivate /proc; ")
	for key, value := range kubeletSysctls {
		file := filepath.Join(d, "sysctl", strings.ReplaceAll(key, "/", "."))
		if err := os.WriteFile(file, []byte(value+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&binds, "mount --bind %s /proc/sys/%s; ", file, key)
	}
	binds.WriteString(`PATH="$0" exec "$@"`)
	args := []string{"--mount", "--propagation", "unchanged", "--", "/bin/sh", "-c", binds.String(), binDir,
		bin,
		"--config=" + configFile,
		"--kubeconfig=" + n.Kubeconfig,
		"--root-dir=" + root,
		"--cert-dir=" + filepath.Join(d, "kubelet-pki"),
		"--hostname-override=" + NodeName,
		"--node-ip=" + NodeIP,
		"--v=1",
	}
	startProcess(t, "kubelet", "unshare", filepath.Join(d, "kubelet.log"), args...)
}

func (n *Node) waitNodeReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(nodeReadyTimeout)
	for {
		status, body, err := n.Request(n.AdminToken, http.MethodGet, "/api/v1/nodes/"+NodeName, "", nil)
		if err == nil && status == http.StatusOK && bytes.Contains(body, []byte(`"type":"Ready","status":"True"`)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster: node %s not Ready after %v; kubelet log:\n%s", NodeName, nodeReadyTimeout, tail(filepath.Join(n.Dir, "kubelet.log"), 40))
		}
		time.Sleep(pollInterval)
	}
}

// Kubectl runs the node's kubectl as admin and returns its combined output.
func (n *Node) Kubectl(args ...string) ([]byte, error) {
	cmd := exec.Command(n.kubectl, append([]string{"--kubeconfig=" + n.Kubeconfig}, args...)...)
	return cmd.CombinedOutput()
}

// ContainerPIDs returns the host PIDs of the processes of a pod's container (containerID as
// the pod's status gives it, "containerd://ID"), read from the kubelet's cgroups (the v1
// pids hierarchy): what a test SIGKILLs to kill a container on the node behind the kubelet's
// back.
func (n *Node) ContainerPIDs(podUID, containerID string) []int {
	id := strings.TrimPrefix(containerID, "containerd://")
	var pids []int
	for _, pattern := range []string{"/sys/fs/cgroup/pids/%s/kubepods/pod%s/%s", "/sys/fs/cgroup/pids/%s/kubepods/*/pod%s/%s"} {
		dirs, _ := filepath.Glob(fmt.Sprintf(pattern, n.cgroupRoot, podUID, id))
		for _, dir := range dirs {
			data, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
		}
	}
	return pids
}
