package supervisor

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/logbuf"
	"github.com/svinit/svinit/internal/reaper"
)

// A license command that starts a daemon of its own (setsid: out of the command's process
// group, so out of reach of the group kill) leaves it holding the output pipes. Run must
// still return, whether the command exits or its context ends, and never write to the
// caller's buffers afterwards.
func TestRunnerReturnsWhileADaemonHoldsTheOutput(t *testing.T) {
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, unix.SIGCHLD)
	defer signal.Stop(sigchld)
	r := reaper.New(zerolog.Nop())
	sigs := OwnSignals(SignalSources{SIGCHLD: sigchld, Reap: func() { r.Reap() }, Log: zerolog.Nop()})
	defer sigs.Close()

	for _, tc := range []struct {
		name    string
		timeout time.Duration // of the command's context; 0: none
		tail    string        // what the command does after starting the daemon
	}{
		{"exits", 0, "exit 0"},
		{"cancelled", 3 * time.Second, "sleep 60"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "daemon")
			// The command waits until the daemon has left its group, or the group kill
			// that ends the command would end the daemon too.
			script := `setsid sh -c 'echo $$ > "$0"; exec sleep 60' "$1" &
				i=0; while [ ! -s "$1" ] && [ $i -lt 2000 ]; do sleep 0.01; i=$((i+1)); done
				echo activated; ` + tc.tail
			t.Cleanup(func() { killDaemon(t, pidFile) })
			runCtx := context.Background()
			if tc.timeout > 0 {
				var stop context.CancelFunc
				runCtx, stop = context.WithTimeout(runCtx, tc.timeout)
				defer stop()
			}
			var stdout, stderr logbuf.Buffer
			began := time.Now()
			_, err := reaperRunner{r: r}.Run(runCtx, []string{"/bin/sh", "-c", script, "sh", pidFile}, os.Environ(), &stdout, &stderr)
			took := time.Since(began)
			// The daemon sleeps 60 s: waiting for it would take that long.
			if took > 30*time.Second {
				t.Errorf("Run returned after %s: it waited for the daemon", took)
			}
			if (tc.timeout > 0) != (err != nil) {
				t.Errorf("err %v", err)
			}
			if !strings.Contains(stdout.String(), "activated") {
				t.Errorf("stdout %q: the output before the exit was lost", stdout.String())
			}
			t.Logf("returned after %s", took.Round(time.Millisecond))
		})
	}
}

// killDaemon kills the process whose pid the daemon wrote, once it has written it.
func killDaemon(t *testing.T, pidFile string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				unix.Kill(pid, unix.SIGKILL)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("the daemon never wrote its pid to %s", pidFile)
}
