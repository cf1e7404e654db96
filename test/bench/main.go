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
//     for this checkout and for uc as of -before.
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

// sectionNames are the measurements in the order they run.
var sectionNames = []string{"latency", "apply", "idle", "build", "build10", "gc", "failover", "prepull", "prepullidle", "applystate"}

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

func run(ctx context.Context, cfg config, sections map[string]bool) error {
	work, err := os.MkdirTemp("", "uc-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bins, err := buildBinaries(ctx, filepath.Join(work, "bin"))
	if err != nil {
		return err
	}
	var sum summary
	if sections["latency"] {
		if err := runLatency(ctx, cfg, work, &sum); err != nil {
			return fmt.Errorf("write → reconcile latency: %w", err)
		}
	}
	if sections["apply"] {
		if err := runApply(ctx, cfg, bins, work, &sum); err != nil {
			return fmt.Errorf("uc apply: %w", err)
		}
	}
	if sections["idle"] {
		if err := runIdle(ctx, cfg, bins, work, &sum); err != nil {
			return fmt.Errorf("idle ucd: %w", err)
		}
	}
	if sections["build"] {
		if err := runBuild(ctx, cfg, bins, work, &sum); err != nil {
			return fmt.Errorf("build and pre-pull: %w", err)
		}
	}
	if sections["build10"] {
		if err := runBuild10(ctx, cfg, bins, work, &sum); err != nil {
			return fmt.Errorf("build and pre-pull of %d services: %w", build10Services, err)
		}
	}
	if sections["gc"] {
		if err := runGC(ctx, cfg, work, &sum); err != nil {
			return fmt.Errorf("registry GC: %w", err)
		}
	}
	if sections["failover"] {
		if err := runFailover(ctx, bins, work, &sum); err != nil {
			return fmt.Errorf("registry failover: %w", err)
		}
	}
	if sections["prepull"] {
		if err := runPrepull(ctx, cfg, bins, work, &sum); err != nil {
			return fmt.Errorf("pre-pull onto %d engines: %w", prepullNodes, err)
		}
	}
	if sections["prepullidle"] {
		if err := runPrepullIdleBeside(ctx, cfg, bins, work, &sum); err != nil {
			return fmt.Errorf("idle cluster with %d image specs: %w", prepullIdleSpecs, err)
		}
	}
	if sections["applystate"] {
		if err := runApplyState(ctx, cfg, bins, work, &sum); err != nil {
			return fmt.Errorf("state requests of a %d-service apply: %w", applyStateServices, err)
		}
	}
	sum.print(cfg)
	printMachine()
	return nil
}

func runLatency(ctx context.Context, cfg config, work string, sum *summary) error {
	progress("measurement 1: write → reconcile latency, %d specs", cfg.specs)
	res, err := benchLatency(ctx, cfg, filepath.Join(work, "latency"))
	if err != nil {
		return err
	}
	res.print(cfg)
	sum.latency = &res
	return nil
}

func runApply(ctx context.Context, cfg config, bins binaries, work string, sum *summary) error {
	pr := findPeer(ctx, cfg)
	progress("measurement 2: uc apply of %d services, %d repetitions", cfg.services, cfg.reps)
	res, err := benchApply(ctx, cfg, bins, pr, filepath.Join(work, "apply"))
	if err != nil {
		return err
	}
	res.print(cfg)
	sum.apply = &res
	return nil
}

func runIdle(ctx context.Context, cfg config, bins binaries, work string, sum *summary) error {
	progress("measurement 3: idle ucd with %d image specs, %s windows", cfg.idleSpecs, cfg.idleWindow)
	res, err := benchIdle(ctx, cfg, bins, filepath.Join(work, "idle"))
	if err != nil {
		return err
	}
	res.print(cfg)
	sum.idle = &res
	return nil
}

// progress reports what the bench is doing on stderr, so stdout holds
// only the tables.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
