package main

// Section applystate: the state requests a 50-service project costs, from
// `uc apply` until every image is built once and present on three nodes,
// for this checkout and for uc as of -before, side by side.

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/test/harness"
)

// applyStateServices is the project's size, as issue 12 asks.
const applyStateServices = 50

// applyStateResult is one run: requests by who made them, and how long.
type applyStateResult struct {
	skipped string
	took    time.Duration
	node2   reqCounts // node2's ucd, through its counting proxy
	node3   reqCounts
	cli     reqCounts // uc apply and uc wait
	builds  int
	pulls   int
}

func runApplyState(ctx context.Context, cfg config, bins binaries, work string, sum *summary) error {
	progress("applystate: state requests of a %d-service apply that builds and pre-pulls on 3 nodes", applyStateServices)
	now, err := benchApplyState(ctx, bins, filepath.Join(work, "applystate"))
	if err != nil {
		return err
	}
	var was *applyStateResult
	if cfg.before != "" {
		if old, err := harness.BuildBinariesAt(ctx, filepath.Join(work, "bin-before-applystate"), cfg.before); err != nil {
			progress("applystate: cannot build uc as of %s, so no before column: %v", cfg.before, err)
		} else if r, err := benchApplyState(ctx, old, filepath.Join(work, "applystate-before")); err != nil {
			return fmt.Errorf("as of %s: %w", cfg.before, err)
		} else {
			was = &r
		}
	}
	printApplyState(cfg.before, was, now)
	sum.applyState = &now
	return nil
}

func benchApplyState(ctx context.Context, bins binaries, dir string) (applyStateResult, error) {
	var res applyStateResult
	skip, err := withPrepullCluster(ctx, bins, dir, "applystate", true, func(c *prepullCluster) error {
		return c.applyState(ctx, dir, &res)
	}, "--buildkit-addr", "$UC_BUILDKIT_ADDR")
	res.skipped = skip
	return res, err
}

// applyState applies the project through a counting proxy of its own and
// waits until every image is present on every node.
func (c *prepullCluster) applyState(ctx context.Context, dir string, res *applyStateResult) error {
	proj := filepath.Join(dir, "project")
	if err := writeApplyStateProject(proj, c.env["UC_BASE_IMAGE"]); err != nil {
		return err
	}
	// Builds are reproducible: an earlier run's images would still be on
	// the engines, and every pull would be skipped.
	if err := c.removeImagesOf(ctx, "as"); err != nil {
		return err
	}
	cli, err := newStateProxy(c.stateAddr, log.New(c.proxyLog, "", log.LstdFlags))
	if err != nil {
		return err
	}
	defer cli.close()
	c.api = "http://" + cli.addr
	before := [3]reqCounts{c.stateProxies[0].snapshot(), c.stateProxies[1].snapshot(), cli.snapshot()}
	start := time.Now()
	_, out, err := c.uc(ctx, proj, "apply", "-f", "compose.yaml")
	if err == nil {
		err = wantActions(map[string]int{state.Created: 2 * applyStateServices})(out)
	}
	if err != nil {
		return err
	}
	if _, out, err := c.uc(ctx, proj, "wait", "images", "--timeout", "10m"); err != nil {
		return fmt.Errorf("%w\n%s\n%s", err, out, c.logTails())
	}
	res.took = time.Since(start)
	res.node2 = c.stateProxies[0].snapshot().minus(before[0])
	res.node3 = c.stateProxies[1].snapshot().minus(before[1])
	res.cli = cli.snapshot().minus(before[2])
	for i := range applyStateServices {
		res.builds += c.buildsStarted(fmt.Sprintf("as/s%02d", i))
	}
	res.pulls = len(c.pulls())
	return c.exited()
}

// writeApplyStateProject writes 50 services, each a one-file context
// copied onto the base image, each pre-pulled on every node (the default).
func writeApplyStateProject(dir, base string) error {
	var compose strings.Builder
	compose.WriteString("name: as\nservices:\n")
	for i := range applyStateServices {
		svc := fmt.Sprintf("s%02d", i)
		fmt.Fprintf(&compose, "  %s:\n    build: ./%s\n", svc, svc)
		if err := writeFile(filepath.Join(dir, svc, "Dockerfile"), "FROM "+base+"\nCOPY n /n\n"); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, svc, "n"), svc+"\n"); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(compose.String()), 0o644)
}

func printApplyState(ref string, was *applyStateResult, now applyStateResult) {
	if now.skipped != "" {
		fmt.Println()
		fmt.Println("applystate section skipped: " + now.skipped)
		return
	}
	t := newTable(fmt.Sprintf("10. state requests of a %d-service project: uc apply, %d builds on node1, each image pre-pulled on 3 nodes, until uc wait returns",
		applyStateServices, applyStateServices), "who", "requests before (uc as of "+ref+")", "after (this checkout)", "after / before",
		"before: subs / queries / tx", "after")
	rows := []struct {
		who      string
		was, now reqCounts
	}{{"node2 (ucd)", reqCounts{}, now.node2}, {"node3 (ucd)", reqCounts{}, now.node3}, {"uc apply + uc wait", reqCounts{}, now.cli}}
	if was != nil {
		rows[0].was, rows[1].was, rows[2].was = was.node2, was.node3, was.cli
	}
	for _, r := range rows {
		b, a := r.was.total(), r.now.total()
		bs, split := "-", "-"
		if was != nil {
			bs, split = fmt.Sprint(b), classCells(r.was, clsSubscribe, clsQuery, clsTx)
		}
		t.row(r.who, bs, fmt.Sprint(a), rateRatio(float64(a), float64(b)), split, classCells(r.now, clsSubscribe, clsQuery, clsTx))
	}
	t.flush()
	if was != nil {
		note("before: %s from apply to all present, %d builds, %d pulls", was.took.Round(time.Millisecond), was.builds, was.pulls)
	}
	note("after:  %s from apply to all present, %d builds, %d pulls", now.took.Round(time.Millisecond), now.builds, now.pulls)
	note("node1 serves the state, builds (hack/up.sh's buildkitd) and serves the registry; its own requests reach its own")
	note("  listener and are not counted. uc apply and uc wait go through a counting proxy of their own.")
}

// removeImagesOf removes from every engine the images of a project's
// repositories (any registry), so that a run pulls them again.
func (c *prepullCluster) removeImagesOf(ctx context.Context, project string) error {
	removed := 0
	for _, host := range c.hosts {
		out, err := exec.CommandContext(ctx, "docker", "-H", host, "images", "--no-trunc", "--format", "{{.Repository}} {{.ID}}").Output()
		if err != nil {
			return fmt.Errorf("docker -H %s images: %w", host, err)
		}
		ids := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			repo, id, _ := strings.Cut(line, " ")
			if _, path, _ := strings.Cut(repo, "/"); strings.HasPrefix(path, project+"/") {
				ids[id] = true
			}
		}
		for id := range ids {
			if out, err := exec.CommandContext(ctx, "docker", "-H", host, "rmi", "-f", id).CombinedOutput(); err != nil {
				return fmt.Errorf("docker -H %s rmi -f %s: %w: %s", host, id, err, out)
			}
			removed++
		}
	}
	progress("applystate: removed %d images of project %s left on the engines", removed, project)
	return nil
}
