package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// bench is one run of the harness.
type bench struct {
	log      zerolog.Logger
	inits    []initProg // svinit first
	baseline string     // -baseline as given, for the notes
	self     string     // this binary: the helper children
	tiny     string     // the tiny static child; "" when it cannot run here
	plan     plan
	env      []string // every child's environment, without a helper mode
}

// plan is how many times each figure is measured.
type plan struct {
	startRuns  int // runs of INIT -- /bin/true per init (and of /bin/true alone)
	memRuns    int
	rttRuns    int // runs of rttRounds round trips per init
	rttRounds  int
	stormRuns  int
	orphans    int
	stormLimit time.Duration
	stopRuns   int
	lockRuns   int // handoffs per mode with svinit
	bashRuns   int // graceful handoffs with the bash loop
	bashKill   bool
	netRuns    int // rounds of every svinit-net call
	pid1Runs   int // starts of svinit as PID 1 with and without a license
	beatRuns   int // runs of svinit as PID 1 through beats heartbeats
	beats      int
}

func fullPlan() plan {
	return plan{startRuns: 200, memRuns: 15, rttRuns: 10, rttRounds: 5000, stormRuns: 11, orphans: 10000,
		stormLimit: 30 * time.Second, stopRuns: 30, lockRuns: 10, bashRuns: 6, bashKill: true,
		netRuns: 100, pid1Runs: 20, beatRuns: 3, beats: 10}
}

func quickPlan() plan {
	return plan{startRuns: 40, memRuns: 3, rttRuns: 2, rttRounds: 1000, stormRuns: 1, orphans: 10000,
		stormLimit: 15 * time.Second, stopRuns: 5, lockRuns: 3, bashRuns: 2, bashKill: false,
		netRuns: 20, pid1Runs: 5, beatRuns: 1, beats: 10}
}

// runLimit bounds one run of an init in a namespace; reaching it is an error, not a figure.
const runLimit = 2 * time.Minute

// shuffled returns the inits in a random order, so that no init always runs right after
// the same other one on a noisy machine.
func (b *bench) shuffled() []initProg {
	s := slices.Clone(b.inits)
	rand.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

// sizeRows: the binary on disk, stripped, with whether it needs shared libraries. The
// budget is PID 1's binary; svinit-net, run only for a license call, is in the note.
func (b *bench) sizeRows() ([]*row, error) {
	r := newRow("binary size", kindBytes, budget{kind: atMost, limit: 3 << 20}, nameTini)
	var errs error
	for _, p := range b.inits {
		info, err := inspectBinary(p.path)
		if err != nil {
			errs = multierror.Append(errs, err)
			continue
		}
		r.cells[p.name] = summary{med: float64(info.size), lo: float64(info.size), hi: float64(info.size), n: 1}
		r.notes[p.name] = info.linkage()
		if p.name != nameSvinit {
			continue
		}
		if helper, err := inspectBinary(filepath.Join(filepath.Dir(p.path), "svinit-net")); err == nil {
			r.notes[p.name] += "; svinit-net beside it: " + format(kindBytes, float64(helper.size))
		}
	}
	return []*row{r}, errs
}

// nsRun is an init started by unshare as PID 1 of a new PID namespace, with its own /proc.
type nsRun struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	cancel         context.CancelFunc
}

// startInNS runs p with prog as its child, as PID 1 of a new PID namespace. --kill-child
// makes the init (and so the namespace) die with unshare, whatever goes wrong here.
func (b *bench) startInNS(p initProg, env []string, prog ...string) (*nsRun, error) {
	return b.startInNSOn(p, -1, env, prog...)
}

// startInNSOn is startInNS with everything in the namespace pinned to cpu (none if < 0).
func (b *bench) startInNSOn(p initProg, cpu int, env []string, prog ...string) (*nsRun, error) {
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	argv := append([]string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}, p.argv(prog...)...)
	if cpu >= 0 {
		argv = append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
	}
	n := &nsRun{cmd: exec.CommandContext(ctx, argv[0], argv[1:]...), cancel: cancel}
	n.cmd.Env = append(slices.Clone(b.env), env...)
	n.cmd.Stdout, n.cmd.Stderr = &n.stdout, &n.stderr
	if err := n.cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("%s in a PID namespace: %w (unshare needs root)", p.name, err)
	}
	return n, nil
}

// wait waits for unshare and returns an error that quotes the init's stderr.
func (n *nsRun) wait(name string) error {
	defer n.cancel()
	if err := n.cmd.Wait(); err != nil {
		return fmt.Errorf("%s in a PID namespace: %w; stderr: %s", name, err, tail(n.stderr.Bytes()))
	}
	return nil
}

// kill ends the namespace: SIGKILL to unshare, whose --kill-child SIGKILLs the init.
func (n *nsRun) kill() {
	n.cmd.Process.Kill()
	n.cmd.Wait()
	n.cancel()
}

// initAndChild waits until the init in n runs its child, exec'd as comm, and returns both
// pids as seen from here.
func (n *nsRun) initAndChild(comm string) (initPid, child int, err error) {
	if initPid, err = waitForChild(n.cmd.Process.Pid, 10*time.Second); err != nil {
		return 0, 0, err
	}
	child, err = waitForChildRunning(initPid, comm, 10*time.Second)
	return initPid, child, err
}

// memoryRows: the init's memory while it supervises sleep 60, as PID 1; svinit also with
// a license configured (its activation done before the child starts).
func (b *bench) memoryRows() ([]*row, error) {
	licensed := b.inits[0]
	licensed.name, licensed.opts = nameSvinit+", licensed", licenseOpts
	samples := map[string][]memSample{}
	for range b.plan.memRuns {
		progs := append(b.shuffled(), licensed)
		rand.Shuffle(len(progs), func(i, j int) { progs[i], progs[j] = progs[j], progs[i] })
		for _, p := range progs {
			m, err := b.idleMemory(p)
			if err != nil {
				return nil, err
			}
			samples[p.name] = append(samples[p.name], m)
		}
	}
	metrics := []struct {
		name   string
		budget budget
		of     func(memSample) float64
	}{
		{"VmHWM", budget{kind: atMostTimes, peer: nameMinInit, factor: 1.4}, func(m memSample) float64 { return m.hwm }},
		{"RssAnon", budget{kind: atMost, limit: 1 << 20}, func(m memSample) float64 { return m.anon }},
		{"PSS", budget{}, func(m memSample) float64 { return m.pss }},
	}
	var rows []*row
	for _, m := range metrics {
		spread := func(name string) summary {
			v := make([]float64, len(samples[name]))
			for i, s := range samples[name] {
				v[i] = m.of(s)
			}
			return spreadOf(v)
		}
		plain := newRow("idle "+m.name, kindBytes, m.budget, nameTini)
		for _, p := range b.inits {
			plain.cells[p.name] = spread(p.name)
		}
		// The same runs of the other inits, for the ratios; an earlier svinit ran without.
		withLicense := newRow("idle "+m.name+", license configured", kindBytes, m.budget, nameTini)
		withLicense.cells = maps.Clone(plain.cells)
		withLicense.cells[nameSvinit] = spread(licensed.name)
		delete(withLicense.cells, nameBaseline)
		rows = append(rows, plain, withLicense)
	}
	return rows, nil
}

// idleMemory reads the init's memory 100 ms after its child has exec'd sleep.
func (b *bench) idleMemory(p initProg) (memSample, error) {
	n, err := b.startInNS(p, nil, "/bin/sleep", "60")
	if err != nil {
		return memSample{}, err
	}
	defer n.kill()
	initPid, _, err := n.initAndChild("sleep")
	if err != nil {
		return memSample{}, fmt.Errorf("%s: %w; stderr: %s", p.name, err, tail(n.stderr.Bytes()))
	}
	time.Sleep(100 * time.Millisecond)
	m, err := readMemory(initPid)
	if err != nil {
		return memSample{}, fmt.Errorf("%s: %w", p.name, err)
	}
	return m, nil
}

// startupRows: INIT -- /bin/true against /bin/true alone, wall time and CPU (user+sys of
// the init and everything it reaped), as the overhead over /bin/true's median.
func (b *bench) startupRows() ([]*row, error) {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	const bare = "/bin/true"
	type cmd struct {
		name string
		argv []string
	}
	cmds := []cmd{{bare, []string{"/bin/true"}}}
	for _, p := range b.inits {
		cmds = append(cmds, cmd{p.name, p.argv("/bin/true")})
	}
	walls, cpus := map[string][]float64{}, map[string][]float64{}
	for range b.plan.startRuns {
		rand.Shuffle(len(cmds), func(i, j int) { cmds[i], cmds[j] = cmds[j], cmds[i] })
		for _, c := range cmds {
			wall, cpu, err := timeRun(c.argv, b.env, null.Fd())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			walls[c.name] = append(walls[c.name], float64(wall))
			cpus[c.name] = append(cpus[c.name], float64(cpu))
		}
	}
	wallRow := newRow("start-up overhead, wall", kindDuration, budget{kind: atMostTimes, peer: nameMinInit, factor: 1.3}, nameTini)
	cpuRow := newRow("start-up overhead, CPU", kindDuration, budget{kind: atMostTimes, peer: nameMinInit, factor: 1.3}, nameTini)
	baseWall, baseCPU := quantile(walls[bare], 0.5), quantile(cpus[bare], 0.5)
	for _, p := range b.inits {
		wallRow.cells[p.name] = percentilesOf(walls[p.name]).shift(baseWall)
		cpuRow.cells[p.name] = percentilesOf(cpus[p.name]).shift(baseCPU)
	}
	b.log.Info().Str("wall_p50", time.Duration(baseWall).String()).Str("cpu_p50", time.Duration(baseCPU).String()).
		Msg("baseline /bin/true")
	return []*row{wallRow, cpuRow}, nil
}

// timeRun runs argv to completion and returns its wall time and CPU time (rusage of the
// process and of the children it waited for).
func timeRun(argv, env []string, null uintptr) (wall, cpu time.Duration, err error) {
	start := time.Now()
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{Env: env, Files: []uintptr{null, null, null}})
	if err != nil {
		return 0, 0, fmt.Errorf("start %s: %w", argv[0], err)
	}
	var (
		ws unix.WaitStatus
		ru unix.Rusage
	)
	for {
		_, err = unix.Wait4(pid, &ws, 0, &ru)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	wall = time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("wait for %s: %w", argv[0], err)
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		return 0, 0, fmt.Errorf("%v exited with status %v", argv, ws)
	}
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return wall, cpu, nil
}

// rttMode places the init and the helper on CPUs. Left to the scheduler, a run's round
// trips are either all fast (both on one CPU) or all slow (a wake-up across CPUs costs
// tens of microseconds in a VM), so the median over runs would measure placement luck.
type rttMode struct {
	name      string
	initCPU   int // every process of the namespace starts pinned here
	helperCPU int // the helper moves itself here; < 0: stays with the init
}

func (b *bench) rttModes() []rttMode {
	modes := []rttMode{{name: "1 CPU", initCPU: 0, helperCPU: -1}}
	if runtime.NumCPU() > 1 {
		modes = append(modes, rttMode{name: "2 CPUs", initCPU: 0, helperCPU: 1})
	}
	return modes
}

// rttRows: the helper sends SIGUSR1 to the init (PID 1) and waits for it to come back.
func (b *bench) rttRows() ([]*row, error) {
	var rows []*row
	maxes, losts := map[string][]float64{}, map[string][]float64{}
	for _, m := range b.rttModes() {
		p50s, p99s := map[string][]float64{}, map[string][]float64{}
		for range b.plan.rttRuns {
			for _, p := range b.shuffled() {
				res, err := b.roundTrips(p, m)
				if err != nil {
					return nil, err
				}
				v := make([]float64, len(res.RTT))
				for i, ns := range res.RTT {
					v[i] = float64(ns)
				}
				slices.Sort(v)
				if len(v) > 0 {
					p50s[p.name] = append(p50s[p.name], sortedQuantile(v, 0.5))
					p99s[p.name] = append(p99s[p.name], sortedQuantile(v, 0.99))
					maxes[p.name] = append(maxes[p.name], v[len(v)-1])
				}
				losts[p.name] = append(losts[p.name], float64(res.Lost))
				if res.Stopped {
					b.log.Warn().Str("init", p.name).Int("lost", res.Lost).Msg("signal round trips: too many lost, run cut short")
				}
			}
		}
		p50 := newRow("signal round trip p50, "+m.name, kindDuration, budget{kind: asFastAs, peer: nameBaseline}, nameTini)
		p99 := newRow("signal round trip p99, "+m.name, kindDuration, budget{}, nameTini)
		for _, p := range b.inits {
			if v := p50s[p.name]; len(v) > 0 {
				p50.cells[p.name] = spreadOf(v)
				p99.cells[p.name] = spreadOf(p99s[p.name])
			}
		}
		rows = append(rows, p50, p99)
	}
	maxRow := newRow("signal round trip max", kindDuration, budget{}, nameTini)
	lostRow := newRow("signals lost per run", kindCount, budget{kind: zeroAlways}, nameTini)
	for _, p := range b.inits {
		if v := maxes[p.name]; len(v) > 0 {
			maxRow.cells[p.name] = spreadOf(v)
		}
		lostRow.cells[p.name] = spreadOf(losts[p.name])
	}
	return append(rows, maxRow, lostRow), nil
}

func (b *bench) roundTrips(p initProg, m rttMode) (rttResult, error) {
	env := []string{helperEnv + "=" + helperRTT, roundsEnv + "=" + strconv.Itoa(b.plan.rttRounds),
		cpuEnv + "=" + strconv.Itoa(m.helperCPU)}
	n, err := b.startInNSOn(p, m.initCPU, env, b.self)
	if err != nil {
		return rttResult{}, err
	}
	if err := n.wait(p.name); err != nil {
		return rttResult{}, fmt.Errorf("signal round trips (%s): %w", m.name, err)
	}
	var res rttResult
	if err := json.Unmarshal(n.stdout.Bytes(), &res); err != nil {
		return rttResult{}, fmt.Errorf("signal round trips under %s: helper output %q: %w", p.name, tail(n.stdout.Bytes()), err)
	}
	return res, nil
}

// stormRows: 10,000 orphans exit at once; how long until the init has reaped them all.
func (b *bench) stormRows() ([]*row, error) {
	if b.tiny == "" {
		return nil, nil
	}
	drains, lefts := map[string][]float64{}, map[string][]float64{}
	for range b.plan.stormRuns {
		for _, p := range b.shuffled() {
			env := []string{helperEnv + "=" + helperStorm, orphansEnv + "=" + strconv.Itoa(b.plan.orphans),
				tinyEnv + "=" + b.tiny, limitEnv + "=" + b.plan.stormLimit.String()}
			n, err := b.startInNS(p, env, b.self)
			if err != nil {
				return nil, err
			}
			if err := n.wait(p.name); err != nil {
				return nil, fmt.Errorf("orphan storm: %w", err)
			}
			var res stormResult
			if err := json.Unmarshal(n.stdout.Bytes(), &res); err != nil {
				return nil, fmt.Errorf("orphan storm under %s: helper output %q: %w", p.name, tail(n.stdout.Bytes()), err)
			}
			if res.Started != b.plan.orphans {
				b.log.Warn().Str("init", p.name).Int("started", res.Started).Int("wanted", b.plan.orphans).
					Msg("orphan storm: not every orphan was in /proc before the storm")
			}
			b.log.Debug().Str("init", p.name).Str("drain", time.Duration(res.DrainNS).String()).Int("left", res.Left).Msg("orphan storm")
			drains[p.name] = append(drains[p.name], float64(res.DrainNS))
			lefts[p.name] = append(lefts[p.name], float64(res.Left))
		}
	}
	drainRow := newRow(fmt.Sprintf("orphan storm (%d) drained", b.plan.orphans), kindDuration, budget{}, nameTini)
	leftRow := newRow("orphans left", kindCount, budget{kind: zeroAlways}, nameTini)
	for _, p := range b.inits {
		drainRow.cells[p.name] = spreadOf(drains[p.name])
		leftRow.cells[p.name] = spreadOf(lefts[p.name])
	}
	return []*row{drainRow, leftRow}, nil
}

// stopRows: SIGTERM to the init (PID 1) until it has exited, its child being sleep, which
// dies of SIGTERM at once.
func (b *bench) stopRows() ([]*row, error) {
	lat := map[string][]float64{}
	for range b.plan.stopRuns {
		for _, p := range b.shuffled() {
			d, err := b.stopLatency(p)
			if err != nil {
				return nil, err
			}
			lat[p.name] = append(lat[p.name], float64(d))
		}
	}
	r := newRow("stop latency", kindDuration, budget{kind: asFastAs, peer: nameBaseline}, nameTini)
	for _, p := range b.inits {
		r.cells[p.name] = spreadOf(lat[p.name])
	}
	return []*row{r}, nil
}

func (b *bench) stopLatency(p initProg) (time.Duration, error) {
	n, err := b.startInNS(p, nil, "/bin/sleep", "60")
	if err != nil {
		return 0, err
	}
	defer n.kill()
	initPid, _, err := n.initAndChild("sleep")
	if err != nil {
		return 0, fmt.Errorf("%s: %w; stderr: %s", p.name, err, tail(n.stderr.Bytes()))
	}
	pidfd, err := unix.PidfdOpen(initPid, 0)
	if err != nil {
		return 0, fmt.Errorf("pidfd of %s: %w", p.name, err)
	}
	defer unix.Close(pidfd)
	start := time.Now()
	if err := unix.Kill(initPid, unix.SIGTERM); err != nil {
		return 0, fmt.Errorf("SIGTERM to %s: %w", p.name, err)
	}
	end, err := awaitExit(pidfd, 30*time.Second)
	if err != nil {
		return 0, fmt.Errorf("%s after SIGTERM: %w; stderr: %s", p.name, err, tail(n.stderr.Bytes()))
	}
	return end.Sub(start), nil
}

// tail is the end of a process's output, for an error message.
func tail(b []byte) string {
	const keep = 600
	b = bytes.TrimSpace(b)
	if len(b) > keep {
		b = append([]byte("…"), b[len(b)-keep:]...)
	}
	return string(b)
}
