package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/ucplane/uc/state"
)

// The 12-image tree (issue 13): a base, 3 images over it, 8 leaves over
// those, laid out as an image monorepo (seed 002). uc builds it with
// `uc apply --contexts --wait`, against its own critical path, against the
// monorepo tool's way (buildctl, one image at a time in prefix order) and
// against Bake's way (buildctl, every image of a level at once).

// treeStep is each RUN's work, so that a build takes long enough for the
// order of builds to matter.
const treeStep = "sleep 1"

// treeImage is one context of the tree: its prefix, name and parent.
type treeImage struct{ prefix, name, parent string }

func treeImages(suffix string) []treeImage {
	out := []treeImage{{"00", "base" + suffix, ""}}
	mids := []string{"mid-a" + suffix, "mid-b" + suffix, "mid-c" + suffix}
	for _, m := range mids {
		out = append(out, treeImage{"01", m, "base" + suffix})
	}
	for i := range 8 {
		out = append(out, treeImage{"02", fmt.Sprintf("leaf-%d%s", i, suffix), mids[i%3]})
	}
	return out
}

// writeTree writes the monorepo; nonce makes every build cold.
func writeTree(dir string, images []treeImage, nonce string) error {
	for _, img := range images {
		from := "busybox"
		if img.parent != "" {
			from = "${REGISTRY}/" + img.parent + ":1.0.0"
		}
		ctx := filepath.Join(dir, "contexts", img.prefix+"-"+img.name)
		df := fmt.Sprintf("ARG REGISTRY\nFROM %s\nARG NONCE=%s\nRUN echo %s $NONCE >> /tree && %s\n", from, nonce, img.name, treeStep)
		if err := writeFile(filepath.Join(ctx, "Dockerfile"), df); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(ctx, "info.edn"), `{:version "1.0.0"}`); err != nil {
			return err
		}
	}
	return nil
}

type treeResult struct {
	skipped                      string
	ucWall, critical             time.Duration
	present                      time.Duration // apply → every image on both nodes
	sequential, parallel         time.Duration
	leafWall, baseWall           time.Duration
	leafRebuilt, baseRebuilt, of int
}

func benchTree(ctx context.Context, bins binaries, dir string) (treeResult, error) {
	var r treeResult
	skip, err := withBuildCluster(ctx, bins, dir, "tree", func(_ string, c *buildCluster) error {
		return c.treeRounds(ctx, dir, &r)
	})
	r.skipped = skip
	return r, err
}

func (c *buildCluster) treeRounds(ctx context.Context, dir string, r *treeResult) error {
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	images := treeImages("-" + nonce)
	r.of = len(images)
	proj := filepath.Join(dir, "tree-"+nonce)
	if err := writeTree(proj, images, nonce); err != nil {
		return err
	}
	if r.ucWall, err = c.applyTree(ctx, proj); err != nil {
		return err
	}
	if r.present, err = c.waitTreePresent(ctx, filepath.Base(proj), images); err != nil {
		return err
	}
	r.present += r.ucWall
	if r.critical, err = c.criticalPath(ctx, filepath.Base(proj)); err != nil {
		return err
	}
	counts := c.treeBuildCounts(filepath.Base(proj), images)
	leaf := images[len(images)-1]
	if err := appendLine(filepath.Join(proj, "contexts", leaf.prefix+"-"+leaf.name, "Dockerfile"), "RUN echo leaf edit >> /tree\n"); err != nil {
		return err
	}
	if r.leafWall, err = c.applyTree(ctx, proj); err != nil {
		return err
	}
	after := c.treeBuildCounts(filepath.Base(proj), images)
	r.leafRebuilt, counts = rebuilt(counts, after), after
	base := images[0]
	if err := appendLine(filepath.Join(proj, "contexts", base.prefix+"-"+base.name, "Dockerfile"), "RUN echo base edit >> /tree\n"); err != nil {
		return err
	}
	if r.baseWall, err = c.applyTree(ctx, proj); err != nil {
		return err
	}
	r.baseRebuilt = rebuilt(counts, c.treeBuildCounts(filepath.Base(proj), images))
	peerNonce, err := newNonce()
	if err != nil {
		return err
	}
	peerImages := treeImages("-p" + peerNonce)
	peerProj := filepath.Join(dir, "peer-"+peerNonce)
	if err := writeTree(peerProj, peerImages, peerNonce); err != nil {
		return err
	}
	if r.sequential, err = c.buildctlTree(ctx, peerProj, peerImages, false); err != nil {
		return err
	}
	if err := writeTree(peerProj, peerImages, peerNonce+"x"); err != nil { // cold again
		return err
	}
	r.parallel, err = c.buildctlTree(ctx, peerProj, peerImages, true)
	return err
}

// waitTreePresent waits until every image of the tree is on both nodes.
func (c *buildCluster) waitTreePresent(ctx context.Context, project string, images []treeImage) (time.Duration, error) {
	args := []string{"wait", "images", "--timeout", "10m"}
	for _, img := range images {
		args = append(args, project+"/"+img.name)
	}
	d, out, err := c.uc(ctx, "", args...)
	if err != nil {
		return 0, fmt.Errorf("uc wait images: %w\n%s", err, out)
	}
	return d, nil
}

// applyTree applies the monorepo and waits for every build.
func (c *buildCluster) applyTree(ctx context.Context, proj string) (time.Duration, error) {
	d, out, err := c.uc(ctx, "", "apply", "--contexts", proj, "--wait", "--timeout", "10m")
	if err != nil {
		return 0, fmt.Errorf("uc apply --contexts: %w\n%s", err, out)
	}
	return d, nil
}

// criticalPath is the longest chain of build durations, from the builds'
// own start and finish times.
func (c *buildCluster) criticalPath(ctx context.Context, project string) (time.Duration, error) {
	_, out, err := c.uc(ctx, "", "get", "builds", "-o", "json")
	if err != nil {
		return 0, err
	}
	var builds []state.BuildRecord
	if err := json.Unmarshal([]byte(out), &builds); err != nil {
		return 0, err
	}
	byName := map[string]state.BuildRecord{}
	for _, b := range builds {
		if b.Spec.Project == project {
			byName[b.Spec.Name] = b
		}
	}
	var path func(name string) time.Duration
	path = func(name string) time.Duration {
		b := byName[name]
		cur, _ := b.Current()
		longest := time.Duration(0)
		for _, dep := range b.Spec.DependsOn() {
			longest = max(longest, path(dep))
		}
		return longest + cur.Detail.FinishedAt.Sub(cur.Detail.StartedAt)
	}
	var critical time.Duration
	for name := range byName {
		critical = max(critical, path(name))
	}
	return critical, nil
}

func (c *buildCluster) treeBuildCounts(project string, images []treeImage) map[string]int {
	out := map[string]int{}
	for _, img := range images {
		out[img.name] = c.buildsStarted(project + "/" + img.name)
	}
	return out
}

func rebuilt(before, after map[string]int) int {
	n := 0
	for name, count := range after {
		if count > before[name] {
			n++
		}
	}
	return n
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(line)
	return errors.Join(err, f.Close())
}

// buildctlTree builds the tree with buildctl straight into the registry:
// one image at a time in prefix order, or every image of a prefix at once
// (what a Bake file's parallel targets do). Each FROM names the registry.
func (c *buildCluster) buildctlTree(ctx context.Context, proj string, images []treeImage, parallel bool) (time.Duration, error) {
	start := time.Now()
	var prefixes []string
	for _, img := range images {
		if !slices.Contains(prefixes, img.prefix) {
			prefixes = append(prefixes, img.prefix)
		}
	}
	for _, prefix := range prefixes {
		var wg sync.WaitGroup
		errs := make(chan error, len(images))
		for _, img := range images {
			if img.prefix != prefix {
				continue
			}
			build := func() { errs <- c.buildctlImage(ctx, proj, img) }
			if !parallel {
				build()
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); build() }()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return 0, err
			}
		}
	}
	return time.Since(start), nil
}

func (c *buildCluster) buildctlImage(ctx context.Context, proj string, img treeImage) error {
	dir := filepath.Join(proj, "contexts", img.prefix+"-"+img.name)
	ref := c.env["UC_REGISTRY"] + "/" + img.name + ":1.0.0"
	_, out, err := timed(ctx, "", nil, c.env["UC_BUILDCTL"], "--addr", c.env["UC_BUILDKIT_ADDR"],
		"build", "--progress=plain", "--frontend", "dockerfile.v0",
		"--local", "context="+dir, "--local", "dockerfile="+dir,
		"--opt", "build-arg:REGISTRY="+c.env["UC_REGISTRY"],
		"--output", "type=image,name="+ref+",push=true,registry.insecure=true")
	if err != nil {
		return fmt.Errorf("buildctl %s: %w\n%s", img.name, err, lastLines(out, 10))
	}
	return nil
}

func (r treeResult) print() {
	if r.skipped != "" {
		fmt.Println()
		fmt.Println("tree section skipped: " + r.skipped)
		return
	}
	ratio := func(a, b time.Duration) string { return fmt.Sprintf("%.2f×", float64(a)/float64(b)) }
	t := newTable(fmt.Sprintf("11. a %d-image tree (1 base, 3 over it, 8 leaves; each build RUNs %q), built cold", r.of, treeStep),
		"who", "wall", "uc / it")
	t.row("uc apply --contexts --wait", r.ucWall.Round(time.Millisecond).String(), "1.00×")
	t.row("its critical path (longest chain of build times)", r.critical.Round(time.Millisecond).String(), ratio(r.ucWall, r.critical))
	t.row("uc, apply until every image is on both nodes (pre-pull)", r.present.Round(time.Millisecond).String(), "-")
	t.row("buildctl, one image at a time in prefix order", r.sequential.Round(time.Millisecond).String(), ratio(r.ucWall, r.sequential))
	t.row("buildctl, each prefix's images at once (Bake-style)", r.parallel.Round(time.Millisecond).String(), ratio(r.ucWall, r.parallel))
	t.flush()
	note("after editing one leaf: %d of %d images rebuilt in %s; after editing the base: %d of %d in %s",
		r.leafRebuilt, r.of, r.leafWall.Round(time.Millisecond), r.baseRebuilt, r.of, r.baseWall.Round(time.Millisecond))
	note("uc's wall includes uc apply (hashing and shipping contexts) and the status round trips; buildctl's does not push contexts")
}
