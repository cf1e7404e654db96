package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/corrosion"
	"github.com/ucplane/uc/state/embedded"
	"github.com/ucplane/uc/state/statetest"
)

// benchWorkers is the reconcile worker count, as a real controller might
// run; it is printed with the table.
const benchWorkers = 4

type latencyResult struct {
	n                int
	write            dist // Exec start → ack
	startToEvent     dist // Exec start → raw subscription change event
	startToReconcile dist // Exec start → reconciler read the new generation
	toEvent          dist // ack → change event
	toReconcile      dist // ack → reconciler read the new generation (headline)
	eventToReconcile dist // change event → reconciler read it
	missedEvent      int
	missedReconcile  int
	negEvent         int // events that arrived before the writer had its ack
	negRecon         int
	// The same updates through a controller fed and read as before the
	// state cache: a subscription of its own and a state API read per key.
	beforeToReconcile dist
	missedBefore      int
}

// seen records when a (name, generation) was first observed.
type seen struct {
	mu sync.Mutex
	at map[string]time.Time
}

func newSeen() *seen { return &seen{at: map[string]time.Time{}} }

func genKey(name string, gen int64) string { return fmt.Sprintf("%s@%d", name, gen) }

func (s *seen) mark(name string, gen int64, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.at[genKey(name, gen)]; !ok {
		s.at[genKey(name, gen)] = t
	}
}

func (s *seen) get(name string, gen int64) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.at[genKey(name, gen)]
	return t, ok
}

// hasAll reports whether every name was seen at generation gen.
func (s *seen) hasAll(names []string, gen int64) bool {
	for _, n := range names {
		if _, ok := s.get(n, gen); !ok {
			return false
		}
	}
	return true
}

// benchLatency runs an in-process embedded state, a reconcile.Controller
// and a raw Watch on it, and times each spec update through both.
func benchLatency(ctx context.Context, cfg config, dir string) (latencyResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	store, stopState, err := startState(ctx, dir)
	if err != nil {
		return latencyResult{}, err
	}
	defer stopState()
	names := specNames(cfg.specs)
	if err := seedSpecs(ctx, store.Client(), names); err != nil {
		return latencyResult{}, err
	}
	recon, events, before := newSeen(), newSeen(), newSeen()
	stopWatchers := startWatchers(ctx, store, recon, events, before)
	defer stopWatchers()
	// Everything starts at generation 1; wait until both watchers saw it,
	// so the timed updates do not race the initial listing.
	if err := waitUntil(ctx, 30*time.Second, func() bool { return recon.hasAll(names, 1) && events.hasAll(names, 1) && before.hasAll(names, 1) }); err != nil {
		return latencyResult{}, fmt.Errorf("initial listing: %w", err)
	}
	starts, acks, err := writeUpdates(ctx, store.Client(), names, cfg.maxPause)
	if err != nil {
		return latencyResult{}, err
	}
	// Missing observations are reported, not fatal: a timeout here is a
	// finding, and the table says how many were missed.
	_ = waitUntil(ctx, 30*time.Second, func() bool {
		return recon.hasAll(names, 2) && events.hasAll(names, 2) && before.hasAll(names, 2)
	})
	res := compute(names, starts, acks, recon, events)
	var old []time.Duration
	for _, n := range names {
		if at, ok := before.get(n, 2); ok {
			old = append(old, at.Sub(acks[n]))
		} else {
			res.missedBefore++
		}
	}
	res.beforeToReconcile = summarize(old)
	return res, nil
}

// startState serves the embedded state with uc's schema on a loopback port.
func startState(ctx context.Context, dir string) (*state.Store, func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	srv, err := statetest.Serve(ctx, embedded.Options{DataDir: dir, Logger: quietLog})
	if err != nil {
		return nil, nil, err
	}
	stop := func() {
		if err := srv.Stop(); err != nil {
			progress("%v", err)
		}
	}
	return srv.Store, stop, nil
}

func specNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("bench/img%05d", i)
	}
	return names
}

// imageBody is a valid ImageSpec for every node; tag varies per write so
// each update really changes the body.
func imageBody(name, tag string) string {
	b, _ := json.Marshal(api.ImageSpec{Name: name, Project: "bench", Service: name, Image: "busybox:" + tag})
	return string(b)
}

func insertStmt(name string) corrosion.Statement {
	return statetest.InsertImageSpec(name, "bench", imageBody(name, "latest"))
}

// seedSpecs inserts every name at generation 1 in one transaction.
func seedSpecs(ctx context.Context, c *corrosion.Client, names []string) error {
	stmts := make([]corrosion.Statement, len(names))
	for i, n := range names {
		stmts[i] = insertStmt(n)
	}
	_, err := c.Exec(ctx, stmts...)
	return err
}

// startWatchers runs the controller under test (fed and read by the state
// cache, as uc's controllers are), the controller as it was before the
// cache (its own subscription, a state API read per key), and a raw Watch.
func startWatchers(ctx context.Context, store *state.Store, recon, events, before *seen) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	cache := state.NewCache(store, quietLog)
	cache.Start(ctx)
	specs := cache.ImageSpecs.Source(func(ev state.Event[state.ImageRecord]) []string { return []string{ev.Key} })
	ctrl := reconcile.New(reconcile.Options{Name: "bench", Workers: benchWorkers, Logger: quietLog},
		marker(&cache.Reader, recon), specs)
	old := reconcile.New(reconcile.Options{Name: "bench-before", Workers: benchWorkers, Logger: quietLog},
		marker(&store.Reader, before), store.KeySource(statetest.ImageGenerations, quietLog))
	var wg sync.WaitGroup
	wg.Go(func() { _ = ctrl.Run(ctx) })
	wg.Go(func() { _ = old.Run(ctx) })
	wg.Go(func() { _ = rawWatch(ctx, store.Client(), events) })
	return func() { cancel(); wg.Wait() }
}

// marker reconciles a key by reading its spec and stamping its generation.
func marker(read *state.Reader, seen *seen) reconcile.Reconciler {
	return reconcile.Func(func(ctx context.Context, key string) (reconcile.Result, error) {
		img, err := read.GetImage(ctx, key)
		if errors.Is(err, state.ErrNotFound) {
			return reconcile.Result{}, nil
		}
		if err != nil {
			return reconcile.Result{}, err
		}
		seen.mark(key, img.Meta.Generation, time.Now())
		return reconcile.Result{}, nil
	})
}

// rawWatch stamps every row of the snapshot and every change event.
func rawWatch(ctx context.Context, c *corrosion.Client, events *seen) error {
	return c.Watch(ctx, statetest.ImageGenerations, corrosion.WatchOptions{Logger: quietLog}, func(ev corrosion.WatchEvent) error {
		now := time.Now()
		if ev.Snapshot {
			for _, r := range ev.Rows {
				events.mark(corrosion.AsString(r.Values[0]), corrosion.AsInt(r.Values[1]), now)
			}
			return nil
		}
		if ev.Change.Change != corrosion.ChangeDelete {
			events.mark(corrosion.AsString(ev.Change.Values[0]), corrosion.AsInt(ev.Change.Values[1]), now)
		}
		return nil
	})
}

// writeUpdates bumps each spec once, one write at a time with a random
// pause, and returns when each write started and was acknowledged.
func writeUpdates(ctx context.Context, c *corrosion.Client, names []string, maxPause time.Duration) (starts, acks map[string]time.Time, err error) {
	starts, acks = map[string]time.Time{}, map[string]time.Time{}
	for i, n := range names {
		stmt := statetest.BumpImageSpec(n, imageBody(n, fmt.Sprintf("v%d", i)))
		start := time.Now()
		if _, err := c.Exec(ctx, stmt); err != nil {
			return nil, nil, fmt.Errorf("update %s: %w", n, err)
		}
		starts[n], acks[n] = start, time.Now()
		time.Sleep(rand.N(maxPause + 1))
	}
	return starts, acks, nil
}

func compute(names []string, starts, acks map[string]time.Time, recon, events *seen) latencyResult {
	res := latencyResult{n: len(names)}
	var write, startEv, startRec, ackEv, ackRec, evRec []time.Duration
	for _, n := range names {
		write = append(write, acks[n].Sub(starts[n]))
		ev, okEv := events.get(n, 2)
		rc, okRc := recon.get(n, 2)
		if okEv {
			startEv, ackEv = append(startEv, ev.Sub(starts[n])), append(ackEv, ev.Sub(acks[n]))
		} else {
			res.missedEvent++
		}
		if okRc {
			startRec, ackRec = append(startRec, rc.Sub(starts[n])), append(ackRec, rc.Sub(acks[n]))
		} else {
			res.missedReconcile++
		}
		if okEv && okRc {
			evRec = append(evRec, rc.Sub(ev))
		}
	}
	res.negEvent, res.negRecon = countNegative(ackEv), countNegative(ackRec)
	res.write, res.startToEvent, res.startToReconcile = summarize(write), summarize(startEv), summarize(startRec)
	res.toEvent, res.toReconcile, res.eventToReconcile = summarize(ackEv), summarize(ackRec), summarize(evRec)
	return res
}

func countNegative(ds []time.Duration) int {
	n := 0
	for _, d := range ds {
		if d < 0 {
			n++
		}
	}
	return n
}

func (r latencyResult) print(cfg config) {
	t := newTable(fmt.Sprintf("1. Spec write → reconcile latency, embedded state in-process (%d updates, 0–%s pause, %d workers)",
		r.n, cfg.maxPause, benchWorkers),
		"from", "to", "n", "p50 (ms)", "p99 (ms)", "max (ms)", "mean (ms)")
	for _, row := range []struct {
		from, to string
		d        dist
	}{
		{"write start", "write ack (HTTP round trip)", r.write},
		{"write start", "subscription change event", r.startToEvent},
		{"write start", "reconciler read new gen", r.startToReconcile},
		{"write ack", "subscription change event", r.toEvent},
		{"change event", "reconciler read new gen", r.eventToReconcile},
		{"write ack", "reconciler read new gen", r.toReconcile},
		{"write ack", "before the cache: reconciler read new gen", r.beforeToReconcile},
	} {
		d := row.d
		t.row(row.from, row.to, fmt.Sprint(d.n), ms(d.p50), ms(d.p99), ms(d.max), ms(d.mean))
	}
	t.flush()
	note("missed within 30 s: %d change events, %d reconciles", r.missedEvent, r.missedReconcile)
	note("negative \"write ack →\" samples (the notification beat the HTTP response back to the writer): %d event, %d reconcile",
		r.negEvent, r.negRecon)
	note("reconciler = reconcile.Controller fed by the state cache's image_specs informer; it reads each key from the cache")
	note("before the cache = the same controller fed by its own subscription (Store.KeySource), reading each key with a")
	note("  state API query, as uc's controllers did before; it runs beside the other on the same writes (missed: %d)", r.missedBefore)
}

// waitUntil polls cond every 5 ms.
func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
