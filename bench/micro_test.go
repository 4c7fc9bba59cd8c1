package main

import (
	"os"
	"os/signal"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/signals"
)

// BenchmarkNotifyCaught is what svinit pays at every start before anything else: one
// signal.Notify for every signal it forwards. The Go runtime enables each signal through
// a goroutine locked to its own thread and waits for it, two thread switches per signal;
// ns/signal is that cost (the op also includes the Stop that disables them again).
func BenchmarkNotifyCaught(b *testing.B) {
	caught := signals.Caught()
	for b.Loop() {
		ch := make(chan os.Signal, 128)
		signal.Notify(ch, caught...)
		signal.Stop(ch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(caught)), "ns/signal")
}

// BenchmarkSignalToChannel is the Go runtime's share of forwarding one signal: from the
// kernel delivering it to the goroutine reading the Notify channel (the handler queues it,
// the os/signal goroutine wakes and sends it on). svinit's forward adds one kill(2): see
// BenchmarkForwardSignal in internal/supervisor; one reap pass is BenchmarkReapPass in
// internal/reaper.
func BenchmarkSignalToChannel(b *testing.B) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGUSR1)
	defer signal.Stop(ch)
	pid := os.Getpid()
	for b.Loop() {
		if err := unix.Kill(pid, unix.SIGUSR1); err != nil {
			b.Fatal(err)
		}
		<-ch
	}
}

func tinyForTest(tb testing.TB) string {
	tb.Helper()
	if runtime.GOARCH != "amd64" {
		tb.Skip("the tiny child is amd64 machine code")
	}
	path, err := writeTiny(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	return path
}
