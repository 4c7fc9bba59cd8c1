package supervisor

import (
	"os/exec"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/config"
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
			s := &Supervisor{cfg: config.Config{Rewrite: r}, log: zerolog.Nop()}
			b.ReportAllocs()
			for b.Loop() {
				s.forward(child.Process.Pid, unix.SIGWINCH)
			}
		})
	}
}
