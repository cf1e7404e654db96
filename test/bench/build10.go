package main

// Measurement 5 (section build10): build and pre-pull of a generated
// 10-service project on the same real infrastructure and two-node cluster
// as measurement 4, beside a scripted pipeline that builds the services one
// after the other with buildctl and then pulls each onto both engines.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/go-units"

	"github.com/ucplane/uc/state"
)

// build10Services is the size of the generated project.
const build10Services = 10

// build10Edited is the service whose one source file case (c) changes.
const build10Edited = 5

// build10Dockerfile is every service's: NONCE (fresh per repetition)
// invalidates everything after FROM; a source edit only the COPY and what
// follows it.
const build10Dockerfile = `FROM busybox
ARG NONCE
RUN echo $NONCE > /n && seq 1 100000 | md5sum > /sum
COPY src/ /src/
RUN ls -R /src | wc -l > /count
`

// Steps of measurement 5, per side.
const (
	st10Apply     = "uc: uc apply --wait (builds done)"
	st10Wait      = "uc: then uc wait images (present on 2 nodes)"
	st10PeerBuild = "peer: 10× buildctl build + push, one after the other"
	st10PeerPull  = "peer: then 20× docker pull REF@DIGEST (10 per node)"
)

// build10Result is measurement 5; skipped says why it did not run.
type build10Result struct {
	skipped  string
	reps     int
	uc, peer [numCases]caseTimes
	// peerKept counts, per case, the peer's services whose digest equals
	// the cold build's, summed over repetitions.
	peerKept [numCases]int
	buildkit string
	// bytes is what uc apply uploads for a one-file change to a 50 MiB
	// context, measured once after the timed rounds.
	bytes bytesResult
}

func benchBuild10(ctx context.Context, cfg config, bins binaries, dir string) (build10Result, error) {
	res := build10Result{reps: cfg.buildReps}
	var warm build10Result
	skip, err := withBuildCluster(ctx, bins, dir, "measurement 5", func(_ string, c *buildCluster) error {
		res.buildkit = c.env["UC_BUILDKIT_VERSION"]
		round := func(f func(context.Context, string, *build10Result) error) func(context.Context, bool) error {
			return func(ctx context.Context, timed bool) error {
				if timed {
					return f(ctx, dir, &res)
				}
				return f(ctx, dir, &warm)
			}
		}
		err := alternate(ctx, "measurement 5", cfg.buildReps,
			benchSide{"uc", round(c.ucRound10)}, benchSide{"peer (scripted buildctl + docker pull)", round(c.peerRound10)})
		if err != nil {
			return err
		}
		progress("measurement 5: bytes uploaded for a one-file change to a %s context", units.BytesSize(bytesFirstMin))
		res.bytes, err = c.bytes10(ctx, dir)
		if err != nil {
			return fmt.Errorf("bytes uploaded for a one-file change: %w", err)
		}
		return nil
	})
	res.skipped = skip
	return res, err
}

// ucRound10 runs cases (a), (b) and (c) for uc on a fresh project (fresh
// project name, hence image repositories, and fresh NONCE), checking the
// builds the nodes started and the digests on both nodes after each.
func (c *buildCluster) ucRound10(ctx context.Context, dir string, r *build10Result) error {
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	project := "uct" + nonce
	proj := filepath.Join(dir, "uc-"+nonce)
	if err := writeProject10(proj, project, nonce); err != nil {
		return err
	}
	names := make([]string, build10Services)
	for i := range names {
		names[i] = project + "/" + service10(i)
	}
	n := build10Services
	edited := names[build10Edited]

	cold, err := c.ucCase10(ctx, proj, names, &r.uc[caseCold], wantActions(map[string]int{state.Created: 2 * n}))
	if err == nil {
		err = c.wantBuilds10(names, "", 0)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", caseNames[caseCold], err)
	}

	// (b): the apply writes nothing and starts no build; both commands
	// return at once, as everything is built and present.
	noop, err := c.ucCase10(ctx, proj, names, &r.uc[caseNoop], wantNothingChanged)
	if err == nil && !sleepCtx(ctx, 2*time.Second) { // let a wrongly triggered build start (not timed)
		err = ctx.Err()
	}
	if err == nil {
		err = c.wantBuilds10(names, "", 0)
	}
	if err == nil {
		err = sameDigests(cold, noop, "")
	}
	if err != nil {
		return fmt.Errorf("%s: %w", caseNames[caseNoop], err)
	}

	if err := editSource10(proj, "uc "+nonce); err != nil {
		return err
	}
	// A context edit changes the build spec only: the image spec names the
	// build, not its digest.
	second, err := c.ucCase10(ctx, proj, names, &r.uc[caseEdit],
		wantActions(map[string]int{state.Configured: 1, state.Unchanged: 2*n - 1, state.Created: 0}))
	if err == nil {
		err = c.wantBuilds10(names, edited, 2)
	}
	if err == nil {
		err = sameDigests(cold, second, edited)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", caseNames[caseEdit], err)
	}
	return nil
}

// ucCase10 times `uc apply --wait` then `uc wait images` of every service,
// then checks (untimed) that each image is built for its current
// generation and present on both nodes, in the state and on the engines.
// It returns each image's digest.
func (c *buildCluster) ucCase10(ctx context.Context, proj string, names []string, ct *caseTimes, want func(string) error) (map[string]string, error) {
	t0 := time.Now()
	applyDur, out, err := c.uc(ctx, proj, "apply", "--wait", "--timeout", waitTimeout, "-f", "compose.yaml")
	if err == nil {
		err = want(out)
	}
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, c.logTails())
	}
	waitArgs := append(append([]string{"wait", "images"}, names...), "--timeout", waitTimeout)
	waitDur, _, err := c.uc(ctx, proj, waitArgs...)
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, c.logTails())
	}
	total := time.Since(t0)
	digests, err := c.verify10(ctx, names)
	if err != nil {
		return nil, err
	}
	ct.cmd, ct.present = append(ct.cmd, applyDur), append(ct.present, total)
	ct.add(st10Apply, applyDur)
	ct.add(st10Wait, waitDur)
	return digests, nil
}

// verify10 checks every image through the state (inspect: built for the
// current generation, present rows on both nodes for that digest) and on
// both engines (docker image inspect of the reference ucd pulled).
func (c *buildCluster) verify10(ctx context.Context, names []string) (map[string]string, error) {
	pulls := c.pulls()
	hosts := map[string]string{"node1": c.env["UC_DOCKER_HOST_1"], "node2": c.env["UC_DOCKER_HOST_2"]}
	digests := map[string]string{}
	for _, name := range names {
		st, err := c.inspect(ctx, name)
		if err != nil {
			return nil, err
		}
		digests[name] = st.digest
		for _, node := range []string{"node1", "node2"} {
			ref := ""
			for _, p := range pulls {
				if p.node == node && p.image == name && strings.HasSuffix(p.ref, "@"+st.digest) {
					ref = p.ref
				}
			}
			if ref == "" {
				return nil, fmt.Errorf("%s logged no pull of %s@%s", node, name, st.digest)
			}
			if _, _, err := timed(ctx, "", nil, "docker", "-H", hosts[node], "image", "inspect", "--format", "{{.Id}}", ref); err != nil {
				return nil, fmt.Errorf("%s is not on %s's engine: %w", ref, node, err)
			}
		}
	}
	return digests, nil
}

// wantBuilds10 checks the builds the nodes started in all: 1 per service,
// except want for the service named edited.
func (c *buildCluster) wantBuilds10(names []string, edited string, want int) error {
	var bad []string
	for _, name := range names {
		w := 1
		if name == edited {
			w = want
		}
		if n := c.buildsStarted(name); n != w {
			bad = append(bad, fmt.Sprintf("%s: %d builds started, want %d", name, n, w))
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// sameDigests checks that every image kept its digest, except changed,
// which must have a new one.
func sameDigests(before, after map[string]string, changed string) error {
	for name, d := range before {
		switch {
		case name == changed && after[name] == d:
			return fmt.Errorf("digest of %s stayed %s after editing its context", name, d)
		case name != changed && after[name] != d:
			return fmt.Errorf("digest of %s changed from %s to %s, want unchanged", name, d, after[name])
		}
	}
	return nil
}

// peerRound10 does by script what uc does in ucRound10, on its own fresh
// project and repositories, so it shares no cache with uc's builds.
func (c *buildCluster) peerRound10(ctx context.Context, dir string, r *build10Result) error {
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	proj := filepath.Join(dir, "peer-"+nonce)
	if err := writeProject10(proj, "pt"+nonce, nonce); err != nil {
		return err
	}
	repo := c.env["UC_REGISTRY"] + "/peer10/p" + nonce
	meta := filepath.Join(dir, "peer-"+nonce+"-meta") // outside the contexts
	if err := os.MkdirAll(meta, 0o755); err != nil {
		return err
	}
	cold, err := c.peerCase10(ctx, proj, repo, nonce, meta, &r.peer[caseCold])
	if err != nil {
		return fmt.Errorf("%s: %w", caseNames[caseCold], err)
	}
	again, err := c.peerCase10(ctx, proj, repo, nonce, meta, &r.peer[caseNoop])
	if err != nil {
		return fmt.Errorf("%s: %w", caseNames[caseNoop], err)
	}
	r.peerKept[caseNoop] += kept(cold, again)
	if err := editSource10(proj, "peer "+nonce); err != nil {
		return err
	}
	edited, err := c.peerCase10(ctx, proj, repo, nonce, meta, &r.peer[caseEdit])
	if err != nil {
		return fmt.Errorf("%s: %w", caseNames[caseEdit], err)
	}
	if edited[build10Edited] == cold[build10Edited] {
		return fmt.Errorf("%s: digest of %s stayed %s after editing its context", caseNames[caseEdit], service10(build10Edited), cold[build10Edited])
	}
	r.peerKept[caseEdit] += kept(cold, edited)
	return nil
}

// peerCase10 is the script: buildctl build + push of each service in turn,
// then docker pull by digest of each on node1 and node2. A failed command
// fails the case. It returns the digests by service index.
func (c *buildCluster) peerCase10(ctx context.Context, proj, repo, nonce, meta string, ct *caseTimes) ([]string, error) {
	digests := make([]string, build10Services)
	t0 := time.Now()
	for i := range digests {
		svc := filepath.Join(proj, service10(i))
		mf := filepath.Join(meta, service10(i)+".json")
		_ = os.Remove(mf)
		if _, _, err := timed(ctx, "", nil, c.env["UC_BUILDCTL"], "--addr", c.env["UC_BUILDKIT_ADDR"],
			"build", "--progress=plain", "--frontend", "dockerfile.v0",
			"--local", "context="+svc, "--local", "dockerfile="+svc,
			"--opt", "build-arg:NONCE="+nonce,
			"--output", "type=image,name="+repo+"/"+service10(i)+":latest,push=true,registry.insecure=true",
			"--metadata-file", mf); err != nil {
			return nil, err
		}
		d, err := metadataDigest(mf)
		if err != nil {
			return nil, err
		}
		digests[i] = d
	}
	built := time.Now()
	env := []string{"DOCKER_CONFIG=" + c.dockerConfig}
	for i, d := range digests {
		ref := repo + "/" + service10(i) + "@" + d
		c.notePeerPull(ref)
		for _, host := range []string{c.env["UC_DOCKER_HOST_1"], c.env["UC_DOCKER_HOST_2"]} {
			if _, _, err := timed(ctx, "", env, "docker", "-H", host, "pull", ref); err != nil {
				return nil, err
			}
		}
	}
	done := time.Now()
	total := done.Sub(t0)
	ct.cmd, ct.present = append(ct.cmd, total), append(ct.present, total)
	ct.add(st10PeerBuild, built.Sub(t0))
	ct.add(st10PeerPull, done.Sub(built))
	return digests, nil
}

// kept counts the services whose digest did not change.
func kept(before, after []string) int {
	n := 0
	for i := range before {
		if before[i] == after[i] {
			n++
		}
	}
	return n
}

func service10(i int) string { return fmt.Sprintf("s%d", i) }

// writeProject10 generates the project: one context directory per
// service (Dockerfile and a few small source files) and a compose.yaml
// placing every image on node1 and node2.
func writeProject10(dst, project, nonce string) error {
	var compose strings.Builder
	fmt.Fprintf(&compose, `# The bench's %d-service project: a fresh project name (hence image
# repositories) and NONCE per repetition, so BuildKit's cache is cold.
name: %s
services:
`, build10Services, project)
	var errs []error
	for i := range build10Services {
		svc := service10(i)
		fmt.Fprintf(&compose, `  %s:
    build:
      context: ./%s
      dockerfile: Dockerfile
      args:
        NONCE: "%s"
    x-machines: [node1, node2]
`, svc, svc, nonce)
		files := map[string]string{
			"Dockerfile":        build10Dockerfile,
			"src/main.sh":       fmt.Sprintf("#!/bin/sh\necho \"service %s\"\n", svc),
			"src/config.txt":    fmt.Sprintf("name=%s\nindex=%d\n", svc, i),
			"src/lib/util.sh":   fmt.Sprintf("# helpers of %s\nsay() { echo \"%s: $*\"; }\n", svc, svc),
			"src/data/data.txt": strings.Repeat(fmt.Sprintf("%s line\n", svc), 50),
		}
		for name, body := range files {
			errs = append(errs, writeFile(filepath.Join(dst, svc, name), body))
		}
	}
	errs = append(errs, writeFile(filepath.Join(dst, "compose.yaml"), compose.String()))
	return errors.Join(errs...)
}

// editSource10 is case (c)'s one-file change, in one service; tag keeps it
// unique.
func editSource10(proj, tag string) error {
	return writeFile(filepath.Join(proj, service10(build10Edited), "src", "config.txt"),
		fmt.Sprintf("name=%s\nindex=%d\nedited by the bench (%s)\n", service10(build10Edited), build10Edited, tag))
}

func writeFile(path, body string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(body), 0o644)
}
