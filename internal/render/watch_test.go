package render

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/render/rendertest"
)

// watchLimit bounds every wait for the watcher; reaching it is a failure, not a measurement.
const watchLimit = 20 * time.Second

// testDebounce is long enough that a burst of file operations in a tight loop ends within it
// on a busy machine, short enough to keep the tests quick.
const testDebounce = 400 * time.Millisecond

// recorder is a watcher's change callback: each call reads path, as a render would.
type recorder struct {
	path  string
	mu    sync.Mutex
	reads []string
}

func (r *recorder) changed() {
	b, err := os.ReadFile(r.path)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.reads = append(r.reads, "error")
		return
	}
	r.reads = append(r.reads, string(b))
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reads...)
}

// waitLast waits until the last call read last, and returns what the calls read.
func (r *recorder) waitLast(t *testing.T, last string) []string {
	t.Helper()
	deadline := time.Now().Add(watchLimit)
	for {
		got := r.seen()
		if len(got) > 0 && got[len(got)-1] == last {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the change callback read %q after %v; want the last to read %q", got, watchLimit, last)
		}
		time.Sleep(10 * time.Millisecond) // polling, against a deadline
	}
}

// waitReads waits until the calls so far read exactly want.
func (r *recorder) waitReads(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(watchLimit)
	for {
		got := r.seen()
		if len(got) >= len(want) {
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("the change callback read %q; want %q", got, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the change callback read %q after %v; want %q", got, watchLimit, want)
		}
		time.Sleep(10 * time.Millisecond) // polling, against a deadline
	}
}

func startWatch(t *testing.T, specs []Spec, r *recorder) (*Watcher, chan struct{}) {
	t.Helper()
	return startWatchDebounced(t, specs, r, testDebounce)
}

func startWatchDebounced(t *testing.T, specs []Spec, r *recorder, debounce time.Duration) (*Watcher, chan struct{}) {
	t.Helper()
	stop := make(chan struct{})
	w, err := Watch(specs, WatchOptions{Debounce: debounce, Stop: stop, Changed: r.changed, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); <-w.Done() })
	return w, stop
}

// Each update of a ConfigMap volume, the kubelet's ..data swap, is one change, for a SRC
// that is the volume and for one that is one key of it; the watch survives the swaps, whose
// old directories (the inodes first watched) are removed.
func TestWatchFollowsConfigMapSwaps(t *testing.T) {
	for _, keySrc := range []bool{false, true} {
		t.Run(fmt.Sprintf("key=%v", keySrc), func(t *testing.T) {
			dir := t.TempDir()
			cm := filepath.Join(dir, "cm")
			os.Mkdir(cm, 0o755)
			rendertest.KubeletUpdate(t, cm, map[string]string{"app.yaml": "v1", "other": "x"})
			src := cm
			if keySrc {
				src = filepath.Join(cm, "app.yaml")
			}
			r := &recorder{path: filepath.Join(cm, "app.yaml")}
			startWatch(t, []Spec{{Src: src, Dst: filepath.Join(dir, "out")}}, r)
			rendertest.KubeletUpdate(t, cm, map[string]string{"app.yaml": "v2", "other": "x"})
			r.waitReads(t, "v2")
			rendertest.KubeletUpdate(t, cm, map[string]string{"app.yaml": "v3", "other": "x"})
			r.waitReads(t, "v2", "v3")
			rendertest.KubeletUpdate(t, cm, map[string]string{"app.yaml": "v4"}) // a key gone
			r.waitReads(t, "v2", "v3", "v4")
		})
	}
}

// A burst of updates is one change, seen once the burst is over: the callback never reads
// an update in the middle of it, and is not called again for the burst's tail.
func TestWatchDebouncesABurst(t *testing.T) {
	dir := t.TempDir()
	cm := filepath.Join(dir, "cm")
	os.Mkdir(cm, 0o755)
	rendertest.KubeletUpdate(t, cm, map[string]string{"app.yaml": "v0"})
	r := &recorder{path: filepath.Join(cm, "app.yaml")}
	startWatch(t, []Spec{{Src: cm, Dst: filepath.Join(dir, "out")}}, r)
	for i := 1; i <= 12; i++ {
		rendertest.KubeletUpdate(t, cm, map[string]string{"app.yaml": fmt.Sprintf("v%d", i)})
	}
	// One call for the burst; a pause of this busy machine's longer than the debounce may
	// split it in two or three, never in one call per update.
	burst := r.waitLast(t, "v12")
	if len(burst) > 3 {
		t.Fatalf("12 updates in a burst made %d calls, reading %q; want them debounced into one", len(burst), burst)
	}
	// One more change, after the burst: the next call is for it, none came in between.
	rendertest.KubeletUpdate(t, cm, map[string]string{"app.yaml": "after"})
	r.waitReads(t, append(burst, "after")...)
}

// A plain directory and a plain file edited in place, and a SRC removed and created again:
// its new inode is watched.
func TestWatchSeesEditsAndARecreatedSource(t *testing.T) {
	dir := t.TempDir()
	srcDir := filepath.Join(dir, "conf")
	file := filepath.Join(srcDir, "sub", "a.conf")
	writeFile(t, file, "one", 0o644)
	r := &recorder{path: file}
	startWatch(t, []Spec{{Src: srcDir, Dst: filepath.Join(dir, "out")}}, r)

	if err := os.WriteFile(file, []byte("two"), 0o644); err != nil { // in place, no rename
		t.Fatal(err)
	}
	r.waitReads(t, "two")
	if err := os.RemoveAll(srcDir); err != nil {
		t.Fatal(err)
	}
	r.waitReads(t, "two", "error")
	writeFile(t, file, "three", 0o644)
	r.waitReads(t, "two", "error", "three")
	if err := os.WriteFile(file, []byte("four"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.waitReads(t, "two", "error", "three", "four")
}

// A single-file SRC whose directory also holds its DST: writing the DST, or the temporary
// file beside it, is no change; writing SRC is.
func TestWatchIgnoresItsNeighbours(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.conf.tmpl")
	writeFile(t, src, "one", 0o644)
	w, err := newWatcher([]Spec{{Src: src, Dst: filepath.Join(dir, "app.conf")}}, WatchOptions{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.f.Close()
	writeFile(t, filepath.Join(dir, "app.conf"), "rendered", 0o644)
	writeFile(t, filepath.Join(dir, ".app.conf.svinit-tmp-1"), "temporary", 0o644)
	if events := readEvents(t, w); w.relevant(events) {
		t.Error("writing the DST beside SRC counts as a change")
	}
	writeFile(t, src, "two", 0o644)
	if events := readEvents(t, w); !w.relevant(events) {
		t.Error("writing SRC is no change")
	}
}

// readEvents reads the events queued: inotify queues them before the write returns.
func readEvents(t *testing.T, w *Watcher) []byte {
	t.Helper()
	buf := make([]byte, 64<<10)
	var n int
	var err error
	w.rc.Read(func(fd uintptr) bool {
		n, err = unix.Read(int(fd), buf)
		return true // no waiting: what is queued is all there is
	})
	if err != nil && err != unix.EAGAIN {
		t.Fatal(err)
	}
	return buf[:max(n, 0)]
}

// Closing stop ends the watch: its goroutine returns, and a change after it calls nothing.
func TestWatchStopsWhenTheStopBegins(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a.conf")
	writeFile(t, src, "one", 0o644)
	r := &recorder{path: src}
	w, stop := startWatch(t, []Spec{{Src: src, Dst: filepath.Join(dir, "out")}}, r)
	close(stop)
	select {
	case <-w.Done():
	case <-time.After(watchLimit):
		t.Fatal("the watch did not end after stop was closed")
	}
	if err := os.WriteFile(src, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.Close() // idempotent after the stop
	<-w.Done()
	if got := r.seen(); len(got) != 0 {
		t.Errorf("called after the stop: %q", got)
	}
}
