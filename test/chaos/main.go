// Command chaos runs uc on the hack infrastructure (hack/up.sh: Docker
// Engines, buildkitd, a base registry) and strikes it with faults: ucd
// killed in the middle of a build, a pull, a GC sweep and a context
// upload; the state server killed; a silent stream cut and lost
// subscriptions between ucd and the state; the registry's node killed; a
// builder whose disk is full; the state API unreachable for 30 s. After
// each fault is healed it waits, within a bound, for every build to be
// built with its digest in the registry and every image to be present on
// every node it names, and prints one table:
//
//	fault | survived | builds lost | images lost | time to converge
//
// Run it as root (it mounts tmpfs data dirs): go run ./test/chaos [-quick].
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ucplane/uc/test/harness"
)

// convergeWithin bounds how long a healed fault may take to converge;
// past it, what has not converged is lost. The time to converge counts
// from the moment the fault struck.
const convergeWithin = 4 * time.Minute

type result struct {
	fault              string
	survived           bool
	buildsLost, images int
	converge           time.Duration
	note               string
}

func main() {
	quick := flag.Bool("quick", false, "run only the quick subset (the CI run)")
	only := flag.String("only", "", "run only the faults whose name contains this")
	keep := flag.Bool("keep", false, "keep the work directory (logs, projects)")
	flag.Parse()
	harness.Progress = progress
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, *quick, *only, *keep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "chaos: %s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, quick bool, only string, keep bool) (bool, error) {
	start := time.Now()
	work, err := os.MkdirTemp("", "uc-chaos-")
	if err != nil {
		return false, err
	}
	if !keep {
		defer os.RemoveAll(work)
	}
	bins, err := harness.BuildBinaries(ctx, filepath.Join(work, "bin"))
	if err != nil {
		return false, err
	}
	env, err := bringUp(ctx, filepath.Join(work, "up.log"))
	if err != nil {
		return false, err
	}
	progress("starting the state server, the proxies and 2 ucd nodes in %s", work)
	c, err := startCluster(ctx, bins, env, work)
	if err != nil {
		return false, err
	}
	defer c.cleanup()
	var results []result
	for i, f := range faults {
		if (quick && !f.quick) || (only != "" && !strings.Contains(f.name, only)) {
			continue
		}
		r := c.runFault(ctx, f, fmt.Sprintf("chaos%d", i))
		progress("%s: survived=%v lost %d builds, %d images, converged in %s (%s)", r.fault, r.survived, r.buildsLost, r.images,
			r.converge.Round(100*time.Millisecond), r.note)
		results = append(results, r)
		if ctx.Err() != nil {
			break
		}
	}
	printTable(results)
	if out, err := c.uc(ctx, "", "registry", "status"); err == nil {
		fmt.Printf("\nuc registry status, after the faults:\n%s", out)
	}
	fmt.Printf("\n%d faults in %s (logs: %s%s)\n", len(results), time.Since(start).Round(time.Second), work,
		map[bool]string{true: "", false: ", removed; -keep keeps them"}[keep])
	for _, r := range results {
		if !r.survived {
			return false, nil
		}
	}
	return true, nil
}

// runFault strikes one fault and waits for the project to converge.
func (c *cluster) runFault(ctx context.Context, f fault, name string) result {
	r := result{fault: f.name}
	if err := c.waitHealthy(ctx, 2*time.Minute); err != nil {
		r.note = "cluster not healthy before the fault: " + err.Error()
		return r
	}
	p, err := writeProject(c.dir, name, f.opts)
	if err != nil {
		r.note = err.Error()
		return r
	}
	progress("%s: project %s", f.name, name)
	c.struck = time.Now()
	r.note, err = f.inject(ctx, c, p)
	if err != nil {
		r.note = strings.TrimPrefix(r.note+"; ", "; ") + "fault not injected: " + firstLineOf(err.Error())
	}
	var l losses
	werr := waitUntil(ctx, convergeWithin, func() error {
		var err error
		l, err = c.check(ctx, p)
		if err != nil {
			l = losses{builds: len(p.services), images: len(p.services), why: []string{err.Error()}}
			return err
		}
		return l.err()
	})
	r.converge = time.Since(c.struck)
	r.buildsLost, r.images = l.builds, l.images
	r.survived = werr == nil && err == nil
	if werr != nil {
		r.note += "; not converged: " + firstLineOf(werr.Error())
	}
	return r
}

func printTable(results []result) {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "FAULT\tSURVIVED\tBUILDS LOST\tIMAGES LOST\tTIME TO CONVERGE\tNOTES")
	for _, r := range results {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\n", r.fault, map[bool]string{true: "yes", false: "NO"}[r.survived],
			r.buildsLost, r.images, r.converge.Round(100*time.Millisecond), r.note)
	}
	w.Flush()
}

// bringUp runs hack/up.sh (idempotent) and reads its env file.
func bringUp(ctx context.Context, logPath string) (map[string]string, error) {
	root, err := harness.ModuleRoot(ctx)
	if err != nil {
		return nil, err
	}
	progress("running hack/up.sh (log: %s)", logPath)
	out, err := exec.CommandContext(ctx, filepath.Join(root, "hack", "up.sh")).CombinedOutput()
	_ = os.WriteFile(logPath, out, 0o644)
	if err != nil {
		return nil, fmt.Errorf("hack/up.sh: %w: %s", err, harness.LastLines(string(out), 3))
	}
	return harness.ReadEnvFile(filepath.Join(envOr("UC_RUN_DIR", "/run/uc-hack"), "env"))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
