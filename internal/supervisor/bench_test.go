package supervisor

import (
	"os/exec"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/signals"
)

// BenchmarkForwardSignal measures the signal path once a signal has been received: the
// rewrite lookup, the kill and the (disabled) debug log. SIGWINCH's default action is to
// be ignored, so the child survives every iteration.
func BenchmarkForwardSignal(b *testing.B) {
	child := exec.Command("sleep", "600")
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	for _, rw := range []string{"", "WINCH:WINCH"} {
		b.Run("rewrite="+rw, func(b *testing.B) {
			var r signals.Rewrites
			if rw != "" {
				r.Set(rw)
			}
			l := &signalLoop{SignalSources: SignalSources{Log: zerolog.Nop()}, child: &childStep{}, pid: child.Process.Pid, fwd: Forwarding{Rewrite: r}}
			b.ReportAllocs()
			for b.Loop() {
				l.forward(unix.SIGWINCH)
			}
		})
	}
}
