package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/svinit/svinit/internal/license"
)

// The helper figure: svinit's network calls, made by svinit-net since issue 18. Each call's
// wall time and CPU, PID 1's start-up when its license comes over the network, and PID 1's
// memory across heartbeats, all against the bench's relayServer.

// beatTTL is the lease of the heartbeat runs: svinit heartbeats at a third of it.
const beatTTL = 3 * time.Second

// netCall is one run of svinit-net as PID 1 makes it.
type netCall struct {
	name string
	args []string
	env  []string // on top of the provider's
}

// relayEnv is the provider's part of svinit-net's environment, as PID 1 sets it for
// keygen-relay (license.newNetProvider): the http provider's configuration is its zero value.
func relayEnv(url string) ([]string, error) {
	httpConfig, err := json.Marshal(license.HTTPConfig{})
	if err != nil {
		return nil, err
	}
	return []string{license.EnvNetProvider + "=" + license.ProviderKeygenRelay,
		license.EnvNetHTTPConfig + "=" + string(httpConfig), license.EnvURL + "=" + url}, nil
}

// leaseCalls are one lease's life, in the order the relay's state needs: a claim, an
// extension, a release.
func leaseCalls(instance string, ttl time.Duration) []netCall {
	id := []string{license.EnvInstanceID + "=" + instance, license.EnvActivationID + "=" + instance}
	return []netCall{
		{"license activate", []string{"license", "activate"}, id[:1]},
		{"license heartbeat", []string{"license", "heartbeat"}, append(slices.Clip(id), license.EnvNetTTL+"="+ttl.String())},
		{"license deactivate", []string{"license", "deactivate"}, id},
	}
}

// relayOpts configure svinit for the relay at url, as a user would.
func relayOpts(url string) []string {
	return []string{"--license-provider", license.ProviderKeygenRelay, "--license-url", url, "--instance-id", "bench"}
}

// helperRows: every svinit-net call, PID 1's start with and without a license, and PID 1's
// memory across heartbeats. Left out, with a warning, when svinit has no svinit-net beside it.
func (b *bench) helperRows() ([]*row, error) {
	svinit := b.inits[0]
	netBin := filepath.Join(filepath.Dir(svinit.path), license.HelperName)
	if !exists(netBin) {
		b.log.Warn().Msg("no svinit-net beside svinit: the helper figure is left out")
		return nil, nil
	}
	calls, err := b.netCallRows(netBin)
	if err != nil {
		return nil, err
	}
	starts, err := b.licensedStartRows(svinit)
	if err != nil {
		return nil, err
	}
	beats, err := b.heartbeatMemoryRows(svinit)
	if err != nil {
		return nil, err
	}
	return slices.Concat(calls, starts, beats), nil
}

// netCallRows: each svinit-net call, from fork to wait4, with the environment PID 1 gives
// it; CPU is the helper's user + sys. Each round makes every call once, check at a random
// place among the lease's calls.
func (b *bench) netCallRows(netBin string) ([]*row, error) {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	relay, err := startRelay(time.Minute)
	if err != nil {
		return nil, err
	}
	defer relay.close()
	provider, err := relayEnv(relay.URL)
	if err != nil {
		return nil, err
	}
	// svinit passes its own environment, less the contract's names, which it sets.
	base := append(withoutPrefix(b.env, "SVINIT_"), provider...)
	calls := append([]netCall{{"check", []string{"check"}, nil}}, leaseCalls("bench", time.Minute)...)
	walls, cpus := map[string][]float64{}, map[string][]float64{}
	for range b.plan.netRuns {
		round := slices.Insert(slices.Clone(calls[1:]), rand.IntN(len(calls)), calls[0])
		for _, c := range round {
			argv := append([]string{netBin}, c.args...)
			wall, cpu, err := timeRun(argv, append(slices.Clip(base), c.env...), null.Fd())
			if err != nil {
				return nil, fmt.Errorf("svinit-net %s: %w", c.name, err)
			}
			walls[c.name] = append(walls[c.name], float64(wall))
			cpus[c.name] = append(cpus[c.name], float64(cpu))
		}
	}
	// Each call must have done what it is timed for: a 201, a 202 and a 204 per round.
	n := b.plan.netRuns
	if got, want := relay.counts(), (relayCounts{Claims: n, Extensions: n, Releases: n}); got != want {
		return nil, fmt.Errorf("the relay answered %+v, want %+v", got, want)
	}
	var rows []*row
	for _, c := range calls {
		wall := newRow("svinit-net "+c.name+", wall", kindDuration, budget{}, nameTini)
		wall.cells[nameSvinit] = percentilesOf(walls[c.name])
		cpu := newRow("svinit-net "+c.name+", CPU", kindDuration, budget{}, nameTini)
		cpu.cells[nameSvinit] = percentilesOf(cpus[c.name])
		rows = append(rows, wall, cpu)
	}
	return rows, nil
}

// licensedStartRows: svinit as PID 1 with the keygen-relay provider, from starting unshare
// until its child runs (svinit-net check and activate come first), beside the same start
// without a license; CPU is PID 1's own, its helpers' being in the rows above.
func (b *bench) licensedStartRows(svinit initProg) ([]*row, error) {
	walls, cpus := map[bool][]float64{}, map[bool][]float64{}
	for range b.plan.pid1Runs {
		order := []bool{true, false}
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, licensed := range order {
			wall, cpu, err := b.startToChild(svinit, licensed)
			if err != nil {
				return nil, err
			}
			walls[licensed] = append(walls[licensed], float64(wall))
			cpus[licensed] = append(cpus[licensed], float64(cpu))
		}
	}
	var rows []*row
	for _, licensed := range []bool{true, false} {
		what := "no license"
		if licensed {
			what = "keygen-relay"
		}
		wall := newRow("PID 1 until its child runs, "+what+", wall", kindDuration, budget{}, nameTini)
		wall.cells[nameSvinit] = percentilesOf(walls[licensed])
		cpu := newRow("PID 1 until its child runs, "+what+", CPU", kindDuration, budget{}, nameTini)
		cpu.cells[nameSvinit] = percentilesOf(cpus[licensed])
		rows = append(rows, wall, cpu)
	}
	return rows, nil
}

// startToChild starts svinit as PID 1 with sleep 60, licensed against a relay of its own
// (no lease left by the run before), and returns the time until sleep runs and PID 1's
// CPU time by then.
func (b *bench) startToChild(svinit initProg, licensed bool) (wall, cpu time.Duration, err error) {
	if licensed {
		relay, err := startRelay(time.Minute)
		if err != nil {
			return 0, 0, err
		}
		defer relay.close()
		svinit.opts = relayOpts(relay.URL)
	}
	start := time.Now()
	n, err := b.startInNS(svinit, nil, "/bin/sleep", "60")
	if err != nil {
		return 0, 0, err
	}
	defer n.kill()
	initPid, _, err := n.initAndChild("sleep")
	wall = time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("svinit (licensed %v): %w; stderr: %s", licensed, err, tail(n.stderr.Bytes()))
	}
	cpu, err = cpuTime(initPid)
	return wall, cpu, err
}

// heartbeatMemoryRows: PID 1's RssAnon and VmHWM after its first heartbeat and again after
// plan.beats more, with leases of beatTTL; the rows are the growth.
func (b *bench) heartbeatMemoryRows(svinit initProg) ([]*row, error) {
	var anon, hwm, firstAnon, firstHWM []float64
	for range b.plan.beatRuns {
		first, last, err := b.heartbeatMemory(svinit, b.plan.beats)
		if err != nil {
			return nil, err
		}
		b.log.Debug().Float64("rss_anon_first", first.anon).Float64("rss_anon_last", last.anon).
			Float64("vm_hwm_first", first.hwm).Float64("vm_hwm_last", last.hwm).Msg("heartbeats")
		anon, hwm = append(anon, last.anon-first.anon), append(hwm, last.hwm-first.hwm)
		firstAnon, firstHWM = append(firstAnon, first.anon), append(firstHWM, first.hwm)
	}
	anonRow := newRow(fmt.Sprintf("PID 1 RssAnon growth over %d heartbeats", b.plan.beats), kindBytes, budget{}, nameTini)
	anonRow.cells[nameSvinit] = spreadOf(anon)
	anonRow.notes[nameSvinit] = "from " + format(kindBytes, spreadOf(firstAnon).med)
	hwmRow := newRow(fmt.Sprintf("PID 1 VmHWM growth over %d heartbeats", b.plan.beats), kindBytes, budget{}, nameTini)
	hwmRow.cells[nameSvinit] = spreadOf(hwm)
	hwmRow.notes[nameSvinit] = "from " + format(kindBytes, spreadOf(firstHWM).med)
	return []*row{anonRow, hwmRow}, nil
}

func (b *bench) heartbeatMemory(svinit initProg, beats int) (first, last memSample, err error) {
	relay, err := startRelay(beatTTL)
	if err != nil {
		return first, last, err
	}
	defer relay.close()
	svinit.opts = relayOpts(relay.URL)
	n, err := b.startInNS(svinit, nil, "/bin/sleep", "60")
	if err != nil {
		return first, last, err
	}
	defer n.kill()
	initPid, child, err := n.initAndChild("sleep")
	if err == nil {
		first, err = afterHeartbeat(relay, initPid, child, 1)
	}
	if err == nil {
		last, err = afterHeartbeat(relay, initPid, child, 1+beats)
	}
	if err != nil {
		return first, last, fmt.Errorf("svinit with heartbeats: %w; stderr: %s", err, tail(n.stderr.Bytes()))
	}
	return first, last, nil
}

// afterHeartbeat waits until the relay has extended the lease k times and PID 1 has reaped
// the svinit-net that asked for the k-th, then reads PID 1's memory: each sample at the
// same point of a heartbeat's cycle.
func afterHeartbeat(relay *relayServer, initPid, child, k int) (memSample, error) {
	limit := time.Duration(k+2) * beatTTL // a heartbeat every beatTTL/3, with room for a loaded machine
	deadline := time.Now().Add(limit)
	for {
		if relay.counts().Extensions >= k && slices.Equal(childrenOf(initPid), []int{child}) {
			return readMemory(initPid)
		}
		if !alive(initPid) || isZombie(initPid) {
			return memSample{}, fmt.Errorf("waiting for heartbeat %d: %w", k, errGone)
		}
		if time.Now().After(deadline) {
			return memSample{}, fmt.Errorf("the relay extended the lease %d times within %s, want %d", relay.counts().Extensions, limit, k)
		}
		time.Sleep(pollEvery)
	}
}

// withoutPrefix drops the variables whose names start with prefix.
func withoutPrefix(env []string, prefix string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, prefix) })
}
