package lock

import (
	"context"
	"testing"
	"time"
)

// BenchmarkHandoff measures the time from the holder's Release to the waiter's Acquire
// returning, with the waiter already waiting (ns/handoff; ns/op includes setting that up).
func BenchmarkHandoff(b *testing.B) {
	for _, m := range modes() {
		b.Run(m.name, func(b *testing.B) {
			path := lockPath(b)
			lines := newLogLines(nil)
			opts := Options{Path: path, Timeout: time.Minute, OnTimeout: Fail, Poll: m.poll}
			opts.Logger = testLoggerTo(lines)
			holder, err := Acquire(context.Background(), opts)
			if err != nil {
				b.Fatal(err)
			}
			var total time.Duration
			for i := 0; b.Loop(); i++ {
				ch := acquireAsync(context.Background(), opts)
				lines.waitFor(b, msgWaiting, i+1, 10*time.Second)
				released := time.Now()
				if err := holder.Release(); err != nil {
					b.Fatal(err)
				}
				r := receive(b, ch, 10*time.Second)
				if r.err != nil {
					b.Fatal(r.err)
				}
				total += r.at.Sub(released)
				holder = r.l
			}
			if err := holder.Release(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/handoff")
		})
	}
}
