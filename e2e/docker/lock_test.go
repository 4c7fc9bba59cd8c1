package docker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A rolling restart: the old container A holds the lock on the shared volume, the new
// container B waits for it. --lock-timeout 5m with --lock-on-timeout fail: B can only
// start early by seeing A release the lock (or die), or die. The handoffs are logged.
func TestRollingRestart(t *testing.T) {
	for _, end := range []string{"stop", "kill"} { // docker kill: SIGKILL of the container
		t.Run(end, func(t *testing.T) {
			data := shared(t, 0)
			rec := filepath.Join(data, "rec")
			removed := watchRemovals(t, data)
			start := func(name string) *container {
				c := newContainer(t)
				opts := append(helper("stamp"), "-v", data+":/data", "-e", "REC=/data/rec", "-e", "NAME="+name)
				return c.start(opts, "--lock", "/data/lock", "--lock-timeout", "5m", "--lock-on-timeout", "fail", "--", helperPath)
			}
			a := start("A")
			poll(t, "A's child to start", func() bool { return stamped(rec, "A", "start") != 0 })
			b := start("B")
			b.waitLog("lock is held; waiting")
			if stamped(rec, "B", "start") != 0 {
				t.Fatal("B's child started while A held the lock")
			}
			sent := time.Now()
			mustDocker(t, end, a.name)
			poll(t, "B's child to start", func() bool { return stamped(rec, "B", "start") != 0 })
			started := time.Unix(0, stamped(rec, "B", "start"))
			after := func(from time.Time) string { return started.Sub(from).Round(100 * time.Microsecond).String() }
			switch end {
			case "stop":
				if code := a.wait(); code != 0 {
					t.Errorf("A exited %d, want its child's 0", code)
				}
				term := time.Unix(0, stamped(rec, "A", "term"))
				if started.Before(term) {
					t.Errorf("B's child started before A's child was stopped")
				}
				if !strings.Contains(b.logs(), `"took_over":""`) { // B removed no lock file: A released it
					t.Errorf("B did not wait for A to release the lock:\n%s", b.logs())
				}
				t.Logf("handoff on docker stop: B's child started %s after A's lock file was removed (inotify on the host), %s after A's child got SIGTERM",
					after(removed("lock")), after(term))
			case "kill":
				if code := a.wait(); code != 137 {
					t.Errorf("A exited %d, want 137 (SIGKILL)", code)
				}
				if !strings.Contains(b.logs(), `"took_over":"dead"`) {
					t.Errorf("B did not take over the lock of a holder it saw die:\n%s", b.logs())
				}
				died, err := time.Parse(time.RFC3339Nano, a.inspect("{{.State.FinishedAt}}"))
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("handoff on docker kill: B's child started %s after A died (its State.FinishedAt), %s after docker kill was run",
					after(died), after(sent))
			}
			mustDocker(t, "stop", b.name)
			if code := b.wait(); code != 0 {
				t.Errorf("B exited %d, want its child's 0", code)
			}
			if _, err := os.Stat(filepath.Join(data, "lock")); !os.IsNotExist(err) {
				t.Errorf("the lock is still there after B stopped: %v", err)
			}
		})
	}
}

// watchRemovals watches dir with inotify and returns when a name in it was first removed,
// waiting for it if need be.
func watchRemovals(t *testing.T, dir string) func(name string) time.Time {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	events := os.NewFile(uintptr(fd), "inotify") // non-blocking: Close ends a Read
	t.Cleanup(func() { events.Close() })
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_DELETE|unix.IN_MOVED_FROM); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	first := map[string]time.Time{}
	go func() {
		buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
		for {
			n, err := events.Read(buf)
			if err != nil {
				return
			}
			now := time.Now()
			mu.Lock()
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				size := int(binary.NativeEndian.Uint32(buf[off+12:])) // struct inotify_event's len
				name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+size], "\x00"))
				if _, seen := first[name]; !seen {
					first[name] = now
				}
				off += unix.SizeofInotifyEvent + size
			}
			mu.Unlock()
		}
	}()
	return func(name string) time.Time {
		t.Helper()
		var at time.Time
		poll(t, "the removal of "+name, func() bool {
			mu.Lock()
			defer mu.Unlock()
			at = first[name]
			return !at.IsZero()
		})
		return at
	}
}

// stamped returns the time (unix ns) of the line "name event NS" in the record, or 0.
func stamped(rec, name, event string) int64 {
	f, err := os.Open(rec)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == name && f[1] == event {
			ns, _ := strconv.ParseInt(f[2], 10, 64)
			return ns
		}
	}
	return 0
}

// A pod with runAsUser 1234 and readOnlyRootFilesystem: the lock and the rendered
// configuration live on a volume the user owns, the templates on a read-only one (a
// ConfigMap). The index comes from the hostname.
func TestNonRootReadOnly(t *testing.T) {
	data := shared(t, 1234)
	config := t.TempDir()
	os.Chmod(config, 0o755)
	writeFile(t, filepath.Join(config, "agdb_server.yaml"), "name: agdb-{id}\n")
	writeFile(t, filepath.Join(config, "peers.yaml.tmpl"), "index: {{ .Index }}\nhost: {{ .Hostname }}\n")
	c := newContainer(t)
	opts := append(helper("files"), "--user", "1234:1234", "--read-only", "--hostname", "agdb-1",
		"-v", data+":/data", "-v", config+":/config:ro", "-e", "LOCK=/data/lock")
	code := c.run(opts, "--lock", "/data/lock", "--template", "/config:/data/config",
		"--", helperPath, "/data/config/agdb_server.yaml", "/data/config/peers.yaml")
	logs := c.logs()
	if code != 0 {
		t.Fatalf("exit code %d, want 0:\n%s", code, logs)
	}
	for _, want := range []string{
		"uid=1234 gid=1234",
		"write /: EROFS",
		"lock: ok", // held while the child ran
		`/data/config/agdb_server.yaml: "name: agdb-1\n" ok`,
		`/data/config/peers.yaml: "index: 1\nhost: agdb-1\n" ok`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the child did not print %q:\n%s", want, logs)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "lock")); !os.IsNotExist(err) {
		t.Errorf("the lock is still there after the container exited: %v", err)
	}
	fi, err := os.Stat(filepath.Join(data, "config", "agdb_server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if uid := fileUID(fi); uid != 1234 {
		t.Errorf("the rendered file belongs to uid %d, want 1234", uid)
	}
}

// --hostname agdb-2, as a StatefulSet's pod 2 has: {id} becomes 2, as the agdb start.sh's
// sed did.
func TestHostnameRendersIndex(t *testing.T) {
	data := shared(t, 0)
	config := t.TempDir()
	os.Chmod(config, 0o755)
	tmpl := "id: {id}\naddress: http://agdb-{id}.agdb.default.svc.cluster.local:3000\n"
	writeFile(t, filepath.Join(config, "agdb_server.yaml"), tmpl)
	c := newContainer(t)
	opts := append(helper("files"), "--hostname", "agdb-2", "-v", data+":/data", "-v", config+":/config:ro")
	if code := c.run(opts, "--template", "/config/agdb_server.yaml:/data/agdb_server.yaml", "--", helperPath); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	b, err := os.ReadFile(filepath.Join(data, "agdb_server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.ReplaceAll(tmpl, "{id}", "2"); string(b) != want {
		t.Errorf("rendered:\n%s\nwant:\n%s", b, want)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
