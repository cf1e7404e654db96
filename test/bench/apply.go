package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/corrosion"
)

const benchProject = "benchproj"

// applyResult holds wall-clock times of each uc command and of the peer.
type applyResult struct {
	services                    int
	first, noop, changed, dryRn []time.Duration
	peer                        peer
	peerTimes                   []time.Duration
}

// benchApply times `uc apply` against a real `ucd run` with embedded state.
func benchApply(ctx context.Context, cfg config, bins binaries, pr peer, dir string) (applyResult, error) {
	projDir := filepath.Join(dir, "project")
	if err := writeProjectDirs(projDir, cfg.services); err != nil {
		return applyResult{}, err
	}
	d, err := startDaemon(ctx, bins, filepath.Join(dir, "data"))
	if err != nil {
		return applyResult{}, err
	}
	defer d.stop()
	if err := d.waitNodeListed(ctx, bins); err != nil {
		return applyResult{}, err
	}
	res := applyResult{services: cfg.services, peer: pr}
	for rep := range cfg.reps {
		if err := res.timeOneRound(ctx, bins, d, projDir, cfg.services, rep); err != nil {
			return res, fmt.Errorf("repetition %d: %w", rep+1, err)
		}
	}
	if err := d.proc.Exited(); err != nil {
		return res, err
	}
	return res, res.timePeer(ctx, projDir, cfg.reps)
}

// timeOneRound times (a) first apply, (b) no-change re-apply, (c) apply
// after changing every build arg and (d) --dry-run, checking each one's
// output so a fast failure is never mistaken for a fast success.
func (r *applyResult) timeOneRound(ctx context.Context, bins binaries, d *daemon, projDir string, n, rep int) error {
	// Start from an empty project so (a) creates everything again; the
	// delete is not timed.
	if _, err := d.store.DeleteProject(ctx, benchProject); err != nil {
		return err
	}
	if err := writeCompose(projDir, n, ""); err != nil {
		return err
	}
	apply := func(want func(string) error, extra ...string) (time.Duration, error) {
		args := append([]string{"--corrosion-api", d.api, "apply", "-f", "compose.yaml"}, extra...)
		t, out, err := timed(ctx, projDir, nil, bins.UC, args...)
		if err == nil {
			err = want(out)
		}
		return t, err
	}
	steps := []struct {
		dst    *[]time.Duration
		before func() error
		want   func(string) error
		extra  []string
	}{
		{&r.first, nil, wantActions(map[string]int{state.Created: 2 * n}), nil},
		{&r.noop, nil, wantNothingChanged, nil},
		{&r.changed, func() error { return writeCompose(projDir, n, fmt.Sprintf("-rep%d", rep)) },
			wantActions(map[string]int{state.Configured: n, state.Unchanged: n}), nil},
		{&r.dryRn, nil, wantDryRun(n), []string{"--dry-run"}},
	}
	for _, s := range steps {
		if s.before != nil {
			if err := s.before(); err != nil {
				return err
			}
		}
		t, err := apply(s.want, s.extra...)
		if err != nil {
			return err
		}
		*s.dst = append(*s.dst, t)
	}
	return nil
}

// wantActions checks the count of each action in `uc apply` output lines
// ("<kind> <name> <action>").
func wantActions(want map[string]int) func(string) error {
	return func(out string) error {
		got := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) == 3 {
				got[f[2]]++
			}
		}
		for action, n := range want {
			if got[action] != n {
				return fmt.Errorf("uc apply: want %d %s, got %v\n%s", n, action, got, lastLines(out, 5))
			}
		}
		return nil
	}
}

func wantNothingChanged(out string) error {
	if !strings.Contains(out, "nothing changed") {
		return fmt.Errorf("no-change uc apply did not say \"nothing changed\":\n%s", lastLines(out, 5))
	}
	return nil
}

func wantDryRun(n int) func(string) error {
	return func(out string) error {
		if !strings.Contains(out, fmt.Sprintf("svc%d", n-1)) {
			return fmt.Errorf("uc apply --dry-run output lacks svc%d:\n%s", n-1, lastLines(out, 5))
		}
		return nil
	}
}

// timePeer runs the peer's `config` on the same file, reps times.
func (r *applyResult) timePeer(ctx context.Context, projDir string, reps int) error {
	if r.peer.unavailable != "" {
		return nil
	}
	// A private DOCKER_CONFIG keeps the peer off the user's ~/.docker.
	env := []string{"DOCKER_CONFIG=" + filepath.Join(projDir, "..", "docker-config")}
	for range reps {
		t, out, err := timed(ctx, projDir, env, r.peer.path, r.peer.args...)
		if err != nil {
			// A peer that runs but fails is reported, not fatal: uc's own
			// numbers still stand.
			r.peer.unavailable = "config failed: " + firstLine(err.Error())
			r.peerTimes = nil
			return nil
		}
		if !strings.Contains(out, fmt.Sprintf("svc%d", r.services-1)) {
			r.peer.unavailable = "config output lacks the last service"
			r.peerTimes = nil
			return nil
		}
		r.peerTimes = append(r.peerTimes, t)
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// writeProjectDirs creates svcN/ with a tiny Dockerfile and a file each.
func writeProjectDirs(dir string, n int) error {
	for i := range n {
		svc := filepath.Join(dir, fmt.Sprintf("svc%d", i))
		if err := os.MkdirAll(svc, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(svc, "Dockerfile"), []byte("FROM busybox\nCOPY hello.txt /\n"), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(svc, "hello.txt"), []byte(fmt.Sprintf("service %d\n", i)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeCompose writes compose.yaml with arg N = "<i><suffix>" per service.
func writeCompose(dir string, n int, suffix string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nservices:\n", benchProject)
	for i := range n {
		fmt.Fprintf(&b, "  svc%d:\n    build:\n      context: ./svc%d\n      dockerfile: Dockerfile\n", i, i)
		fmt.Fprintf(&b, "      args:\n        N: \"%d%s\"\n    x-machines: [node1]\n", i, suffix)
	}
	return os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(b.String()), 0o644)
}

// daemon is a `ucd run` process serving its embedded state.
type daemon struct {
	proc  *proc
	api   string
	store *state.Store
}

func startDaemon(ctx context.Context, bins binaries, dataDir string) (*daemon, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	p, err := startProc("ucd", filepath.Join(dataDir, "..", "ucd.log"), bins.UCD,
		"run", "--node", "node1", "--data-dir", dataDir, "--state-listen", addr)
	if err != nil {
		return nil, err
	}
	c, err := corrosion.New("http://" + addr)
	if err != nil {
		p.Stop()
		return nil, err
	}
	return &daemon{proc: p, api: "http://" + addr, store: state.NewStore(c)}, nil
}

func (d *daemon) stop() { d.proc.Stop() }

// waitNodeListed polls `uc get nodes` until node1 is Ready, as a user
// would before the first apply (apply refuses unknown x-machines nodes).
func (d *daemon) waitNodeListed(ctx context.Context, bins binaries) error {
	return waitUntilErr(ctx, 30*time.Second, func() error {
		if err := d.proc.Exited(); err != nil {
			return err
		}
		_, out, err := timed(ctx, "", nil, bins.UC, "--corrosion-api", d.api, "get", "nodes")
		if err == nil && hasReadyNode(out, "node1") {
			return nil
		}
		return errNotYet
	})
}

func hasReadyNode(out, name string) bool {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == name && f[1] == "Ready" {
			return true
		}
	}
	return false
}

var errNotYet = errors.New("not yet")

// waitUntilErr polls fn every 100 ms until it returns nil, a real error,
// or the timeout.
func waitUntilErr(ctx context.Context, timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err != errNotYet {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still waiting after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r applyResult) print(cfg config) {
	peerCol := "peer: " + r.peer.label
	t := newTable(fmt.Sprintf("2. uc apply of a %d-service Compose file, wall clock incl. process start (%d repetitions); ucd run with embedded state",
		r.services, cfg.reps),
		"command", "specs written", "median (ms)", "min (ms)", "max (ms)", "uc/peer (median)")
	peerMed := summarize(r.peerTimes)
	for _, row := range []struct {
		name, written string
		ts            []time.Duration
	}{
		{"(a) uc apply, first", fmt.Sprintf("%d created", 2*r.services), r.first},
		{"(b) uc apply, no change", "0 (nothing changed)", r.noop},
		{"(c) uc apply, every arg changed", fmt.Sprintf("%d configured", r.services), r.changed},
		{"(d) uc apply --dry-run", "0 (parse only)", r.dryRn},
	} {
		d := summarize(row.ts)
		t.row(row.name, row.written, ms(d.p50), ms(d.min), ms(d.max), ratio(d.p50, peerMed.p50, r.peer))
	}
	if r.peer.unavailable == "" {
		t.row(peerCol+" config", "0 (parse only)", ms(peerMed.p50), ms(peerMed.min), ms(peerMed.max), "1.00")
	}
	t.flush()
	if r.peer.unavailable != "" {
		note("peer unavailable: %s", r.peer.unavailable)
	} else {
		note("peer command: %s", r.peer.describe())
		note("peer binary: %s", r.peer.origin)
	}
}

func ratio(uc, peer time.Duration, p peer) string {
	if p.unavailable != "" || peer <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", float64(uc)/float64(peer))
}

func (r applyResult) summaryRows(t table) {
	peerMed := summarize(r.peerTimes).p50
	first, noop, dry := summarize(r.first).p50, summarize(r.noop).p50, summarize(r.dryRn).p50
	t.row(fmt.Sprintf("uc apply %d services, first / no-change (median ms)", r.services), ms(first)+" / "+ms(noop))
	if r.peer.unavailable != "" {
		t.row("uc apply --dry-run vs peer config", "peer unavailable")
		return
	}
	t.row("uc apply --dry-run / "+r.peer.label+" config (median ms)",
		fmt.Sprintf("%s / %s = %s", ms(dry), ms(peerMed), ratio(dry, peerMed, r.peer)))
}
