package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// dist summarizes a set of durations.
type dist struct {
	n                  int
	min, p50, p99, max time.Duration
	mean               time.Duration
}

// summarize uses nearest-rank percentiles: with 100 samples p99 is the
// second largest, so it is a real observation, never an interpolation.
func summarize(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var total time.Duration
	for _, d := range s {
		total += d
	}
	return dist{
		n: len(s), min: s[0], max: s[len(s)-1], mean: total / time.Duration(len(s)),
		p50: percentile(s, 50), p99: percentile(s, 99),
	}
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}

// ms prints a duration in milliseconds with enough digits for sub-ms values.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond))
}

// table is an aligned plain-text table with a title line.
type table struct{ w *tabwriter.Writer }

func newTable(title string, header ...string) table {
	fmt.Println()
	fmt.Println(title)
	t := table{w: tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t table) row(cells ...string) {
	fmt.Fprintln(t.w, "  "+strings.Join(cells, "\t"))
}

func (t table) flush() { _ = t.w.Flush() }

// note prints a line under a table, e.g. what a column means.
func note(format string, args ...any) { fmt.Printf("  "+format+"\n", args...) }

// summary collects the headline numbers of every measurement.
type summary struct {
	latency  *latencyResult
	apply    *applyResult
	idle     *idleResult
	build    *buildResult
	build10  *build10Result
	gc       *gcResult
	failover *failoverResult

	prepull     *prepullResult
	prepullIdle *prepullIdleResult
	applyState  *applyStateResult
	tree        *treeResult
	sources     *sourcesResult
}

func (s summary) print(cfg config) {
	t := newTable("Summary", "measurement", "value")
	if l := s.latency; l != nil {
		t.row("write ack → reconcile p50 / p99 (ms)", ms(l.toReconcile.p50)+" / "+ms(l.toReconcile.p99))
		t.row("  the same before the state cache", ms(l.beforeToReconcile.p50)+" / "+ms(l.beforeToReconcile.p99))
	}
	if a := s.apply; a != nil {
		a.summaryRows(t)
	}
	if i := s.idle; i != nil && len(i.rows) > 0 {
		r := i.rows[len(i.rows)-1]
		t.row(fmt.Sprintf("ucd idle CPU, %d specs (%% of one core)", cfg.idleSpecs),
			fmt.Sprintf("%.3f (schedstat: %.1f ms in %.0f s)", r.pct, r.schedMs, r.window.Seconds()))
		t.row(fmt.Sprintf("ucd RSS, %d specs (MiB)", cfg.idleSpecs), fmt.Sprintf("%.1f", float64(r.rssKB)/1024))
	}
	if b := s.build; b != nil {
		b.summaryRows(t)
	}
	if b := s.build10; b != nil {
		b.summaryRows(t)
	}
	if g := s.gc; g != nil {
		g.summaryRows(t)
	}
	if f := s.failover; f != nil {
		f.summaryRows(t)
	}
	if p := s.prepull; p != nil {
		p.summaryRows(t)
	}
	if p := s.prepullIdle; p != nil {
		p.summaryRows(t)
	}
	if a := s.applyState; a != nil && a.skipped == "" {
		t.row(fmt.Sprintf("%d-service apply, build and pre-pull: state requests node2 / node3 / uc", applyStateServices),
			fmt.Sprintf("%d / %d / %d in %s", a.node2.total(), a.node3.total(), a.cli.total(), a.took.Round(time.Millisecond)))
	}
	if tr := s.tree; tr != nil && tr.skipped == "" {
		t.row(fmt.Sprintf("%d-image tree cold: uc / critical path / prefix-order buildctl / Bake-style buildctl", tr.of),
			fmt.Sprintf("%s / %s / %s / %s", tr.ucWall.Round(time.Millisecond), tr.critical.Round(time.Millisecond),
				tr.sequential.Round(time.Millisecond), tr.parallel.Round(time.Millisecond)))
	}
	t.flush()
}

func printMachine() {
	fmt.Printf("\nmachine: nproc=%d, %s %s/%s, cpu=%q\n", runtime.NumCPU(), runtime.Version(),
		runtime.GOOS, runtime.GOARCH, cpuModel())
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
