package main

// Measurement 4: build and pre-pull of the hello project on real
// infrastructure (hack/up.sh: one buildkitd, two Docker Engines = two
// nodes), with two `ucd run` nodes, beside the same work done by hand with
// buildctl and docker pull.

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/test/harness"
)

// helloDockerfile replaces examples/hello's Dockerfile so the build does
// some work and the cache shows: NONCE (fresh per repetition) invalidates
// everything from the first RUN on, and a message.txt edit only the COPY
// and what follows it.
const helloDockerfile = `FROM busybox
ARG NONCE
RUN echo "bench nonce $NONCE" > /nonce && seq 1 200000 | md5sum > /sum
ARG GREETING
ENV GREETING=${GREETING}
COPY message.txt /message.txt
RUN cat /message.txt /sum > /summary
CMD ["sh", "-c", "echo $GREETING from uc; cat /message.txt"]
`

// waitTimeout bounds every `uc wait images`.
const waitTimeout = "5m"

// The three cases, in the order each repetition runs them.
const (
	caseCold = iota
	caseNoop
	caseEdit
	numCases
)

var caseNames = [numCases]string{"(a) cold build", "(b) no-change re-apply", "(c) one-file change"}

// Steps of the per-step breakdown.
const (
	stApply      = "uc apply (command)"
	stQueue      = "apply returned → build started"
	stBuild      = "build: started_at → finished_at"
	stPull1      = "pull on node1 (ucd log)"
	stPull2      = "pull on node2 (ucd log)"
	stDistribute = "build finished → present on both"
	stWaitTail   = "present on both → uc wait returned"
	stWait       = "uc wait images (command)"
	stPeerBuild  = "buildctl build + push"
	stPeerPull1  = "docker pull on node1"
	stPeerPull2  = "docker pull on node2"
	stPeerBoth   = "docker pull on both at once (again, after rmi; not in the total)"
)

// caseTimes holds one case's repetitions for uc or the peer.
type caseTimes struct {
	cmd     []time.Duration // until the command returns
	present []time.Duration // until present on both nodes
	steps   map[string][]time.Duration
}

func (c *caseTimes) add(step string, d time.Duration) {
	if c.steps == nil {
		c.steps = map[string][]time.Duration{}
	}
	c.steps[step] = append(c.steps[step], d)
}

// buildResult is measurement 4; skipped says why it did not run.
type buildResult struct {
	skipped  string
	reps     int
	uc, peer [numCases]caseTimes
	// peerNoopSame counts no-change peer builds that gave the digest of
	// the cold one.
	peerNoopSame int
	buildkit     string
}

// buildEnv is hack/up.sh's env file.
type buildEnv map[string]string

var buildEnvKeys = []string{"UC_REGISTRY", "UC_BUILDKIT_ADDR", "UC_BUILDCTL", "UC_DOCKER_HOST_1", "UC_DOCKER_HOST_2"}

// benchBuild runs every repetition of the hello project, uc then peer, on
// the shared build cluster (withBuildCluster).
func benchBuild(ctx context.Context, cfg config, bins binaries, dir string) (buildResult, error) {
	res := buildResult{reps: cfg.buildReps}
	var warm buildResult
	skip, err := withBuildCluster(ctx, bins, dir, "measurement 4", func(root string, c *buildCluster) error {
		res.buildkit = c.env["UC_BUILDKIT_VERSION"]
		round := func(f func(context.Context, string, string, *buildResult) error) func(context.Context, bool) error {
			return func(ctx context.Context, timed bool) error {
				if timed {
					return f(ctx, root, dir, &res)
				}
				return f(ctx, root, dir, &warm)
			}
		}
		return alternate(ctx, "measurement 4", cfg.buildReps,
			benchSide{"uc", round(c.ucRound)}, benchSide{"peer (buildctl + docker pull)", round(c.peerRound)})
	})
	res.skipped = skip
	return res, err
}

// withBuildCluster brings the infrastructure up, starts two nodes and runs
// fn. Whatever happens, it stops the nodes, removes what was pulled onto
// the engines and deletes dir; hack/up.sh's infrastructure stays up. A
// non-empty skip says why the section cannot run honestly.
func withBuildCluster(ctx context.Context, bins binaries, dir, label string, fn func(root string, c *buildCluster) error, node2Extra ...string) (skip string, err error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	defer removeWork(dir)
	env, skip := bringUpInfra(ctx, root, filepath.Join(dir, "up.log"))
	if skip != "" {
		return skip, nil
	}
	c, err := startBuildCluster(ctx, bins, env, dir, label, node2Extra...)
	if err != nil {
		return "", err
	}
	defer c.cleanup()
	return "", fn(root, c)
}

// benchSide is one way of doing a section's work; round runs all its
// cases once, into the results when timed, into a throw-away otherwise.
type benchSide struct {
	name  string
	round func(ctx context.Context, timed bool) error
}

// alternate runs one untimed round of each side first, so neither pays
// alone for what the first build of a run does once (connections, the
// registry's first push, page cache); then reps timed rounds, the order
// alternating (uc first in odd repetitions).
func alternate(ctx context.Context, label string, reps int, uc, peer benchSide) error {
	for _, s := range []benchSide{uc, peer} {
		progress("%s: warm-up, untimed: %s", label, s.name)
		if err := s.round(ctx, false); err != nil {
			return fmt.Errorf("warm-up, %s: %w", s.name, err)
		}
	}
	for rep := range reps {
		order := []benchSide{uc, peer}
		if rep%2 == 1 {
			order = []benchSide{peer, uc}
		}
		for _, s := range order {
			progress("%s: repetition %d/%d: %s", label, rep+1, reps, s.name)
			if err := s.round(ctx, true); err != nil {
				return fmt.Errorf("%s, repetition %d: %w", s.name, rep+1, err)
			}
		}
	}
	return nil
}

// bringUpInfra runs hack/up.sh and reads its env file. A non-empty reason
// means the section cannot run honestly and is skipped.
func bringUpInfra(ctx context.Context, root, logPath string) (buildEnv, string) {
	progress("running hack/up.sh (log: %s)", logPath)
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err.Error()
	}
	// A cold machine builds buildkit and installs packages: minutes.
	upCtx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(upCtx, filepath.Join(root, "hack", "up.sh"))
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	f.Close()
	if err != nil {
		b, _ := os.ReadFile(logPath)
		return nil, fmt.Sprintf("hack/up.sh failed (%v): %s", err, strings.ReplaceAll(lastLines(string(b), 2), "\n", " | "))
	}
	path := filepath.Join(cmp.Or(os.Getenv("UC_RUN_DIR"), "/run/uc-hack"), "env")
	env, err := readEnvFile(path)
	if err != nil {
		return nil, err.Error()
	}
	for _, k := range buildEnvKeys {
		if env[k] == "" {
			return nil, fmt.Sprintf("%s does not set %s", path, k)
		}
	}
	if _, err := exec.LookPath("docker"); err != nil {
		return nil, "no docker CLI on PATH"
	}
	// The registry address is ucd's to serve: someone else holding it
	// (an e2e test, hack/demo.sh) would mix their work into ours.
	if ln, err := net.Listen("tcp", env["UC_REGISTRY"]); err != nil {
		return nil, fmt.Sprintf("UC_REGISTRY %s is in use (an e2e test or hack/demo.sh running?): %v", env["UC_REGISTRY"], err)
	} else {
		ln.Close()
	}
	return env, ""
}

func readEnvFile(path string) (buildEnv, error) { return harness.ReadEnvFile(path) }

// buildCluster is two `ucd run` nodes on the hack engines: node1 serves the
// embedded state and the internal registry, node2 uses node1's state; both
// build with the one buildkitd.
type buildCluster struct {
	label        string // the section, in progress lines
	env          buildEnv
	bins         binaries
	api          string
	nodes        []string
	procs        []*proc
	dockerConfig string   // private DOCKER_CONFIG for the peer's docker CLI
	peerPulled   []string // references the peer pulled onto both engines
}

func startBuildCluster(ctx context.Context, bins binaries, env buildEnv, dir, label string, node2Extra ...string) (*buildCluster, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	c := &buildCluster{label: label, env: env, bins: bins, api: "http://" + addr, dockerConfig: filepath.Join(dir, "docker-config")}
	if err := os.MkdirAll(c.dockerConfig, 0o700); err != nil {
		return nil, err
	}
	start := func(node string, extra ...string) error {
		args := append([]string{"run", "--node", node, "--data-dir", filepath.Join(dir, node)}, extra...)
		p, err := startProc("ucd "+node, filepath.Join(dir, node+".log"), bins.UCD, args...)
		if err != nil {
			return err
		}
		c.nodes, c.procs = append(c.nodes, node), append(c.procs, p)
		return c.waitReady(ctx, c.nodes...)
	}
	progress("starting ucd node1 (state %s, registry %s) and node2", addr, env["UC_REGISTRY"])
	err = start("node1", "--state-listen", addr, "--docker-host", env["UC_DOCKER_HOST_1"],
		"--buildkit-addr", env["UC_BUILDKIT_ADDR"], "--registry-listen", env["UC_REGISTRY"])
	if err == nil {
		err = start("node2", append([]string{"--corrosion-api", c.api, "--docker-host", env["UC_DOCKER_HOST_2"],
			"--buildkit-addr", env["UC_BUILDKIT_ADDR"]}, node2Extra...)...)
	}
	if err == nil {
		err = c.waitRegistry(ctx)
	}
	if err != nil {
		c.stopNodes()
		return nil, err
	}
	return c, nil
}

// waitReady polls `uc get nodes` until every named node is Ready.
func (c *buildCluster) waitReady(ctx context.Context, nodes ...string) error {
	return waitUntilErr(ctx, 30*time.Second, func() error {
		if err := c.exited(); err != nil {
			return err
		}
		_, out, err := c.uc(ctx, "", "get", "nodes")
		if err != nil {
			return errNotYet
		}
		for _, n := range nodes {
			if !hasReadyNode(out, n) {
				return errNotYet
			}
		}
		return nil
	})
}

// waitRegistry waits until node1's internal registry accepts connections,
// so the first repetition does not time the registry's start.
func (c *buildCluster) waitRegistry(ctx context.Context) error {
	return waitUntilErr(ctx, 30*time.Second, func() error {
		if err := c.exited(); err != nil {
			return err
		}
		conn, err := net.DialTimeout("tcp", c.env["UC_REGISTRY"], time.Second)
		if err != nil {
			return errNotYet
		}
		conn.Close()
		return nil
	})
}

func (c *buildCluster) exited() error {
	for _, p := range c.procs {
		if err := p.Exited(); err != nil {
			return err
		}
	}
	return nil
}

// stopNodes stops node2 before node1, whose state node2 reports to.
func (c *buildCluster) stopNodes() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].Stop()
	}
}

// cleanup stops the nodes first (so nothing pulls again), then removes
// every image the bench pulled onto the engines: later runs then pull
// again, as a cold run must.
func (c *buildCluster) cleanup() {
	c.stopNodes()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hosts := map[string]string{"node1": c.env["UC_DOCKER_HOST_1"], "node2": c.env["UC_DOCKER_HOST_2"]}
	type target struct{ host, ref string }
	var targets []target
	seen := map[target]bool{}
	addTarget := func(t target) {
		if !seen[t] {
			seen[t] = true
			targets = append(targets, t)
		}
	}
	for _, p := range c.pulls() {
		addTarget(target{hosts[p.node], p.ref})
	}
	for _, ref := range c.peerPulled {
		addTarget(target{hosts["node1"], ref})
		addTarget(target{hosts["node2"], ref})
	}
	removed := 0
	for _, t := range targets {
		out, err := exec.CommandContext(ctx, "docker", "-H", t.host, "rmi", t.ref).CombinedOutput()
		switch {
		case err == nil:
			removed++
		case !strings.Contains(strings.ToLower(string(out)), "no such image"):
			progress("docker -H %s rmi %s: %v: %s", t.host, t.ref, err, strings.TrimSpace(string(out)))
		}
	}
	progress("%s: stopped both ucd; removed %d pulled images from the engines", c.label, removed)
}

// uc runs the CLI against the cluster's state.
func (c *buildCluster) uc(ctx context.Context, dir string, args ...string) (time.Duration, string, error) {
	return timed(ctx, dir, nil, c.bins.UC, append([]string{"--corrosion-api", c.api}, args...)...)
}

// buildsStarted counts the builds of name the nodes started, from their
// logs, as the e2e test does.
func (c *buildCluster) buildsStarted(name string) int {
	n := 0
	for _, p := range c.procs {
		b, _ := os.ReadFile(p.Log)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "msg=Building. ") && strings.Contains(line, " build="+name+" ") {
				n++
			}
		}
	}
	return n
}

// pullLine is one "Image is present." log line: a pull ucd made.
type pullLine struct {
	node, image, ref string
	dur              time.Duration
}

func (c *buildCluster) pulls() []pullLine {
	var out []pullLine
	for i, p := range c.procs {
		b, _ := os.ReadFile(p.Log)
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, `msg="Image is present."`) {
				continue
			}
			pl := pullLine{node: c.nodes[i]}
			for _, f := range strings.Fields(line) {
				switch k, v, _ := strings.Cut(f, "="); k {
				case "image":
					pl.image = v
				case "ref":
					pl.ref = v
				case "duration":
					pl.dur, _ = time.ParseDuration(v)
				}
			}
			if pl.ref != "" {
				out = append(out, pl)
			}
		}
	}
	return out
}

// logged counts, per node, the log lines that hold msg.
func (c *buildCluster) logged(msg string) []int {
	out := make([]int, len(c.procs))
	for i, p := range c.procs {
		b, _ := os.ReadFile(p.Log)
		out[i] = strings.Count(string(b), msg)
	}
	return out
}

// pullOf is how long node took to pull image at digest.
func (c *buildCluster) pullOf(node, image, digest string) (time.Duration, bool) {
	for _, p := range c.pulls() {
		if p.node == node && p.image == image && strings.HasSuffix(p.ref, "@"+digest) {
			return p.dur, true
		}
	}
	return 0, false
}

// ucState is what the state says of one built image.
type ucState struct {
	started, finished time.Time
	digest            string
	present           map[string]time.Time // node → when its present row was written
}

// inspect reads the build's current status and the image's presence rows
// through `uc get … -o json`.
func (c *buildCluster) inspect(ctx context.Context, name string) (ucState, error) {
	var st ucState
	_, out, err := c.uc(ctx, "", "get", "builds", name, "-o", "json")
	if err != nil {
		return st, err
	}
	var builds []state.BuildRecord
	if err := json.Unmarshal([]byte(out), &builds); err != nil || len(builds) != 1 {
		return st, fmt.Errorf("uc get builds %s -o json: %v (%d builds)", name, err, len(builds))
	}
	cur, ok := builds[0].Current()
	if !ok || cur.Phase != api.BuildSucceeded || cur.ObservedGeneration != builds[0].Meta.Generation {
		return st, fmt.Errorf("build %s has no success for generation %d: %+v", name, builds[0].Meta.Generation, cur)
	}
	st.started, st.finished, st.digest = cur.Detail.StartedAt, cur.Detail.FinishedAt, cur.Digest
	_, out, err = c.uc(ctx, "", "get", "images", name, "-o", "json")
	if err != nil {
		return st, err
	}
	var imgs []state.ImageRecord
	if err := json.Unmarshal([]byte(out), &imgs); err != nil || len(imgs) != 1 {
		return st, fmt.Errorf("uc get images %s -o json: %v (%d images)", name, err, len(imgs))
	}
	st.present = map[string]time.Time{}
	for _, p := range imgs[0].Presence {
		if p.SpecUID == imgs[0].Meta.UID && p.State == api.PresencePresent && p.Digest == st.digest {
			st.present[p.Node] = p.UpdatedAt
		}
	}
	if len(st.present) != 2 {
		return st, fmt.Errorf("%s@%s present on %d nodes after uc wait, want 2: %+v", name, st.digest, len(st.present), imgs[0].Presence)
	}
	return st, nil
}

// ucRound runs cases (a), (b) and (c) for uc on a fresh project (fresh
// project name, hence image repository, and fresh NONCE).
func (c *buildCluster) ucRound(ctx context.Context, root, dir string, r *buildResult) error {
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	project := "ucb" + nonce
	name := project + "/web"
	proj := filepath.Join(dir, "uc-"+nonce)
	if err := writeHelloProject(root, proj, project, nonce); err != nil {
		return err
	}

	first, err := c.ucCase(ctx, proj, name, &r.uc[caseCold], wantActions(map[string]int{state.Created: 2}))
	if err != nil {
		return fmt.Errorf("%s: %w", caseNames[caseCold], err)
	}
	if n := c.buildsStarted(name); n != 1 {
		return fmt.Errorf("%s: %d builds of %s started, want 1", caseNames[caseCold], n, name)
	}

	// (b): the apply must write nothing and start no build; uc wait then
	// returns at once, as everything is present.
	ct := &r.uc[caseNoop]
	t0 := time.Now()
	applyDur, out, err := c.uc(ctx, proj, "apply", "-f", "compose.yaml")
	if err == nil {
		err = wantNothingChanged(out)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", caseNames[caseNoop], err)
	}
	if _, _, err := c.uc(ctx, proj, "wait", "images", name, "--timeout", waitTimeout); err != nil {
		return fmt.Errorf("%s: %w", caseNames[caseNoop], err)
	}
	total := time.Since(t0)
	ct.cmd, ct.present = append(ct.cmd, applyDur), append(ct.present, total)
	ct.add(stApply, applyDur)
	ct.add(stWait, total-applyDur)
	// Give a wrongly triggered build time to start (not timed).
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2 * time.Second):
	}
	if n := c.buildsStarted(name); n != 1 {
		return fmt.Errorf("%s: %d builds of %s started in all, want still 1", caseNames[caseNoop], n, name)
	}

	if err := editMessage(proj, "uc "+nonce); err != nil {
		return err
	}
	second, err := c.ucCase(ctx, proj, name, &r.uc[caseEdit], wantActions(map[string]int{state.Configured: 1}))
	if err != nil {
		return fmt.Errorf("%s: %w", caseNames[caseEdit], err)
	}
	if second.digest == first.digest {
		return fmt.Errorf("%s: digest stayed %s after editing message.txt", caseNames[caseEdit], first.digest)
	}
	if n := c.buildsStarted(name); n != 2 {
		return fmt.Errorf("%s: %d builds of %s started in all, want 2", caseNames[caseEdit], n, name)
	}
	return nil
}

// ucCase times `uc apply` then `uc wait images` until the image is present
// on both nodes, and splits the time with the state's timestamps.
func (c *buildCluster) ucCase(ctx context.Context, proj, name string, ct *caseTimes, want func(string) error) (ucState, error) {
	t0 := time.Now()
	applyDur, out, err := c.uc(ctx, proj, "apply", "-f", "compose.yaml")
	if err == nil {
		err = want(out)
	}
	if err != nil {
		return ucState{}, err
	}
	applied := t0.Add(applyDur)
	if _, _, err := c.uc(ctx, proj, "wait", "images", name, "--timeout", waitTimeout); err != nil {
		return ucState{}, fmt.Errorf("%w\n%s", err, c.logTails())
	}
	done := time.Now()
	st, err := c.inspect(ctx, name)
	if err != nil {
		return st, err
	}
	var last time.Time
	for _, t := range st.present {
		if t.After(last) {
			last = t
		}
	}
	ct.cmd, ct.present = append(ct.cmd, applyDur), append(ct.present, done.Sub(t0))
	ct.add(stApply, applyDur)
	ct.add(stQueue, st.started.Sub(applied))
	ct.add(stBuild, st.finished.Sub(st.started))
	ct.add(stDistribute, last.Sub(st.finished))
	ct.add(stWaitTail, done.Sub(last))
	ct.add(stWait, done.Sub(applied))
	for node, step := range map[string]string{"node1": stPull1, "node2": stPull2} {
		if d, ok := c.pullOf(node, name, st.digest); ok {
			ct.add(step, d)
		}
	}
	return st, nil
}

func (c *buildCluster) logTails() string {
	var b strings.Builder
	for i, p := range c.procs {
		fmt.Fprintf(&b, "--- %s log (end):\n%s\n", c.nodes[i], p.Tail())
	}
	return b.String()
}

// peerRound does by hand what uc does in ucRound, on its own fresh project
// and repository, so it shares no cache with uc's builds.
func (c *buildCluster) peerRound(ctx context.Context, root, dir string, r *buildResult) error {
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	proj := filepath.Join(dir, "peer-"+nonce)
	if err := writeHelloProject(root, proj, "pb"+nonce, nonce); err != nil {
		return err
	}
	repo := c.env["UC_REGISTRY"] + "/peer/pb" + nonce
	meta := filepath.Join(dir, "peer-"+nonce+".json") // outside the context
	first, err := c.peerCase(ctx, proj, repo, nonce, meta, &r.peer[caseCold])
	if err != nil {
		return fmt.Errorf("%s: %w", caseNames[caseCold], err)
	}
	again, err := c.peerCase(ctx, proj, repo, nonce, meta, &r.peer[caseNoop])
	if err != nil {
		return fmt.Errorf("%s: %w", caseNames[caseNoop], err)
	}
	if again == first {
		r.peerNoopSame++
	}
	if err := editMessage(proj, "peer "+nonce); err != nil {
		return err
	}
	edited, err := c.peerCase(ctx, proj, repo, nonce, meta, &r.peer[caseEdit])
	if err != nil {
		return fmt.Errorf("%s: %w", caseNames[caseEdit], err)
	}
	if edited == first {
		return fmt.Errorf("%s: digest stayed %s after editing message.txt", caseNames[caseEdit], first)
	}
	return nil
}

// peerCase is buildctl build + push, then docker pull by digest on node1,
// then on node2; it returns the digest.
func (c *buildCluster) peerCase(ctx context.Context, proj, repo, nonce, meta string, ct *caseTimes) (string, error) {
	_ = os.Remove(meta)
	t0 := time.Now()
	buildDur, _, err := timed(ctx, "", nil, c.env["UC_BUILDCTL"], "--addr", c.env["UC_BUILDKIT_ADDR"],
		"build", "--progress=plain", "--frontend", "dockerfile.v0",
		"--local", "context="+proj, "--local", "dockerfile="+proj,
		"--opt", "build-arg:GREETING=hello", "--opt", "build-arg:NONCE="+nonce,
		"--output", "type=image,name="+repo+":latest,push=true,registry.insecure=true",
		"--metadata-file", meta)
	if err != nil {
		return "", err
	}
	digest, err := metadataDigest(meta)
	if err != nil {
		return "", err
	}
	ref := repo + "@" + digest
	c.notePeerPull(ref)
	env := []string{"DOCKER_CONFIG=" + c.dockerConfig}
	pull1, _, err := timed(ctx, "", env, "docker", "-H", c.env["UC_DOCKER_HOST_1"], "pull", ref)
	if err != nil {
		return "", err
	}
	pull2, _, err := timed(ctx, "", env, "docker", "-H", c.env["UC_DOCKER_HOST_2"], "pull", ref)
	if err != nil {
		return "", err
	}
	total := time.Since(t0)
	ct.cmd, ct.present = append(ct.cmd, total), append(ct.present, total)
	ct.add(stPeerBuild, buildDur)
	ct.add(stPeerPull1, pull1)
	ct.add(stPeerPull2, pull2)
	both, err := c.repullOnBoth(ctx, env, ref)
	if err != nil {
		return "", err
	}
	ct.add(stPeerBoth, both)
	return digest, nil
}

// repullOnBoth removes ref from both engines and pulls it on both at once,
// as uc's two nodes do: the same work, so that "build finished → present
// on both" has its peer (two engines on one host share its CPU).
func (c *buildCluster) repullOnBoth(ctx context.Context, env []string, ref string) (time.Duration, error) {
	hosts := []string{c.env["UC_DOCKER_HOST_1"], c.env["UC_DOCKER_HOST_2"]}
	for _, h := range hosts {
		if _, out, err := timed(ctx, "", env, "docker", "-H", h, "rmi", ref); err != nil {
			return 0, fmt.Errorf("docker rmi %s: %w\n%s", ref, err, out)
		}
	}
	t0 := time.Now()
	errs := make(chan error, len(hosts))
	for _, h := range hosts {
		go func() {
			_, out, err := timed(ctx, "", env, "docker", "-H", h, "pull", ref)
			if err != nil {
				err = fmt.Errorf("docker pull %s: %w\n%s", ref, err, out)
			}
			errs <- err
		}()
	}
	var err error
	for range hosts {
		err = errors.Join(err, <-errs)
	}
	return time.Since(t0), err
}

// notePeerPull records ref for cleanup, once.
func (c *buildCluster) notePeerPull(ref string) {
	if !slices.Contains(c.peerPulled, ref) {
		c.peerPulled = append(c.peerPulled, ref)
	}
}

// metadataDigest reads containerimage.digest from buildctl's metadata file.
func metadataDigest(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("buildctl metadata: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("buildctl metadata %s: %w", path, err)
	}
	d, _ := m["containerimage.digest"].(string)
	if !strings.HasPrefix(d, "sha256:") {
		return "", fmt.Errorf("buildctl metadata %s has no containerimage.digest", path)
	}
	return d, nil
}

// writeHelloProject copies examples/hello to dst with the bench's
// Dockerfile and a compose.yaml naming the project and its NONCE.
func writeHelloProject(root, dst, project, nonce string) error {
	src := filepath.Join(root, "examples", "hello")
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	compose := fmt.Sprintf(`# examples/hello as the bench runs it: a fresh project name (hence image
# repository) and NONCE per repetition, so BuildKit's cache is cold.
name: %s
services:
  web:
    build:
      context: .
      dockerfile: Dockerfile
      args:
        GREETING: hello
        NONCE: "%s"
    x-machines: [node1, node2]
`, project, nonce)
	return errors.Join(
		os.WriteFile(filepath.Join(dst, "Dockerfile"), []byte(helloDockerfile), 0o644),
		os.WriteFile(filepath.Join(dst, "compose.yaml"), []byte(compose), 0o644))
}

// editMessage is case (c)'s one-file change; tag keeps it unique.
func editMessage(proj, tag string) error {
	return os.WriteFile(filepath.Join(proj, "message.txt"),
		[]byte("This image was built and distributed by uc; edited by the bench ("+tag+").\n"), 0o644)
}

func newNonce() (string, error) {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
