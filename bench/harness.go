package main

import (
	"bytes"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/rs/zerolog"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1 // a figure could not be measured; the table shows the others
	exitUsage   = 2
	exitNoSetup = 3 // no svinit binary, no peers, not root
)

// figure names for -only, in the table's order.
var figureNames = []string{"size", "memory", "startup", "rtt", "storm", "stop", "lock", "helper"}

type options struct {
	quick     bool
	out       string
	svinit    string
	svinitNet string
	baseline  string
	only      map[string]bool
	verbose   bool
	peers     map[string]string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bench/run [flags]   (or go run ./bench [flags], as root, from the repository root)")
		fs.PrintDefaults()
	}
	var o options
	var only string
	o.peers = map[string]string{}
	fs.BoolVar(&o.quick, "quick", false, "a smoke run with fewer repetitions (about 1 min instead of 4–7 min)")
	fs.StringVar(&o.out, "out", "", "directory for results.md and results.svg (default: bench/ of the repository, none with -only or -svinit; \"-\" writes none)")
	fs.StringVar(&o.svinit, "svinit", "", "svinit binary to measure (default: build it, stripped and static)")
	fs.StringVar(&o.svinitNet, "svinit-net", "", "svinit-net binary to place beside svinit (default: the one beside -svinit, else built from ./cmd/svinit-net if there is one)")
	fs.StringVar(&o.baseline, "baseline", "", "an earlier svinit to compare with, as a binary or a git revision of this repository (built like svinit): the round trip and stop budgets are \"no worse\" than it")
	fs.StringVar(&only, "only", "", "comma-separated figures to run: "+strings.Join(figureNames, ","))
	fs.BoolVar(&o.verbose, "v", false, "log every run")
	for _, p := range peerNames {
		fs.Func(p, "path of "+p+" (default: found in PATH)", func(s string) error { o.peers[p] = s; return nil })
	}
	if err := fs.Parse(args[1:]); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q: bench takes flags only", fs.Args())
	}
	o.only = map[string]bool{}
	for _, f := range strings.Split(only, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !slices.Contains(figureNames, f) {
			return o, fmt.Errorf("-only %q: unknown figure, want some of %s", f, strings.Join(figureNames, ","))
		}
		o.only[f] = true
	}
	return o, nil
}

// run measures everything and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitUsage
	}
	level := zerolog.InfoLevel
	if o.verbose {
		level = zerolog.DebugLevel
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05", NoColor: true}).Level(level).With().Timestamp().Logger()

	b, svinit, cleanup, err := setUp(&o, log)
	defer cleanup()
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitNoSetup
	}

	started := time.Now()
	steps := []struct {
		name string
		fn   func() ([]*row, error)
	}{
		{"size", b.sizeRows},
		{"memory", b.memoryRows},
		{"startup", b.startupRows},
		{"rtt", b.rttRows},
		{"storm", b.stormRows},
		{"stop", b.stopRows},
		{"lock", func() ([]*row, error) { return b.lockRows(svinit) }},
		{"helper", b.helperRows},
	}
	var (
		rows []*row
		errs error
	)
	for _, s := range steps {
		if len(o.only) > 0 && !o.only[s.name] {
			continue
		}
		t := time.Now()
		log.Info().Str("figure", s.name).Msg("measuring")
		r, err := s.fn()
		if err != nil {
			errs = multierror.Append(errs, fmt.Errorf("%s: %w", s.name, err))
			log.Error().Err(err).Str("figure", s.name).Msg("figure failed; the table shows the others")
			continue
		}
		rows = append(rows, r...)
		log.Info().Str("figure", s.name).Str("took", time.Since(t).Round(time.Millisecond).String()).Msg("measured")
	}

	fmt.Fprintln(stdout)
	writeText(stdout, rows)
	notes := b.notes()
	fmt.Fprintln(stdout)
	for _, n := range notes {
		fmt.Fprintln(stdout, "- "+n)
	}
	switch {
	case o.out == "-":
	case errs != nil:
		log.Warn().Str("dir", o.out).Msg("a figure failed: results.md and results.svg left as they were")
	default:
		if err := writeResults(o.out, rows, notes, time.Since(started)); err != nil {
			errs = multierror.Append(errs, err)
		} else {
			log.Info().Str("dir", o.out).Msg("wrote results.md and results.svg")
		}
	}
	if errs != nil {
		fmt.Fprintf(stderr, "bench: %v\n", errs)
		return exitFailed
	}
	return exitOK
}

// setUp finds or builds every binary the run needs, and settles o.out. cleanup removes
// what it created.
func setUp(o *options, log zerolog.Logger) (b *bench, svinit string, cleanup func(), err error) {
	cleanup = func() {}
	if os.Geteuid() != 0 {
		return nil, "", cleanup, errors.New("run as root: the inits run as PID 1 of new PID namespaces (unshare)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		return nil, "", cleanup, errors.New("unshare not found: install util-linux")
	}
	tmp, err := os.MkdirTemp("", "svinit-bench-")
	if err != nil {
		return nil, "", cleanup, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	// A partial run, or one of another build, must not replace the results kept in the repo.
	if o.out == "" && (len(o.only) > 0 || o.svinit != "") {
		o.out = "-"
	}
	root, err := moduleRoot()
	if err != nil && (o.svinit == "" || o.out == "") {
		return nil, "", cleanup, err
	}
	if o.out == "" {
		o.out = filepath.Join(root, "bench")
	}
	if svinit, err = placeSvinit(*o, root, tmp, log); err != nil {
		return nil, "", cleanup, err
	}
	inits := []initProg{{name: nameSvinit, path: svinit, dashDash: true}}
	if root != "" {
		mininit := filepath.Join(tmp, "mininit")
		if err := build(root, "./bench/mininit", mininit, log); err != nil {
			return nil, "", cleanup, err
		}
		inits = append(inits, initProg{name: nameMinInit, path: mininit, dashDash: true})
	} else {
		log.Warn().Msg("not inside the svinit module: the minimal Go init (bench/mininit) is left out")
	}
	if o.baseline != "" {
		before, err := baselineBinary(o.baseline, root, tmp, log)
		if err != nil {
			return nil, "", cleanup, err
		}
		inits = append(inits, initProg{name: nameBaseline, path: before, dashDash: true})
	}
	peers, err := findPeers(o.peers)
	if err != nil {
		return nil, "", cleanup, err
	}
	inits = append(inits, peers...)
	self, err := os.Executable()
	if err != nil {
		return nil, "", cleanup, fmt.Errorf("find own binary (the helper children): %w", err)
	}
	tiny, err := writeTiny(tmp)
	if err != nil {
		log.Warn().Err(err).Msg("orphan storm and lock handoff left out")
		tiny = ""
	}
	p := fullPlan()
	if o.quick {
		p = quickPlan()
	}
	b = &bench{log: log, inits: inits, baseline: o.baseline, self: self, tiny: tiny, plan: p, env: withoutEnv(os.Environ(), helperEnv)}
	return b, svinit, cleanup, nil
}

// placeSvinit puts the svinit to measure into dir, built from root or copied from -svinit,
// and svinit-net beside it when there is one, where svinit looks for its helper: from
// -svinit-net, from beside -svinit, or built from ./cmd/svinit-net when the tree has it.
func placeSvinit(o options, root, dir string, log zerolog.Logger) (string, error) {
	svinit, helper := filepath.Join(dir, "svinit"), filepath.Join(dir, "svinit-net")
	if o.svinit == "" {
		if err := build(root, "./cmd/svinit", svinit, log); err != nil {
			return "", err
		}
	} else if err := copyFile(o.svinit, svinit); err != nil {
		return "", err
	}
	nextTo := filepath.Join(filepath.Dir(o.svinit), "svinit-net")
	switch {
	case o.svinitNet != "":
		return svinit, copyFile(o.svinitNet, helper)
	case o.svinit != "" && exists(nextTo):
		return svinit, copyFile(nextTo, helper)
	case o.svinit == "" && exists(filepath.Join(root, "cmd", "svinit-net")):
		return svinit, build(root, "./cmd/svinit-net", helper, log)
	}
	return svinit, nil
}

// baselineBinary returns the earlier svinit to compare with: rev itself when it is a
// file, else svinit built from that git revision of the repository at root.
func baselineBinary(rev, root, dir string, log zerolog.Logger) (string, error) {
	if exists(rev) {
		return rev, nil
	}
	if root == "" {
		return "", fmt.Errorf("-baseline %s: no such file, and not inside the repository to build it from", rev)
	}
	src, tar := filepath.Join(dir, "baseline-src"), filepath.Join(dir, "baseline.tar")
	for _, argv := range [][]string{
		{"git", "-C", root, "archive", "--format=tar", "-o", tar, rev},
		{"mkdir", src},
		{"tar", "-xf", tar, "-C", src},
	} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("-baseline %s: %s: %w: %s", rev, argv[0], err, tail(out))
		}
	}
	before := filepath.Join(dir, "svinit-before")
	return before, build(src, "./cmd/svinit", before, log)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// copyFile hard-links src to dst, or copies it where it cannot. Not in one write(2): a
// file written so sits in the page cache in large folios, and a page fault then maps a
// whole folio, which added 1 MiB to svinit's resident memory.
func copyFile(src, dst string) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if _, err := io.Copy(out, in); err != nil { // copy_file_range, as cp does
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// build builds the main package pkg of the module at root into dst, as svinit ships:
// static, stripped, without build paths.
func build(root, pkg, dst string, log zerolog.Logger) error {
	t := time.Now()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=bench", "-o", dst, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w: %s", pkg, err, tail(out))
	}
	log.Info().Str("package", pkg).Str("binary", filepath.Base(dst)).Str("took", time.Since(t).Round(time.Millisecond).String()).Msg("built")
	return nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the svinit module: run from the repository root (bench/run, or go run ./bench)")
	}
	return filepath.Dir(gomod), nil
}

// notes explain the table: how each spread is taken, the versions, the machine.
func (b *bench) notes() []string {
	var n []string
	n = append(n, "cells: median [spread]; the spread is min–max over runs, except start-up (p10–p90 of single runs, less /bin/true's median); ÷ is svinit's median over the peer's")
	n = append(n, fmt.Sprintf("runs: start-up %d per init, memory %d, signal round trips %d runs × %d rounds per placement (timeout %s a round), orphan storm %d × %d orphans, stop %d, lock %d per mode (bash loop %d graceful)",
		b.plan.startRuns, b.plan.memRuns, b.plan.rttRuns, b.plan.rttRounds, rttTimeout, b.plan.stormRuns, b.plan.orphans, b.plan.stopRuns, b.plan.lockRuns, b.plan.bashRuns))
	n = append(n, "memory, round trips, orphan storm and stop run the init as PID 1 of a new PID namespace (unshare --pid --fork --mount-proc); start-up runs it as a plain child (svinit, the minimal Go init and catatonit make themselves subreapers, tini only warns, dumb-init does neither)")
	n = append(n, "memory: VmHWM and RssAnon from /proc/PID/status, PSS from /proc/PID/smaps_rollup, 100 ms after the child exec'd sleep; \"license configured\" is svinit with "+strings.Join(licenseOpts, " ")+" (activated, no lease to renew), beside the other inits' figures of the same runs")
	n = append(n, "round trips: \"1 CPU\" pins the init and the helper to CPU 0, \"2 CPUs\" pins the init to CPU 0 and the helper to CPU 1; left to the scheduler, each run would be all fast or all slow by placement luck")
	n = append(n, "min Go init: bench/mininit, built in this run exactly as svinit (CGO_ENABLED=0, -trimpath, -ldflags \"-s -w\"), standard library and golang.org/x/sys only: it catches the signals svinit forwards, the same way, starts the child, forwards, reaps every child and exits with the child's status; what separates it from tini is the Go runtime, what separates svinit from it is all svinit links and does")
	if b.baseline != "" {
		n = append(n, "svinit before: "+b.baseline+", the svinit the round trip and stop latency must be no worse than (its worst run)")
	} else {
		n = append(n, "round trip and stop latency: no verdict without -baseline (the svinit they must be no worse than)")
	}
	n = append(n, "dumb-init runs in its default mode (setsid, signals to the child's process group: here the group is the helper alone)")
	n = append(n, fmt.Sprintf("helper: svinit-net run by the bench with the environment PID 1 gives it, against the bench's Keygen Relay on 127.0.0.1 (leases of 60 s): wall from fork to wait4, CPU its user + sys, p10–p90 over %d rounds of every call; \"PID 1 until its child runs\": svinit as PID 1 with sleep 60, from starting unshare until sleep runs, with %s (svinit-net check and activate first) or no license, p10–p90 over %d starts each, CPU PID 1's own (schedstat of its threads); heartbeat growth: leases of %s (a heartbeat every %s), RssAnon and VmHWM once the relay has answered the first heartbeat and PID 1 has reaped its helper, and again %d heartbeats later, min–max over %d runs",
		b.plan.netRuns, strings.Join(relayOpts("URL"), " "), b.plan.pid1Runs, beatTTL, beatTTL/3, b.plan.beats, b.plan.beatRuns))
	n = append(n, "lock handoff: from the holder's child ending (graceful) or the holder and its child being SIGKILLed, to the waiter's child running; the bash loop is the SV Server document's (sleep 1, 60 tries)")
	if info, err := inspectBinary("/usr/bin/tini-static"); err == nil {
		n = append(n, fmt.Sprintf("Debian's tini is dynamically linked; its static build, /usr/bin/tini-static, is %s", format(kindBytes, float64(info.size))))
	}
	var vers []string
	for _, p := range b.inits {
		vers = append(vers, p.name+" "+version(p))
	}
	n = append(n, "versions: "+strings.Join(vers, "; "))
	host, _ := os.Hostname()
	n = append(n, fmt.Sprintf("machine: %s, %d CPUs, %s, kernel %s, %s", host, runtime.NumCPU(), cpuModel(), kernel(), runtime.Version()))
	return n
}

func version(p initProg) string {
	if info, err := buildinfo.ReadFile(p.path); err == nil {
		v := map[string]string{}
		for _, s := range info.Settings {
			v[s.Key] = s.Value
		}
		rev := v["vcs.revision"]
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if v["vcs.modified"] == "true" {
			rev += "+dirty"
		}
		if rev == "" {
			rev = "(working tree)"
		}
		return rev + " " + info.GoVersion
	}
	// tini and catatonit (which derives from it) say "tini version X", dumb-init "dumb-init vX".
	out, _ := exec.Command(p.path, "--version").CombinedOutput()
	fields := strings.Fields(string(out))
	if len(fields) == 0 {
		return "?"
	}
	return fields[len(fields)-1]
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// writeResults writes results.md and results.svg into dir.
func writeResults(dir string, rows []*row, notes []string, took time.Duration) error {
	var md bytes.Buffer
	fmt.Fprintf(&md, "# svinit benchmark results\n\n")
	fmt.Fprintf(&md, "Written by `bench/run` on %s (took %s). Regenerate with `bench/run` from the repository root.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), took.Round(time.Second))
	fmt.Fprintf(&md, "![svinit against tini](results.svg)\n\n")
	writeMarkdown(&md, rows)
	md.WriteString("\n")
	for _, n := range notes {
		md.WriteString("- " + n + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), md.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	var svg bytes.Buffer
	if err := writeSVG(&svg, rows, "svinit against tini and the bash lock loop"); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.svg"), svg.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}
