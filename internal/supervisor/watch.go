package supervisor

import (
	"sync/atomic"
	"time"

	"github.com/svinit/svinit/internal/render"
	"github.com/svinit/svinit/internal/signals"
)

// watchDebounce is how quiet the sources must stay before they are rendered again: a
// ConfigMap update is a burst of operations (the kubelet's atomic writer), and one change.
const watchDebounce = 300 * time.Millisecond

// watchStopWait bounds the wait for a render under way once the child has exited.
const watchStopWait = time.Second

// watchStep is --template-watch. Its goroutine alone renders and writes the templates again,
// so one render never races another.
type watchStep struct {
	s       *Supervisor
	written *render.Plan // what the files hold: the last plan written
	w       *render.Watcher
	stop    <-chan struct{} // closed when the stop begins
	// stopped is set by Stop: a render that ends later writes nothing, since the clean-up
	// and the lock's release do not wait for it.
	stopped atomic.Bool
}

// watchStep returns the step of --template-watch, or nil without it.
func (s *Supervisor) watchStep() Watch {
	if !s.cfg.TemplateWatch || len(s.cfg.Templates) == 0 {
		return nil
	}
	return &watchStep{s: s, written: s.plan}
}

// Refresh renders the templates again before the child starts: the sources may have changed
// since New read them, while svinit waited for its lock and its seat. A SIGHUP a moment after
// the start would reach the child before it could catch it, and end it.
func (t *watchStep) Refresh() {
	if changed, ok := t.render(); ok {
		t.s.log.Info().Strs("changed", changed).Msg("templates changed before the child started: files rendered again")
	}
}

// Start sets the watches, and renders once at once: the sources may have changed since
// Refresh read them.
func (t *watchStep) Start(stop <-chan struct{}) {
	t.stop = stop
	w, err := render.Watch(t.s.cfg.Templates, render.WatchOptions{
		Debounce: watchDebounce, Stop: stop, Changed: t.rerender, CheckFirst: true, Log: t.s.log,
	})
	if err != nil {
		t.s.log.Error().Err(err).Msg("template watch not started: the child runs on, but changes of the templates are not rendered")
		return
	}
	t.w = w
	t.s.log.Info().Stringer("templates", t.s.cfg.Templates).Msg("watching the templates")
}

// Stop ends the watch, and waits for a render under way at most watchStopWait: a source on
// a hung file system must not hold up the clean-up. A render that had not begun to write by
// then writes nothing; one that had writes its files whole or not at all, and signals no
// child whose exit was collected.
func (t *watchStep) Stop() {
	if t.w == nil {
		return
	}
	t.stopped.Store(true)
	t.w.Close()
	select {
	case <-t.w.Done():
	case <-time.After(watchStopWait):
		t.s.log.Warn().Dur("waited_ms", watchStopWait).Msg("a render of the templates is still under way; the stop goes on")
	}
}

// rerender renders every template again, from the sources and values as they are now, and
// writes them all when any content changed, or none (the error is logged, the child runs
// on with the old files); then it tells the child.
func (t *watchStep) rerender() {
	changed, ok := t.render()
	if !ok {
		return
	}
	select {
	case <-t.stop:
		return // the child is stopping: a reload would only hold its stop up
	default:
	}
	t.s.templatesChanged(changed)
}

// render renders every template again and writes them all when any content changed, or
// none; ok reports that files were written, changed names them.
func (t *watchStep) render() (changed []string, ok bool) {
	log := t.s.log
	plan, err := t.s.PrepareTemplates()
	if err != nil {
		log.Error().Err(err).Msg("the templates changed but do not render: every rendered file is kept as it was, the child runs on")
		return nil, false
	}
	changed = plan.Changed(t.written)
	if len(changed) == 0 {
		log.Debug().Msg("the templates' sources changed, the rendered files are the same")
		return nil, false
	}
	if t.stopped.Load() {
		log.Info().Strs("changed", changed).Msg("the templates changed as the child exited: the rendered files are left as they were")
		return nil, false
	}
	if err := plan.Write(); err != nil {
		log.Error().Err(err).Msg("the templates changed but cannot be written: every rendered file is kept as it was, the child runs on")
		return nil, false
	}
	t.written = plan
	return changed, true
}

// templatesChanged tells the child with --reload-signal that rendered files changed, through
// the path the license's reload signal takes.
func (s *Supervisor) templatesChanged(files []string) {
	s.licenseMu.Lock()
	defer s.licenseMu.Unlock()
	ev := s.log.Info().Strs("changed", files)
	if s.templateSignal == 0 {
		ev.Msg("templates changed: files rendered again, the child not signalled (no --reload-signal)")
		return
	}
	ev.Str("signal", signals.Name(s.templateSignal)).Int("pid", s.childPID).Msg("templates changed: files rendered again, signalling the child")
	if err := s.signalChildLocked(s.templateSignal); err != nil {
		s.log.Info().Err(err).Str("signal", signals.Name(s.templateSignal)).Msg("reload signal not sent: the child has exited")
	}
}
