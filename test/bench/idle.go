package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ucplane/uc/state/corrosion"
	"github.com/ucplane/uc/state/statetest"
)

// idleRow is one CPU sampling window of ucd.
type idleRow struct {
	label   string
	window  time.Duration
	cpuSec  float64
	pct     float64 // of one core
	schedMs float64 // on-CPU time from schedstat, finer than ticks
	rssKB   int64
	hwmKB   int64 // peak RSS so far
	changes int64 // change events the bench's subscription got in the window
}

type idleResult struct {
	rows  []idleRow
	hz    int64
	specs int
}

// subCounter counts what the bench's own subscription receives.
type subCounter struct {
	snapshotRows atomic.Int64
	changes      atomic.Int64
}

// benchIdle samples ucd's CPU twice: with an empty state (what a node costs
// by itself: heartbeats) and holding many image specs with a subscription
// open on them, as a prepull controller would keep one.
func benchIdle(ctx context.Context, cfg config, bins binaries, dir string) (idleResult, error) {
	d, err := startDaemon(ctx, bins, filepath.Join(dir, "data"))
	if err != nil {
		return idleResult{}, err
	}
	defer d.stop()
	if err := d.waitNodeListed(ctx, bins); err != nil {
		return idleResult{}, err
	}
	res := idleResult{hz: clockTicks(), specs: cfg.idleSpecs}
	var subs subCounter
	empty, err := res.sample(ctx, cfg, d, "no image specs, no bench subscription", &subs)
	if err != nil {
		return res, err
	}
	res.rows = append(res.rows, empty)
	if err := insertSpecs(ctx, d.store.Client(), cfg.idleSpecs, cfg.txRows); err != nil {
		return res, err
	}
	stopWatch := countingWatch(ctx, d.store.Client(), &subs)
	defer stopWatch()
	if err := waitUntil(ctx, 60*time.Second, func() bool { return subs.snapshotRows.Load() == int64(cfg.idleSpecs) }); err != nil {
		return res, fmt.Errorf("subscription snapshot of %d rows: %w", cfg.idleSpecs, err)
	}
	full, err := res.sample(ctx, cfg, d, fmt.Sprintf("%d image specs, 1 subscription open", cfg.idleSpecs), &subs)
	if err != nil {
		return res, err
	}
	res.rows = append(res.rows, full)
	return res, d.proc.Exited()
}

// insertSpecs writes n image specs in transactions of txRows rows.
func insertSpecs(ctx context.Context, c *corrosion.Client, n, txRows int) error {
	names := specNames(n)
	for i := 0; i < n; i += txRows {
		batch := names[i:min(i+txRows, n)]
		stmts := make([]corrosion.Statement, len(batch))
		for j, name := range batch {
			stmts[j] = insertStmt(name)
		}
		if _, err := c.Exec(ctx, stmts...); err != nil {
			return fmt.Errorf("insert specs %d..%d: %w", i, i+len(batch)-1, err)
		}
	}
	return nil
}

// countingWatch keeps one subscription open until stopped.
func countingWatch(ctx context.Context, c *corrosion.Client, subs *subCounter) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = c.Watch(ctx, statetest.ImageGenerations, corrosion.WatchOptions{Logger: quietLog}, func(ev corrosion.WatchEvent) error {
			if ev.Snapshot {
				subs.snapshotRows.Store(int64(len(ev.Rows)))
			} else {
				subs.changes.Add(1)
			}
			return nil
		})
	})
	return func() { cancel(); wg.Wait() }
}

// sample lets ucd settle, then reads its CPU ticks at both ends of the
// window and its memory at the end.
func (r idleResult) sample(ctx context.Context, cfg config, d *daemon, label string, subs *subCounter) (idleRow, error) {
	if !sleepCtx(ctx, cfg.idleSettle) {
		return idleRow{}, ctx.Err()
	}
	pid := d.proc.Pid()
	progress("sampling ucd (pid %d) for %s: %s", pid, cfg.idleWindow, label)
	t0, err := cpuTicks(pid)
	if err != nil {
		return idleRow{}, err
	}
	n0, err := schedNanos(pid)
	if err != nil {
		return idleRow{}, err
	}
	c0, start := subs.changes.Load(), time.Now()
	if !sleepCtx(ctx, cfg.idleWindow) {
		return idleRow{}, ctx.Err()
	}
	t1, err1 := cpuTicks(pid)
	n1, err2 := schedNanos(pid)
	if err := errors.Join(err1, err2); err != nil {
		return idleRow{}, fmt.Errorf("%w (%v)", err, d.proc.Exited())
	}
	window := time.Since(start)
	row := idleRow{label: label, window: window, changes: subs.changes.Load() - c0}
	row.cpuSec = float64(t1-t0) / float64(r.hz)
	row.schedMs = float64(n1-n0) / 1e6
	row.pct = 100 * row.cpuSec / window.Seconds()
	if row.rssKB, err = statusKB(pid, "VmRSS"); err != nil {
		return row, err
	}
	row.hwmKB, err = statusKB(pid, "VmHWM")
	return row, err
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (r idleResult) print(cfg config) {
	t := newTable(fmt.Sprintf("3. Idle ucd run (embedded state), CPU over a %s window after %s settling; /proc/PID/stat at %d Hz",
		cfg.idleWindow, cfg.idleSettle, r.hz),
		"state", "window (s)", "utime+stime (s)", "CPU (% of 1 core)", "on-CPU (ms, schedstat)",
		"RSS (MiB)", "peak RSS (MiB)", "sub changes in window")
	for _, row := range r.rows {
		t.row(row.label, fmt.Sprintf("%.1f", row.window.Seconds()), fmt.Sprintf("%.2f", row.cpuSec),
			fmt.Sprintf("%.3f", row.pct), fmt.Sprintf("%.1f", row.schedMs),
			mib(row.rssKB), mib(row.hwmKB), fmt.Sprint(row.changes))
	}
	t.flush()
	note("utime+stime has one-tick resolution (%.0f ms); schedstat sums every thread's run time in ns", 1000/float64(r.hz))
	note("ucd heartbeats its node row every 5 s in both windows; HTTP requests served are not counted (ucd has no counter)")
}

func mib(kb int64) string { return fmt.Sprintf("%.1f", float64(kb)/1024) }
