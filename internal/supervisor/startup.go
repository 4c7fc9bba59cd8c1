package supervisor

import (
	"context"
	"os"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/signals"
)

// startupWatch owns the signal channel until the child exists. A stop signal cancels ctx,
// which every start-up step that can wait takes; any other signal has nobody to go to yet
// and is dropped. Without this, a SIGTERM during a 60 s lock wait would be lost.
type startupWatch struct {
	ctx    context.Context
	cancel context.CancelFunc
	quit   chan struct{}
	done   chan struct{}
	sig    unix.Signal // the stop signal received; read after done is closed
}

func watchStartup(parent context.Context, sigs <-chan os.Signal, log zerolog.Logger) *startupWatch {
	ctx, cancel := context.WithCancel(parent)
	w := &startupWatch{ctx: ctx, cancel: cancel, quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.quit:
				return
			case sig := <-sigs:
				sn := sig.(unix.Signal)
				if signals.IsStop(sn) {
					w.sig = sn
					cancel()
					return
				}
				log.Debug().Str("signal", signals.Name(sn)).Msg("no child yet, signal dropped")
			}
		}
	}()
	return w
}

// WatchStartup watches sigs during the checks that come before Run and take nothing: done
// is closed when a stop signal comes; stop hands the channel back and returns that signal
// (0 when none came). Any other signal is dropped: there is no child yet.
func WatchStartup(sigs <-chan os.Signal, log zerolog.Logger) (done <-chan struct{}, stop func() unix.Signal) {
	w := watchStartup(context.Background(), sigs, log)
	return w.ctx.Done(), w.stop
}

// stop hands the signal channel back and returns the stop signal received, or 0. Signals
// that arrive after stop stay in the channel for the supervision loop.
func (w *startupWatch) stop() unix.Signal {
	close(w.quit)
	<-w.done
	w.cancel()
	return w.sig
}
