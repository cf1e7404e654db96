// Command bench measures uc's speed and prints one table per measurement:
//
//  1. spec write → reconcile latency on the embedded state,
//  2. `uc apply` of a 200-service Compose file, beside `docker compose config`,
//  3. idle CPU and memory of ucd holding 10,000 image specs,
//  4. build and pre-pull of the hello project on two real nodes (BuildKit,
//     two Docker Engines from hack/up.sh), beside the same work by hand,
//  5. build and pre-pull of a generated 10-service project on the same
//     nodes (section build10), beside a scripted buildctl + docker pull loop,
//  6. GC of an in-process registry holding unreferenced and referenced
//     images while a client pushes (section gc), beside distribution's
//     offline storage.MarkAndSweep on a copy of the same storage,
//  7. registry failover: the managed registry's node dies; the time until
//     another node serves it and every built image is pullable again,
//  8. pre-pull of a 50 MB image onto three nodes (section prepull): the time
//     until present on all three engines, beside `docker pull` on each
//     engine in sequence and the single-engine pull (the limit),
//  9. an idle three-node cluster holding 1,000 image specs (section
//     prepullidle): each ucd's CPU and the requests reaching the state and
//     the engines (with -before, also for uc as of that commit),
//  10. the state requests of a 50-service project, from uc apply until every
//     image is built once and present on three nodes (section applystate),
//     for this checkout and for uc as of -before,
//  11. a 12-image tree built cold, then after a leaf and a base change,
//  12. where builds come from and go (section sources): a pushed commit →
//     present on both nodes for a followed branch and a sync, by polling
//     and by webhook, beside a CI runner; uc build's bytes into the cluster
//     beside docker push and docker save; uc images publish of 10 images
//     beside skopeo copy.
//
// Run it as `go run ./test/bench [-quick] [-before REF] [-only latency,apply,idle,build,build10,gc,failover,prepull,prepullidle,applystate]`
// from the module. Numbers are
// measured on this machine, never asserted: there are no thresholds. Tables
// go to stdout; progress and child-process logs go to stderr or temp files.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ucplane/uc/test/harness"
)

// cacheBase is main just before controllers read through the state cache
// (issue 12): -before's default, so that make bench shows the state
// request rates before and after that change side by side.
const cacheBase = "7f18157"

// config sizes every measurement; -quick shrinks it for a fast check.
type config struct {
	before      string        // git commit to measure beside this checkout (prepullidle)
	specs       int           // measurement 1: image specs updated one by one
	maxPause    time.Duration // measurement 1: random pause between writes
	services    int           // measurement 2: Compose services
	reps        int           // measurement 2: repetitions of each timing
	idleSpecs   int           // measurement 3: image specs ucd holds
	idleWindow  time.Duration // measurement 3: CPU sampling window
	idleSettle  time.Duration // measurement 3: quiet time before sampling
	txRows      int           // measurement 3: rows per insert transaction
	composeWait time.Duration // how long building the compose peer may take
	buildReps   int           // measurements 4 and 5: repetitions of each case
	gcUnref     int           // measurement 6: unreferenced images the sweep removes
	gcRef       int           // measurement 6: referenced images it keeps
	gcGrace     time.Duration // measurement 6: KeepSet.Grace
	gcAround    time.Duration // measurement 6: the client pushes alone before and after the sweep
}

func configFor(quick bool) config {
	c := config{
		specs: 500, maxPause: 5 * time.Millisecond,
		services: 200, reps: 5,
		idleSpecs: 10000, idleWindow: 60 * time.Second, idleSettle: 3 * time.Second, txRows: 500,
		composeWait: 8 * time.Minute,
		buildReps:   3,
		gcUnref:     1000, gcRef: 100, gcGrace: 2 * time.Second, gcAround: time.Second,
	}
	if quick {
		c.specs, c.reps, c.idleWindow, c.buildReps = 100, 3, 10*time.Second, 1
		c.gcUnref, c.gcRef = 200, 20
	}
	return c
}

// quietLog keeps the in-process controller and state from drowning the
// tables: only warnings and errors reach stderr.
var quietLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func main() {
	quick := flag.Bool("quick", false, "smaller sizes and shorter windows")
	before := flag.String("before", cacheBase, "git commit whose uc and ucd the state-request section (prepullidle) also runs, side by side (\"\": none)")
	flag.BoolVar(&keepWork, "keep", false, "keep the work directory (ucd logs, state) and print where it is")
	only := flag.String("only", strings.Join(sectionNames, ","), "comma-separated sections to run: "+strings.Join(sectionNames, ", "))
	flag.Parse()
	harness.Progress = progress
	sections, err := parseSections(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cfg := configFor(*quick)
	cfg.before = *before
	err = run(ctx, cfg, sections)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// sectionNames are the measurements' names, in the order they run.
var sectionNames = func() []string {
	var names []string
	for _, m := range measurements {
		names = append(names, m.name)
	}
	return names
}()

// parseSections reads -only: a comma list of section names.
func parseSections(list string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(sectionNames, name) {
			return nil, fmt.Errorf("-only: unknown section %q (want some of %s)", name, strings.Join(sectionNames, ","))
		}
		out[name] = true
	}
	if len(out) == 0 {
		return nil, errors.New("-only: no section named")
	}
	return out, nil
}

// keepWork keeps the work directories for a look at ucd's logs.
var keepWork bool

func removeWork(dir string) {
	if keepWork {
		progress("kept %s", dir)
		return
	}
	os.RemoveAll(dir)
}

func run(ctx context.Context, cfg config, sections map[string]bool) error {
	work, err := os.MkdirTemp("", "uc-bench-")
	if err != nil {
		return err
	}
	defer removeWork(work)
	bins, err := buildBinaries(ctx, filepath.Join(work, "bin"))
	if err != nil {
		return err
	}
	r := &rig{cfg: cfg, bins: bins, work: work}
	for _, m := range measurements {
		if !sections[m.name] {
			continue
		}
		if err := m.run(ctx, r); err != nil {
			return fmt.Errorf("%s: %w", m.what, err)
		}
	}
	r.sum.print(cfg)
	printMachine()
	return nil
}

// A section is one measurement: its -only name, what its errors say was
// measured, and how it runs: run says what it starts, measures, prints
// the table and keeps it for the summary.
type section struct {
	name, what string
	run        func(context.Context, *rig) error
}

// rig is what every measurement runs with, and the summary they fill.
type rig struct {
	cfg  config
	bins binaries
	work string // each measurement works in a directory of its own below it
	sum  summary
}

func (r *rig) dir(name string) string { return filepath.Join(r.work, name) }

// measurements are the sections in the order they run.
var measurements = []section{
	{"latency", "write → reconcile latency", func(ctx context.Context, r *rig) error {
		progress("measurement 1: write → reconcile latency, %d specs", r.cfg.specs)
		return keep(&r.sum.latency, func(l latencyResult) { l.print(r.cfg) })(benchLatency(ctx, r.cfg, r.dir("latency")))
	}},
	{"apply", "uc apply", func(ctx context.Context, r *rig) error {
		pr := findPeer(ctx, r.cfg) // its own progress lines come first, as they did
		progress("measurement 2: uc apply of %d services, %d repetitions", r.cfg.services, r.cfg.reps)
		return keep(&r.sum.apply, func(a applyResult) { a.print(r.cfg) })(benchApply(ctx, r.cfg, r.bins, pr, r.dir("apply")))
	}},
	{"idle", "idle ucd", func(ctx context.Context, r *rig) error {
		progress("measurement 3: idle ucd with %d image specs, %s windows", r.cfg.idleSpecs, r.cfg.idleWindow)
		return keep(&r.sum.idle, func(i idleResult) { i.print(r.cfg) })(benchIdle(ctx, r.cfg, r.bins, r.dir("idle")))
	}},
	{"build", "build and pre-pull", func(ctx context.Context, r *rig) error {
		progress("measurement 4: build and pre-pull of the hello project, %d repetitions", r.cfg.buildReps)
		return keep(&r.sum.build, buildResult.print)(benchBuild(ctx, r.cfg, r.bins, r.dir("build")))
	}},
	{"build10", fmt.Sprintf("build and pre-pull of %d services", build10Services), func(ctx context.Context, r *rig) error {
		progress("measurement 5: build and pre-pull of a %d-service project, %d repetitions", build10Services, r.cfg.buildReps)
		return keep(&r.sum.build10, build10Result.print)(benchBuild10(ctx, r.cfg, r.bins, r.dir("build10")))
	}},
	{"gc", "registry GC", func(ctx context.Context, r *rig) error {
		progress("measurement 6: registry GC of %d unreferenced and %d referenced images while a client pushes", r.cfg.gcUnref, r.cfg.gcRef)
		return keep(&r.sum.gc, gcResult.print)(benchGC(ctx, r.cfg, r.dir("gc")))
	}},
	{"failover", "registry failover", func(ctx context.Context, r *rig) error {
		return runFailover(ctx, r.bins, r.work, &r.sum)
	}},
	{"prepull", fmt.Sprintf("pre-pull onto %d engines", prepullNodes), func(ctx context.Context, r *rig) error {
		progress("measurement 8: pre-pull of a %d MiB image onto %d engines, %d repetitions", prepullBlobSize>>20, prepullNodes, r.cfg.buildReps)
		return keep(&r.sum.prepull, prepullResult.print)(benchPrepull(ctx, r.cfg, r.bins, r.dir("prepull")))
	}},
	{"prepullidle", fmt.Sprintf("idle cluster with %d image specs", prepullIdleSpecs), func(ctx context.Context, r *rig) error {
		return runPrepullIdleBeside(ctx, r.cfg, r.bins, r.work, &r.sum)
	}},
	{"applystate", fmt.Sprintf("state requests of a %d-service apply", applyStateServices), func(ctx context.Context, r *rig) error {
		return runApplyState(ctx, r.cfg, r.bins, r.work, &r.sum)
	}},
	{"tree", "a 12-image tree", func(ctx context.Context, r *rig) error {
		progress("measurement 11: a 12-image tree built cold, then after a leaf and a base change")
		return keep(&r.sum.tree, treeResult.print)(benchTree(ctx, r.bins, r.dir("tree")))
	}},
	{"sources", "where builds come from and go", func(ctx context.Context, r *rig) error {
		progress("measurement 12: pushed commit → present (follow, sync, webhook), uc build's bytes, publishing 10 images")
		return keep(&r.sum.sources, sourcesResult.print)(benchSources(ctx, r.bins, r.dir("sources")))
	}},
}

// keep returns what finishes a measurement: called with the measurement's
// result and error, as in keep(&sum.x, print)(benchX(…)), it prints the
// table of a result and keeps it for the summary, or returns the error.
func keep[R any](slot **R, print func(R)) func(R, error) error {
	return func(res R, err error) error {
		if err != nil {
			return err
		}
		print(res)
		*slot = &res
		return nil
	}
}

// progress reports what the bench is doing on stderr, so stdout holds
// only the tables.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
