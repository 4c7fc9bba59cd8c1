package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/svinit/svinit/internal/license/licensetest"
	"github.com/svinit/svinit/internal/proctest"
)

// seatInstance is the instance id of every run in these tests: a restart is the same pod.
const seatInstance = "pod-seat"

// seatStep is a moment of the license life cycle at which svinit is killed.
type seatStep struct {
	name string
	// before sets up the step before svinit starts; nil: nothing to do.
	before func(t *testing.T)
	// reach brings svinit, started with the child writing rec, to the moment.
	reach func(t *testing.T, s *svinit, rec string)
	// stopping: the step is part of a stop already, so only SIGKILL can interrupt it.
	stopping bool
}

// seatRig is a license server and the svinit options that use it.
type seatRig struct {
	args  []string
	steps []seatStep
	// leaked returns what the server holds for the instance.
	leaked func() []string
	// release undoes the hooks that hold a step, before the restart.
	release func()
}

// No seat leaks whatever kills svinit and wherever: SIGKILL (node death) or SIGTERM at each
// step of activation, heartbeat and re-activation (and SIGKILL during the stop's
// deactivation), as PID 1 and as a subreaper. After the kill, a restart with the same journal
// and a clean stop leave the server holding nothing for the instance.
func TestNoSeatLeaksAcrossKillsAtEveryStep(t *testing.T) {
	for _, m := range modes {
		for name, rig := range map[string]func(t *testing.T) seatRig{"exec": execSeatRig, "keygen-relay": relaySeatRig} {
			t.Run(m.name+"/"+name, func(t *testing.T) {
				for _, sig := range []unix.Signal{unix.SIGKILL, unix.SIGTERM} {
					for i, step := range rig(t).steps {
						if step.stopping && sig != unix.SIGKILL {
							continue // a stop is under way: only SIGKILL interrupts it
						}
						t.Run(step.name+"/"+unix.SignalName(sig), func(t *testing.T) {
							r := rig(t) // a server of its own
							killAtStepThenRestart(t, m, r, r.steps[i], sig)
						})
					}
				}
			})
		}
	}
}

func killAtStepThenRestart(t *testing.T, m mode, r seatRig, step seatStep, sig unix.Signal) {
	journal := filepath.Join(t.TempDir(), "journal")
	run := func() (*svinit, string) {
		rec := filepath.Join(t.TempDir(), "rec")
		args := append([]string{"--license-state", journal, "--instance-id", seatInstance}, r.args...)
		return startSvinit(t, m, "sleep", []string{"REC=" + rec}, append(args, "--", selfBin)...), rec
	}
	if step.before != nil {
		step.before(t)
	}
	s, rec := run()
	step.reach(t, s, rec)
	if sig == unix.SIGKILL {
		proctest.KillTree(s.Pid)
	} else {
		s.Signal(sig)
	}
	s.Wait()
	r.release()

	s, rec = run()
	waitLine(t, rec, "ready")
	s.Signal(unix.SIGTERM)
	if code := s.Wait(); code != 143 {
		t.Errorf("the restart exited %d, want the child's 143", code)
	}
	if left := r.leaked(); len(left) != 0 {
		t.Errorf("seats leaked: %v", left)
	}
	if _, err := os.Stat(journal); !os.IsNotExist(err) {
		t.Errorf("journal left after a clean stop: %v", err)
	}
}

// execSeatRig: the exec provider over licensetest.ExecSeats, whose activations each have an
// id of their own; hold-ACTION files stop a command at its step.
func execSeatRig(t *testing.T) seatRig {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ttl"), "600ms")
	cmd := strings.Join([]string{"/usr/bin/env", helperEnv + "=exec-seats", selfBin, dir}, " ")
	holdAt := func(t *testing.T, action string) {
		writeFile(t, filepath.Join(dir, "hold-"+action), "")
	}
	held := func(t *testing.T, action string) { waitLine(t, filepath.Join(dir, "held"), action) }
	return seatRig{
		args: []string{"--license-provider", "exec", "--license-activate-cmd", cmd, "--license-heartbeat-cmd", cmd,
			"--license-deactivate-cmd", cmd, "--license-timeout", "10s", "--license-request-timeout", "5s"},
		steps: []seatStep{
			{name: "activation", before: func(t *testing.T) { holdAt(t, "activate") },
				reach: func(t *testing.T, _ *svinit, _ string) { held(t, "activate") }},
			{name: "running", reach: func(t *testing.T, _ *svinit, rec string) { waitLine(t, rec, "ready") }},
			{name: "heartbeat", reach: func(t *testing.T, _ *svinit, rec string) {
				waitLine(t, rec, "ready")
				holdAt(t, "heartbeat")
				held(t, "heartbeat")
			}},
			{name: "re-activation", reach: func(t *testing.T, _ *svinit, rec string) {
				waitLine(t, rec, "ready")
				holdAt(t, "activate")
				for _, id := range licensetest.ExecSeatsLive(dir) {
					licensetest.ExecSeatsLapse(dir, id)
				}
				held(t, "activate")
			}},
			{name: "deactivation", stopping: true, reach: func(t *testing.T, s *svinit, rec string) {
				waitLine(t, rec, "ready")
				holdAt(t, "deactivate")
				s.Signal(unix.SIGTERM)
				held(t, "deactivate")
			}},
		},
		leaked: func() []string { return licensetest.ExecSeatsLive(dir) },
		release: func() {
			for _, action := range []string{"activate", "heartbeat", "deactivate"} {
				os.Remove(filepath.Join(dir, "hold-"+action))
			}
			os.Remove(filepath.Join(dir, "held"))
		},
	}
}

// relaySeatRig: the keygen-relay preset over the licensetest double; a delayed answer holds
// an activation (or a heartbeat's new claim) after it took the seat.
func relaySeatRig(t *testing.T) seatRig {
	srv := licensetest.Start(t, licensetest.Options{Seats: 1, TTL: 3 * time.Second, ShortTTL: true}) // heartbeats within the test
	return seatRig{
		args: []string{"--license-provider", "keygen-relay", "--license-url", srv.URL,
			"--license-timeout", "10s", "--license-request-timeout", "5s"},
		steps: []seatStep{
			{name: "activation", before: func(*testing.T) { srv.SetActivationDelay(waitLimit) },
				reach: func(t *testing.T, _ *svinit, _ string) {
					poll(t, "the claim to take the seat", func() bool { return srv.Live() == 1 })
				}},
			{name: "running", reach: func(t *testing.T, _ *svinit, rec string) { waitLine(t, rec, "ready") }},
			{name: "heartbeat", reach: func(t *testing.T, _ *svinit, rec string) {
				waitLine(t, rec, "ready")
				path := "/v1/nodes/" + seatInstance
				poll(t, "a heartbeat", func() bool { return srv.Count("PUT", path) >= 2 })
			}},
			{name: "re-activation", reach: func(t *testing.T, _ *svinit, rec string) {
				waitLine(t, rec, "ready")
				srv.SetActivationDelay(waitLimit)
				srv.Lapse(seatInstance)
				poll(t, "the new claim to take the seat", func() bool { return srv.Activations() == 2 && srv.Live() == 1 })
			}},
		},
		leaked: func() []string {
			if srv.Holds(seatInstance) {
				return []string{seatInstance}
			}
			return nil
		},
		release: func() { srv.SetActivationDelay(0) },
	}
}
