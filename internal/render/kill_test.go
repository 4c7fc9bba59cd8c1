package render

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	killLines = 65536
	killPad   = "................................................................................................"
	killOld   = "the old content\n"
)

// largeTemplate is about 7 MiB with an {id} on every line. A plain file rather than a Go
// template, so that the helper spends its time writing, where the kills land, not rendering.
func largeTemplate() []byte {
	var buf bytes.Buffer
	for l := range killLines {
		fmt.Fprintf(&buf, "line {id} %d %s\n", l, killPad)
	}
	return buf.Bytes()
}

// largeRendering is what the large template renders to for index k.
type largeRendering struct {
	mu   sync.Mutex
	tmpl []byte
	byID map[int][]byte
}

func (r *largeRendering) of(k int) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.byID[k]; ok {
		return b
	}
	b := bytes.ReplaceAll(r.tmpl, []byte("{id}"), []byte(itoa(k)))
	r.byID[k] = b
	return b
}

// check tells whether b is the old content or one whole rendering.
func (r *largeRendering) check(b []byte) error {
	if string(b) == killOld {
		return nil
	}
	var k int
	if _, err := fmt.Sscanf(string(b[:min(len(b), 64)]), "line %d ", &k); err != nil {
		return fmt.Errorf("neither the old content nor a rendering: %d bytes starting %q", len(b), b[:min(len(b), 40)])
	}
	if want := r.of(k); !bytes.Equal(b, want) {
		return fmt.Errorf("a partial rendering of index %d: %d bytes, want %d", k, len(b), len(want))
	}
	return nil
}

// TestKilledWhileWriting SIGKILLs a process that renders a large template over and over,
// at points spread over its writes, while a reader reads DST all along: every read, and
// DST after each kill, is the old content or one whole rendering.
func TestKilledWhileWriting(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "large.conf"), filepath.Join(dir, "out", "large.conf")
	tmpl := largeTemplate()
	writeFile(t, src, string(tmpl), 0o644)
	writeFile(t, dst, killOld, 0o644)
	want := &largeRendering{tmpl: tmpl, byID: map[int][]byte{}}

	stop := make(chan struct{})
	readerDone := make(chan error, 1)
	var oldReads, newReads int
	go func() {
		for {
			select {
			case <-stop:
				readerDone <- nil
				return
			default:
			}
			b, err := os.ReadFile(dst)
			if err == nil {
				err = want.check(b)
			}
			if err != nil {
				readerDone <- fmt.Errorf("read %d: %w", oldReads+newReads, err)
				return
			}
			if string(b) == killOld {
				oldReads++
			} else {
				newReads++
			}
		}
	}()

	rounds := 15
	if testing.Short() {
		rounds = 5
	}
	var writeTime time.Duration // of one Write, measured by the helper
	var delays []string
	for r := range rounds {
		target := 1 + r%3 // the Write to kill: the first one creates DST, later ones replace it
		var delay time.Duration
		if writeTime > 0 {
			delay = writeTime * time.Duration(r%5) / 4 // from its start to its end
		}
		wt, err := killWriter(t, src, dst, target, delay)
		if err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
		if wt > 0 {
			writeTime = wt
		}
		delays = append(delays, fmt.Sprintf("write %d +%v", target, delay.Round(time.Millisecond)))
		b, err := os.ReadFile(dst)
		if err != nil {
			t.Fatalf("round %d: DST after the kill: %v", r, err)
		}
		if err := want.check(b); err != nil {
			t.Fatalf("round %d: DST after the kill: %v", r, err)
		}
		select {
		case err := <-readerDone:
			t.Fatalf("reader: %v", err)
		default:
		}
	}
	close(stop)
	if err := <-readerDone; err != nil {
		t.Fatalf("reader: %v", err)
	}
	t.Logf("one Write of %d bytes takes %v; killed at %s; reads all whole: %d of the old content, %d of a rendering",
		len(want.of(1)), writeTime, strings.Join(delays, ", "), oldReads, newReads)
	if newReads == 0 {
		t.Error("the reader never saw a rendering")
	}

	// A temporary file left by the last kill is removed by the next render.
	render(t, []Spec{{Src: src, Dst: dst}}, Options{Data: Data{Index: 99, HasIndex: true}})
	entries, err := os.ReadDir(filepath.Dir(dst))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("DST directory holds %v, want only large.conf", names)
	}
}

// killWriter starts the writer helper, waits until it begins Write number target, waits
// delay more and SIGKILLs it. It returns the duration of a completed Write, if one was.
func killWriter(t *testing.T, src, dst string, target int, delay time.Duration) (writeTime time.Duration, err error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=writer", "RENDER_SRC="+src, "RENDER_DST="+dst)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}()
	begin := fmt.Sprintf("begin %d", target)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var k int
		var ns int64
		if n, _ := fmt.Sscanf(sc.Text(), "wrote %d %d", &k, &ns); n == 2 {
			writeTime = time.Duration(ns)
		}
		if sc.Text() == begin {
			time.Sleep(delay) // picks the point of the kill, not a wait for something to settle
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				return 0, err
			}
			err := cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				return 0, fmt.Errorf("writer ended with %v before the kill: %s", err, stderr.String())
			}
			return writeTime, nil
		}
	}
	return 0, fmt.Errorf("writer stopped before %q: %s", begin, stderr.String())
}
