package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	cases := []struct {
		v    []float64
		q    float64
		want float64
	}{
		{[]float64{3, 1, 2}, 0.5, 2},
		{[]float64{1, 2, 3, 4}, 0.5, 2.5},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 0.1, 2},
		{[]float64{5}, 0.99, 5},
		{[]float64{1, 2}, 1, 2},
	}
	for _, c := range cases {
		if got := quantile(c.v, c.q); got != c.want {
			t.Errorf("quantile(%v, %g) = %g, want %g", c.v, c.q, got, c.want)
		}
	}
	if !math.IsNaN(quantile(nil, 0.5)) {
		t.Error("quantile of nothing should be NaN")
	}
}

func TestBudgets(t *testing.T) {
	r := newRow("x", kindDuration, budget{kind: atMostTimes, peer: nameTini, factor: 1.5}, nameTini)
	r.cells[nameSvinit] = summary{med: 30, lo: 20, hi: 40, n: 5}
	r.cells[nameTini] = summary{med: 20, lo: 10, hi: 30, n: 5}
	if v := r.verdict(); v != "PASS" {
		t.Errorf("30 against 1.5×20: %s, want PASS", v)
	}
	r.cells[nameSvinit] = summary{med: 31, lo: 20, hi: 40, n: 5}
	if v := r.verdict(); v != "MISS" {
		t.Errorf("31 against 1.5×20: %s, want MISS", v)
	}
	if got := r.ratio(nameTini); got != 1.55 {
		t.Errorf("ratio = %g, want 1.55", got)
	}
	if br, ok := r.budget.refRatio(r); !ok || br != 1.5 {
		t.Errorf("budget as a ratio = %g %v, want 1.5", br, ok)
	}
	zero := newRow("lost", kindCount, budget{kind: zeroAlways}, nameTini)
	zero.cells[nameSvinit] = summary{med: 0, lo: 0, hi: 1, n: 3}
	if v := zero.verdict(); v != "MISS" {
		t.Errorf("one run lost one: %s, want MISS", v)
	}
	none := newRow("p99", kindDuration, budget{}, nameTini)
	none.cells[nameSvinit] = summary{med: 1, n: 1}
	if v := none.verdict(); v != "" {
		t.Errorf("no budget: %q, want none", v)
	}
}

func TestFormat(t *testing.T) {
	cases := []struct {
		k    kind
		v    float64
		want string
	}{
		{kindDuration, 1234, "1.23 µs"},
		{kindDuration, 35.8e3, "35.8 µs"},
		{kindDuration, 2.5e9, "2.50 s"},
		{kindBytes, 8847522, "8.44 MiB"},
		{kindBytes, 27792, "27.1 KiB"},
		{kindCount, 3, "3"},
	}
	for _, c := range cases {
		if got := format(c.k, c.v); got != c.want {
			t.Errorf("format(%v, %g) = %q, want %q", c.k, c.v, got, c.want)
		}
	}
}

// TestSVGIsWellFormed parses the chart as XML: a browser shows nothing for a broken one.
func TestSVGIsWellFormed(t *testing.T) {
	r := newRow("signal round trip p50 <&>", kindDuration, budget{kind: atMostTimes, peer: nameTini, factor: 1.5}, nameTini)
	r.cells[nameSvinit] = summary{med: 30, n: 1}
	r.cells[nameTini] = summary{med: 20, n: 1}
	size := newRow("binary size", kindBytes, budget{kind: atMost, limit: 8 << 20}, nameTini)
	size.cells[nameSvinit] = summary{med: 9 << 20, n: 1}
	size.cells[nameTini] = summary{med: 27 << 10, n: 1}
	var buf bytes.Buffer
	if err := writeSVG(&buf, []*row{r, size}, "test"); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&buf)
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v", err)
		}
	}
}

// TestTinyChild runs the hand-written ELF: it writes "x", waits for end of file on its
// stdin, and exits 0.
func TestTinyChild(t *testing.T) {
	tiny := tinyForTest(t)
	cmd := exec.Command(tiny)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := io.ReadFull(out, b[:]); err != nil || b[0] != 'x' {
		t.Fatalf("read %q, %v; want x", b[:], err)
	}
	if !alive(cmd.Process.Pid) {
		t.Fatal("the tiny child exited before its stdin closed")
	}
	in.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tiny child: %v", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the tiny child did not exit after its stdin closed")
	}
}

// TestCountOthersSeesItself is a sanity check of the storm's /proc count: outside a new
// namespace there are always other processes.
func TestCountOthersSeesItself(t *testing.T) {
	n, err := countOthers(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 {
		t.Fatalf("counted %d other processes in /proc, want at least PID 1's siblings", n)
	}
}

// A budget against the minimal Go init is a ratio to tini on the chart, and a run without
// a column prints no empty column.
func TestBudgetAgainstAnotherColumn(t *testing.T) {
	r := newRow("idle VmHWM", kindBytes, budget{kind: atMostTimes, peer: nameMinInit, factor: 1.4}, nameTini)
	r.cells[nameSvinit] = summary{med: 3, n: 1}
	r.cells[nameMinInit] = summary{med: 2, n: 1}
	r.cells[nameTini] = summary{med: 1, n: 1}
	if v := r.verdict(); v != "MISS" {
		t.Errorf("3 against 1.4×2: %s, want MISS", v)
	}
	if br, ok := r.budget.refRatio(r); !ok || math.Abs(br-2.8) > 1e-9 {
		t.Errorf("budget as a ratio to tini = %g %v, want 2.8", br, ok)
	}
	stop := newRow("stop latency", kindDuration, budget{kind: asFastAs, peer: nameBaseline}, nameTini)
	stop.cells[nameSvinit] = summary{med: 3, n: 1}
	if v := stop.verdict(); v != "" {
		t.Errorf("no earlier svinit measured: verdict %q, want none", v)
	}
	got := presentColumns([]*row{r, stop})
	if want := []string{nameMinInit, nameTini}; !slices.Equal(got, want) {
		t.Errorf("columns %q, want %q", got, want)
	}
}

func TestReadMemoryOfSelf(t *testing.T) {
	m, err := readMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.hwm <= 0 || m.anon <= 0 || m.pss <= 0 || m.anon > m.hwm {
		t.Errorf("memory of the test itself: %+v, want VmHWM ≥ RssAnon > 0 and PSS > 0", m)
	}
}

func TestLicenseOptionsGoBeforeTheProgram(t *testing.T) {
	p := initProg{name: nameSvinit, path: "/svinit", opts: []string{"--instance-id", "x"}, dashDash: true}
	if got, want := p.argv("/bin/sleep", "60"), []string{"/svinit", "--instance-id", "x", "--", "/bin/sleep", "60"}; !slices.Equal(got, want) {
		t.Errorf("argv %q, want %q", got, want)
	}
}

// TestCPUTimeGrows spins until the CPU time cpuTime reads has grown by 10 ms; on a loaded
// machine that may take longer than 10 ms of wall time, hence the deadline.
func TestCPUTimeGrows(t *testing.T) {
	before, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		now, err := cpuTime(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if now-before >= 10*time.Millisecond {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time %s, %s after spinning 10 s: want it to grow", before, now)
		}
	}
}
