package main

// Measurements 8 and 9 (sections prepull and prepullidle), on three `ucd
// run` nodes, each with its own Docker Engine from hack/up.sh:
//
//   - prepull: the time until a 50 MiB image is present on all 3 engines,
//     beside `docker pull` on each engine in sequence and the single-engine
//     pull, which is the limit;
//   - prepullidle: CPU, memory and the requests reaching the state and the
//     engines of an idle cluster holding 1,000 image specs × 3 nodes.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/test/harness"
)

const (
	// prepullBlobSize is the random file in measurement 8's one layer.
	prepullBlobSize = 50 << 20
	// prepullIdleSpecs is how many image specs measurement 9's cluster holds.
	prepullIdleSpecs = 1000
	// prepullIdleSettle is the quiet time between "all present" and the
	// sampling window.
	prepullIdleSettle = 10 * time.Second
	// prepullNodes is the cluster's size: node1..node3 on engine1..engine3.
	prepullNodes = 3

	dockerManifestType = "application/vnd.docker.distribution.manifest.v2+json"
)

var prepullEnvKeys = []string{"UC_DOCKER_HOST_3", "UC_BASE_IMAGE"}

// ---------------------------------------------------------------- measurement 8

// prepullResult is measurement 8; skipped says why it did not run.
type prepullResult struct {
	skipped   string
	reps      int
	layerSize int64 // bytes of the one (gzip) layer each pull transfers
	cpus      int
	registry  string
	// uc: apply start → `uc wait images` returned; its two commands; each
	// node's pull from its presence row's detail.duration.
	ucTotal, ucApply, ucWait []time.Duration
	ucToPull, ucTail         []time.Duration // apply start → first pull started; last pull done → uc wait returned
	ucNode                   [prepullNodes][]time.Duration
	ucNoDuration             int // present rows without detail.duration
	// peer: docker pull on engine 1, 2, 3 in sequence.
	peerTotal []time.Duration
	peerPull  [prepullNodes][]time.Duration
}

// limit is every single-engine pull of the peer.
func (r prepullResult) limit() []time.Duration {
	var all []time.Duration
	for _, p := range r.peerPull {
		all = append(all, p...)
	}
	return all
}

func benchPrepull(ctx context.Context, cfg config, bins binaries, dir string) (prepullResult, error) {
	res := prepullResult{reps: cfg.buildReps, cpus: runtime.NumCPU()}
	var warm prepullResult
	skip, err := withPrepullCluster(ctx, bins, dir, "measurement 8", false, func(c *prepullCluster) error {
		res.registry = c.env["UC_REGISTRY"]
		round := func(f func(context.Context, string, *prepullResult) error) func(context.Context, bool) error {
			return func(ctx context.Context, timed bool) error {
				if timed {
					return f(ctx, dir, &res)
				}
				return f(ctx, dir, &warm)
			}
		}
		return alternate(ctx, "measurement 8", cfg.buildReps,
			benchSide{"uc", round(c.ucPrepull)}, benchSide{"peer (docker pull on each engine in sequence)", round(c.peerPrepull)})
	})
	res.skipped = skip
	return res, err
}

// ucPrepull applies one image spec for a fresh repository and times it
// until `uc wait images` says it is present on all 3 nodes; then it
// deletes the spec and removes the image from the engines (untimed).
func (c *prepullCluster) ucPrepull(ctx context.Context, dir string, r *prepullResult) error {
	img, err := c.contentFor("uc")
	if err != nil {
		return err
	}
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	project := "ucpp" + nonce
	name := project + "/big"
	ref := c.env["UC_REGISTRY"] + "/" + project + "/big:v1"
	if err := c.pushAndCheckCold(ctx, img, project+"/big", "v1"); err != nil {
		return err
	}
	r.layerSize = int64(len(img.layer))
	proj := filepath.Join(dir, "uc-"+nonce)
	compose := fmt.Sprintf("# measurement 8: one external image, placed on every node (the default)\nname: %s\nservices:\n  big:\n    image: %s\n", project, ref)
	if err := writeFile(filepath.Join(proj, "compose.yaml"), compose); err != nil {
		return err
	}

	t0 := time.Now()
	applyDur, out, err := c.uc(ctx, proj, "apply", "-f", "compose.yaml")
	if err == nil {
		err = wantActions(map[string]int{state.Created: 1})(out)
	}
	if err != nil {
		return err
	}
	waitDur, _, err := c.uc(ctx, proj, "wait", "images", name, "--timeout", waitTimeout)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, c.logTails())
	}
	total := time.Since(t0)

	done := t0.Add(total)
	rows, missing, err := c.presentEverywhere(ctx, name, img.manifestDigest.String())
	if err == nil {
		err = c.onEveryEngine(ctx, img)
	}
	if err != nil {
		return err
	}
	r.ucTotal, r.ucApply, r.ucWait = append(r.ucTotal, total), append(r.ucApply, applyDur), append(r.ucWait, waitDur)
	var first, last time.Time
	for i, p := range rows {
		if d := p.Duration; d > 0 {
			r.ucNode[i] = append(r.ucNode[i], d)
			if end := p.StartedAt.Add(d); end.After(last) {
				last = end
			}
		}
		if s := p.StartedAt; !s.IsZero() && (first.IsZero() || s.Before(first)) {
			first = s
		}
	}
	if !first.IsZero() {
		r.ucToPull = append(r.ucToPull, first.Sub(t0))
	}
	if missing == 0 {
		r.ucTail = append(r.ucTail, done.Sub(last))
	}
	r.ucNoDuration += missing

	// The spec goes first, so no node pulls the image again once it is
	// removed from the engines.
	if _, out, err := c.uc(ctx, proj, "delete", "-f", "compose.yaml"); err != nil {
		return fmt.Errorf("uc delete: %v: %s", err, out)
	}
	return c.removeImage(ctx, img)
}

// presentEverywhere checks, through `uc get images NAME -o json`, that
// every node has a present row for want, and returns each node's pull
// detail (started_at, duration; zero when the row has none) and how many
// rows had no duration.
func (c *prepullCluster) presentEverywhere(ctx context.Context, name, want string) ([prepullNodes]api.PresenceDetail, int, error) {
	var details [prepullNodes]api.PresenceDetail
	_, out, err := c.uc(ctx, "", "get", "images", name, "-o", "json")
	if err != nil {
		return details, 0, err
	}
	var imgs []state.ImageRecord
	if err := json.Unmarshal([]byte(out), &imgs); err != nil || len(imgs) != 1 {
		return details, 0, fmt.Errorf("uc get images %s -o json: %v (%d images)", name, err, len(imgs))
	}
	found, missing := 0, 0
	for _, p := range imgs[0].Presence {
		i := slices.Index(c.nodes, p.Node)
		if i < 0 || p.SpecUID != imgs[0].Meta.UID || p.State != api.PresencePresent || p.Digest != want {
			continue
		}
		found++
		details[i] = p.Detail
		if p.Detail.Duration <= 0 {
			missing++
		}
	}
	if found != prepullNodes {
		return details, 0, fmt.Errorf("%s@%s present on %d nodes after uc wait, want %d: %+v", name, want, found, prepullNodes, imgs[0].Presence)
	}
	return details, missing, nil
}

// peerPrepull pushes the repetition's content under its own fresh
// repository and pulls it with docker on engine 1, 2 and 3 in sequence.
func (c *prepullCluster) peerPrepull(ctx context.Context, _ string, r *prepullResult) error {
	img, err := c.contentFor("peer")
	if err != nil {
		return err
	}
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	repo := "peerpp" + nonce + "/big"
	if err := c.pushAndCheckCold(ctx, img, repo, "v1"); err != nil {
		return err
	}
	r.layerSize = int64(len(img.layer))
	ref := c.env["UC_REGISTRY"] + "/" + repo + ":v1"
	env := []string{"DOCKER_CONFIG=" + c.dockerConfig}
	var pulls [prepullNodes]time.Duration
	t0 := time.Now()
	for i, host := range c.hosts {
		d, _, err := timed(ctx, "", env, "docker", "-H", host, "pull", ref)
		if err != nil {
			return err
		}
		pulls[i] = d
	}
	total := time.Since(t0)
	if err := c.onEveryEngine(ctx, img); err != nil {
		return err
	}
	r.peerTotal = append(r.peerTotal, total)
	for i, d := range pulls {
		r.peerPull[i] = append(r.peerPull[i], d)
	}
	return c.removeImage(ctx, img)
}

// contentFor returns the repetition's image: new content when side has
// already used the current one, so both sides of a repetition pull the
// same bytes and no repetition reuses another's.
func (c *prepullCluster) contentFor(side string) (*bigImage, error) {
	if c.content == nil || c.usedBy[side] {
		img, err := newBigImage(prepullBlobSize)
		if err != nil {
			return nil, err
		}
		c.content, c.usedBy = img, map[string]bool{}
		c.made = append(c.made, img)
	}
	c.usedBy[side] = true
	return c.content, nil
}

// pushAndCheckCold pushes img as repo:tag to the internal registry and
// checks that no engine holds it: the pulls to come are cold.
func (c *prepullCluster) pushAndCheckCold(ctx context.Context, img *bigImage, repo, tag string) error {
	if err := img.push(c.env["UC_REGISTRY"], repo, tag); err != nil {
		return err
	}
	for i, host := range c.hosts {
		has, err := engineHas(ctx, host, img.id.String())
		if err != nil {
			return err
		}
		if has {
			return fmt.Errorf("engine%d already holds %s before the pull: it would not be cold", i+1, img.id)
		}
	}
	return nil
}

// onEveryEngine checks that every engine holds img (by image id).
func (c *prepullCluster) onEveryEngine(ctx context.Context, img *bigImage) error {
	for i, host := range c.hosts {
		has, err := engineHas(ctx, host, img.id.String())
		if err != nil {
			return err
		}
		if !has {
			return fmt.Errorf("image %s is not on engine%d after the pull", img.id, i+1)
		}
	}
	return nil
}

// removeImage removes img (every reference to it) from every engine and
// checks that it is gone.
func (c *prepullCluster) removeImage(ctx context.Context, img *bigImage) error {
	for i, host := range c.hosts {
		out, err := exec.CommandContext(ctx, "docker", "-H", host, "rmi", "-f", img.id.String()).CombinedOutput()
		if err != nil {
			return fmt.Errorf("docker -H %s rmi -f %s: %v: %s", host, img.id, err, strings.TrimSpace(string(out)))
		}
		if has, err := engineHas(ctx, host, img.id.String()); err != nil || has {
			return fmt.Errorf("image %s still on engine%d after docker rmi -f (%v)", img.id, i+1, err)
		}
	}
	return nil
}

// engineHas reports whether the engine at host holds the image id.
func engineHas(ctx context.Context, host, id string) (bool, error) {
	out, err := exec.CommandContext(ctx, "docker", "-H", host, "image", "inspect", "--format", "{{.Id}}", id).CombinedOutput()
	switch {
	case err == nil:
		return true, nil
	case strings.Contains(strings.ToLower(string(out)), "no such image"):
		return false, nil
	default:
		return false, fmt.Errorf("docker -H %s image inspect %s: %v: %s", host, id, err, strings.TrimSpace(string(out)))
	}
}

// bigImage is a one-layer image made by the bench: a tar holding /blob, n
// random bytes, gzipped without compression (random bytes do not
// compress), its config and a Docker schema 2 manifest.
type bigImage struct {
	layer, config, manifest []byte
	id                      digest.Digest // the config's digest: the engines' image id
	manifestDigest          digest.Digest
}

func newBigImage(n int) (*bigImage, error) {
	var gz bytes.Buffer
	gz.Grow(n + n/100 + 4096)
	zw, err := gzip.NewWriterLevel(&gz, gzip.NoCompression)
	if err != nil {
		return nil, err
	}
	diff := sha256.New() // of the uncompressed tar: the layer's diff id
	tw := tar.NewWriter(io.MultiWriter(zw, diff))
	hdr := &tar.Header{Name: "blob", Mode: 0o644, Size: int64(n), Typeflag: tar.TypeReg,
		ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	chunk := make([]byte, 1<<20)
	for left := n; left > 0; left -= len(chunk) {
		b := chunk[:min(len(chunk), left)]
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := errors.Join(tw.Close(), zw.Close()); err != nil {
		return nil, err
	}
	img := &bigImage{layer: gz.Bytes()}
	img.config = fmt.Appendf(nil, `{"architecture":%q,"os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"uc bench: COPY blob /blob (%d random bytes)"}]}`,
		runtime.GOARCH, hex.EncodeToString(diff.Sum(nil)), n)
	img.id = digest.FromBytes(img.config)
	m := gcManifest{SchemaVersion: 2, MediaType: dockerManifestType,
		Config: gcDescriptor{"application/vnd.docker.container.image.v1+json", img.id, len(img.config)},
		Layers: []gcDescriptor{{"application/vnd.docker.image.rootfs.diff.tar.gzip", digest.FromBytes(img.layer), len(img.layer)}}}
	if img.manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	img.manifestDigest = digest.FromBytes(img.manifest)
	return img, nil
}

// push uploads the blobs and the manifest as repo:tag with plain HTTP, as
// a registry client does (gc.go's client).
func (img *bigImage) push(registry, repo, tag string) error {
	c := newGCClient("http://" + registry)
	for _, b := range [][]byte{img.layer, img.config} {
		if err := c.pushBlob(repo, b); err != nil {
			return fmt.Errorf("push %s/%s: %w", registry, repo, err)
		}
	}
	resp, err := c.send(http.MethodPut, c.base+"/v2/"+repo+"/manifests/"+tag, dockerManifestType, img.manifest)
	if err != nil {
		return fmt.Errorf("put manifest %s/%s:%s: %w", registry, repo, tag, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("put manifest %s/%s:%s: %s", registry, repo, tag, resp.Status)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != img.manifestDigest.String() {
		return fmt.Errorf("put manifest %s/%s:%s: registry says %s, want %s", registry, repo, tag, got, img.manifestDigest)
	}
	return nil
}

// ---------------------------------------------------------------- measurement 9

// prepullIdleResult is measurement 9; skipped says why it did not run.
type prepullIdleResult struct {
	skipped        string
	specs          int
	window, settle time.Duration
	hz             int64
	apply, wait    time.Duration // setting up: uc apply, then uc wait images
	pulls          [prepullNodes]int
	found          [prepullNodes]int // digests already on the engine: no pull
	rows           [prepullNodes]idleNodeRow
	// node1's controllers reach the state over loopback without a proxy:
	// TCP data segments they sent in the window (ss -ti), beside those the
	// proxies' upstream connections sent for the requests they counted.
	node1Segs, proxySegs int64
	tcpNote              string // why the TCP counts are missing, if they are
	proxyErrors          int64
}

// idleNodeRow is one ucd's window.
type idleNodeRow struct {
	node    string
	cpuSec  float64
	pct     float64
	schedMs float64
	rssKB   int64
	state   *reqCounts // nil: not proxied (node1)
	engine  reqCounts
}

// reqCounts are the requests a proxy passed in the window, by class, and
// the response bytes.
type reqCounts struct {
	byClass map[string]int64
	bytes   int64
	open    int64 // streams open at the end of the window
}

func (r reqCounts) total() int64 {
	var n int64
	for _, v := range r.byClass {
		n += v
	}
	return n
}

// Request classes of the state proxies and the engine proxies.
const (
	clsSubscribe = "subscriptions opened"
	clsQuery     = "queries"
	clsTx        = "transactions"
	clsOther     = "other"
	clsInspect   = "image inspect"
	clsPull      = "image pull"
	clsDist      = "distribution inspect"
	clsContainer = "containers"
)

func runPrepullIdle(ctx context.Context, cfg config, bins binaries, work string, sum *summary) error {
	progress("measurement 9: idle cluster of %d nodes holding %d image specs, %s window", prepullNodes, prepullIdleSpecs, cfg.idleWindow)
	return keep(&sum.prepullIdle, prepullIdleResult.print)(benchPrepullIdle(ctx, cfg, bins, filepath.Join(work, "prepullidle")))
}

// runPrepullIdleBeside runs measurement 9 on the uc of cfg.before too,
// first, and prints the state request rates of both side by side.
func runPrepullIdleBeside(ctx context.Context, cfg config, bins binaries, work string, sum *summary) error {
	if cfg.before == "" {
		return runPrepullIdle(ctx, cfg, bins, work, sum)
	}
	old, err := harness.BuildBinariesAt(ctx, filepath.Join(work, "bin-before"), cfg.before)
	if err != nil {
		progress("measurement 9: cannot build uc as of %s, so no before column: %v", cfg.before, err)
		return runPrepullIdle(ctx, cfg, bins, work, sum)
	}
	progress("measurement 9 (before: uc as of %s)", cfg.before)
	was, err := benchPrepullIdle(ctx, cfg, old, filepath.Join(work, "prepullidle-before"))
	if err != nil {
		return fmt.Errorf("as of %s: %w", cfg.before, err)
	}
	if err := runPrepullIdle(ctx, cfg, bins, work, sum); err != nil {
		return err
	}
	printIdleBeside(cfg.before, was, *sum.prepullIdle)
	return nil
}

func benchPrepullIdle(ctx context.Context, cfg config, bins binaries, dir string) (prepullIdleResult, error) {
	res := prepullIdleResult{specs: prepullIdleSpecs, settle: prepullIdleSettle, hz: clockTicks()}
	skip, err := withPrepullCluster(ctx, bins, dir, "measurement 9", true, func(c *prepullCluster) error {
		return c.idle(ctx, cfg, dir, &res)
	})
	res.skipped = skip
	return res, err
}

func (c *prepullCluster) idle(ctx context.Context, cfg config, dir string, res *prepullIdleResult) error {
	proj := filepath.Join(dir, "specs")
	var compose strings.Builder
	fmt.Fprintf(&compose, "# measurement 9: %d external images, each placed on every node (the default)\nname: idle\nservices:\n", prepullIdleSpecs)
	for i := range prepullIdleSpecs {
		fmt.Fprintf(&compose, "  s%04d:\n    image: %s\n", i, c.env["UC_BASE_IMAGE"])
	}
	if err := writeFile(filepath.Join(proj, "compose.yaml"), compose.String()); err != nil {
		return err
	}
	progress("measurement 9: applying %d image specs of %s", prepullIdleSpecs, c.env["UC_BASE_IMAGE"])
	applyDur, out, err := c.uc(ctx, proj, "apply", "-f", "compose.yaml")
	if err == nil {
		err = wantActions(map[string]int{state.Created: prepullIdleSpecs})(out)
	}
	if err != nil {
		return err
	}
	progress("measurement 9: waiting until all %d are present on %d nodes", prepullIdleSpecs, prepullNodes)
	waitDur, _, err := c.uc(ctx, proj, "wait", "images", "--timeout", "15m")
	if err != nil {
		return fmt.Errorf("%w\n%s", err, c.logTails())
	}
	res.apply, res.wait = applyDur, waitDur
	if err := c.allPresent(ctx, prepullIdleSpecs); err != nil {
		return err
	}
	for _, p := range c.pulls() {
		if i := slices.Index(c.nodes, p.node); i >= 0 {
			res.pulls[i]++
		}
	}
	copy(res.found[:], c.logged(`msg="Image is already on the engine; no pull."`))

	progress("measurement 9: all present; settling %s, then sampling %s", prepullIdleSettle, cfg.idleWindow)
	if !sleepCtx(ctx, prepullIdleSettle) {
		return ctx.Err()
	}
	type snap struct {
		ticks, nanos int64
	}
	var before [prepullNodes]snap
	for i, p := range c.procs {
		t, err1 := cpuTicks(p.Pid())
		n, err2 := schedNanos(p.Pid())
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("%w (%v)", err, c.exited())
		}
		before[i] = snap{t, n}
	}
	stateBefore := make([]reqCounts, len(c.stateProxies))
	for i, p := range c.stateProxies {
		stateBefore[i] = p.snapshot()
	}
	engineBefore := make([]reqCounts, len(c.engineProxies))
	for i, p := range c.engineProxies {
		engineBefore[i] = p.snapshot()
	}
	errsBefore := c.proxyErrors()
	statePort := c.statePort()
	tcpBefore, tcpErr := ssSockets(ctx)
	start := time.Now()
	if !sleepCtx(ctx, cfg.idleWindow) {
		return ctx.Err()
	}
	tcpAfter, tcpErr2 := ssSockets(ctx)
	window := time.Since(start)
	res.window = window
	for i, p := range c.procs {
		t, err1 := cpuTicks(p.Pid())
		n, err2 := schedNanos(p.Pid())
		rss, err3 := statusKB(p.Pid(), "VmRSS")
		if err := errors.Join(err1, err2, err3); err != nil {
			return fmt.Errorf("%w (%v)", err, c.exited())
		}
		row := idleNodeRow{node: c.nodes[i], rssKB: rss}
		row.cpuSec = float64(t-before[i].ticks) / float64(res.hz)
		row.pct = 100 * row.cpuSec / window.Seconds()
		row.schedMs = float64(n-before[i].nanos) / 1e6
		if i > 0 { // node2, node3 reach the state through stateProxies[i-1]
			d := c.stateProxies[i-1].snapshot().minus(stateBefore[i-1])
			row.state = &d
		}
		row.engine = c.engineProxies[i].snapshot().minus(engineBefore[i])
		res.rows[i] = row
	}
	res.proxyErrors = c.proxyErrors() - errsBefore
	if err := errors.Join(tcpErr, tcpErr2); err != nil {
		res.tcpNote = err.Error()
	} else {
		node1 := func(s ssSocket) bool { return s.pid == c.procs[0].Pid() && s.peerPort == statePort }
		proxies := func(s ssSocket) bool { return s.pid == os.Getpid() && s.peerPort == statePort }
		res.node1Segs = segsDelta(tcpBefore, tcpAfter, node1)
		res.proxySegs = segsDelta(tcpBefore, tcpAfter, proxies)
	}
	return c.exited()
}

// allPresent checks through `uc get images -o json` that every one of n
// images is present on every node.
func (c *prepullCluster) allPresent(ctx context.Context, n int) error {
	_, out, err := c.uc(ctx, "", "get", "images", "-o", "json")
	if err != nil {
		return err
	}
	var imgs []state.ImageRecord
	if err := json.Unmarshal([]byte(out), &imgs); err != nil {
		return fmt.Errorf("uc get images -o json: %w", err)
	}
	if len(imgs) != n {
		return fmt.Errorf("uc get images: %d images, want %d", len(imgs), n)
	}
	var bad []string
	for _, img := range imgs {
		present := 0
		for _, p := range img.Presence {
			if p.SpecUID == img.Meta.UID && p.State == api.PresencePresent && slices.Contains(c.nodes, p.Node) {
				present++
			}
		}
		if present != len(c.nodes) {
			bad = append(bad, fmt.Sprintf("%s: present on %d nodes", img.Spec.Name, present))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("after uc wait images, %d of %d images are not present on all %d nodes: %s",
			len(bad), n, len(c.nodes), strings.Join(bad[:min(len(bad), 5)], "; "))
	}
	return nil
}

// ---------------------------------------------------------------- the cluster

// prepullCluster is three `ucd run` nodes, one per hack engine: node1
// serves the embedded state and the internal registry in process; node2
// and node3 use node1's state. With counting proxies (measurement 9),
// node2 and node3 reach the state, and every node its engine, through a
// proxy in the bench that counts requests.
type prepullCluster struct {
	*buildCluster
	hosts         [prepullNodes]string // the engines, node1..node3
	stateAddr     string
	stateProxies  []*countingProxy // node2's, node3's
	engineProxies []*countingProxy // node1's .. node3's
	proxyLog      *os.File
	// measurement 8's content: the current one, which sides used it, all made
	content *bigImage
	usedBy  map[string]bool
	made    []*bigImage
}

// withPrepullCluster brings the infrastructure up, starts the three nodes
// and runs fn. Whatever happens, it stops the nodes and the proxies and
// removes every image measurement 8 made from the engines.
func withPrepullCluster(ctx context.Context, bins binaries, dir, label string, counted bool, fn func(c *prepullCluster) error, node1Extra ...string) (skip string, err error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	env, skip := bringUpInfra(ctx, root, filepath.Join(dir, "up.log"))
	if skip != "" {
		return skip, nil
	}
	for _, k := range prepullEnvKeys {
		if env[k] == "" {
			return fmt.Sprintf("hack/up.sh's env file does not set %s (%d engines needed)", k, prepullNodes), nil
		}
	}
	c, err := startPrepullCluster(ctx, bins, env, dir, label, counted, expandEnv(env, node1Extra)...)
	if err != nil {
		return "", err
	}
	defer c.cleanup()
	return "", fn(c)
}

// expandEnv replaces $KEY arguments with hack/up.sh's values.
func expandEnv(env buildEnv, args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if k, ok := strings.CutPrefix(a, "$"); ok {
			a = env[k]
		}
		out[i] = a
	}
	return out
}

// startPrepullCluster starts the three nodes; node1Extra are more flags
// for node1 (--buildkit-addr, to make it the builder).
func startPrepullCluster(ctx context.Context, bins binaries, env buildEnv, dir, label string, counted bool, node1Extra ...string) (*prepullCluster, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	c := &prepullCluster{
		buildCluster: &buildCluster{label: label, env: env, bins: bins, api: "http://" + addr, dockerConfig: filepath.Join(dir, "docker-config")},
		stateAddr:    addr,
	}
	for i := range c.hosts {
		c.hosts[i] = env[fmt.Sprintf("UC_DOCKER_HOST_%d", i+1)]
	}
	if err := os.MkdirAll(c.dockerConfig, 0o700); err != nil {
		return nil, err
	}
	fail := func(err error) (*prepullCluster, error) {
		c.stopNodes()
		c.closeProxies()
		return nil, err
	}
	stateAPI := []string{"", c.api, c.api}
	dockerHosts := c.hosts
	if counted {
		if c.proxyLog, err = os.Create(filepath.Join(dir, "proxies.log")); err != nil {
			return nil, err
		}
		logger := log.New(c.proxyLog, "", log.LstdFlags)
		for i, host := range c.hosts {
			p, err := newEngineProxy(filepath.Join(dir, fmt.Sprintf("engine%d.sock", i+1)), host, logger)
			if err != nil {
				return fail(err)
			}
			c.engineProxies = append(c.engineProxies, p)
			dockerHosts[i] = "unix://" + p.addr
		}
		for i := 1; i < prepullNodes; i++ {
			p, err := newStateProxy(addr, logger)
			if err != nil {
				return fail(err)
			}
			c.stateProxies = append(c.stateProxies, p)
			stateAPI[i] = "http://" + p.addr
		}
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
	how := "directly"
	if counted {
		how = "through counting proxies"
	}
	progress("%s: starting ucd node1 (state %s, registry %s), node2 and node3 (state and engines %s)", label, addr, env["UC_REGISTRY"], how)
	if err := start("node1", append([]string{"--state-listen", addr, "--registry-listen", env["UC_REGISTRY"], "--docker-host", dockerHosts[0]}, node1Extra...)...); err != nil {
		return fail(err)
	}
	for i := 1; i < prepullNodes; i++ {
		if err := start(fmt.Sprintf("node%d", i+1), "--corrosion-api", stateAPI[i], "--docker-host", dockerHosts[i]); err != nil {
			return fail(err)
		}
	}
	if err := c.waitRegistry(ctx); err != nil {
		return fail(err)
	}
	return c, nil
}

// statePort is the port node1's embedded state listens on.
func (c *prepullCluster) statePort() string {
	_, port, _ := net.SplitHostPort(c.stateAddr)
	return port
}

func (c *prepullCluster) closeProxies() {
	for _, p := range append(slices.Clone(c.stateProxies), c.engineProxies...) {
		p.close()
	}
	if c.proxyLog != nil {
		c.proxyLog.Close()
	}
}

func (c *prepullCluster) proxyErrors() int64 {
	var n int64
	for _, p := range append(slices.Clone(c.stateProxies), c.engineProxies...) {
		n += p.errors.Load()
	}
	return n
}

// cleanup stops the nodes (node3 first; node1 serves the state), then the
// proxies, then removes every image measurement 8 made from every engine
// (a no-op for those already removed after their round).
func (c *prepullCluster) cleanup() {
	c.stopNodes()
	c.closeProxies()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	removed := 0
	for _, img := range c.made {
		for _, host := range c.hosts {
			// docker rmi -f says nothing of a missing image: look first.
			if has, err := engineHas(ctx, host, img.id.String()); err != nil || !has {
				if err != nil {
					progress("%v", err)
				}
				continue
			}
			out, err := exec.CommandContext(ctx, "docker", "-H", host, "rmi", "-f", img.id.String()).CombinedOutput()
			if err != nil {
				progress("docker -H %s rmi -f %s: %v: %s", host, img.id, err, strings.TrimSpace(string(out)))
				continue
			}
			removed++
		}
	}
	progress("%s: stopped %d ucd; %d images made, %d left on the engines removed now", c.label, len(c.procs), len(c.made), removed)
}

// ---------------------------------------------------------------- counting proxies

// countingProxy is a reverse proxy that counts the requests it passes by
// class and the response bytes, streaming responses as they come
// (FlushInterval -1), so that subscriptions and pulls stream through it.
type countingProxy struct {
	addr     string
	ln       net.Listener
	srv      *http.Server
	classify func(*http.Request) string
	stream   func(class string) bool

	mu      sync.Mutex
	byClass map[string]int64
	bytes   atomic.Int64
	open    atomic.Int64
	errors  atomic.Int64
}

// newStateProxy listens on a free loopback port and passes requests to the
// state at target, speaking h2c on both sides as uc's client and the
// embedded state do.
func newStateProxy(target string, logger *log.Logger) (*countingProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var up http.Protocols
	up.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &up}
	classify := func(r *http.Request) string {
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/subscriptions"):
			return clsSubscribe
		case r.URL.Path == "/v1/queries":
			return clsQuery
		case r.URL.Path == "/v1/transactions":
			return clsTx
		}
		return clsOther
	}
	return serveProxy(ln, &url.URL{Scheme: "http", Host: target}, tr, classify, func(cls string) bool { return cls == clsSubscribe }, logger), nil
}

// newEngineProxy listens on a unix socket at path and passes requests to
// the Docker Engine at host (unix://…).
func newEngineProxy(path, host string, logger *log.Logger) (*countingProxy, error) {
	sock, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		return nil, fmt.Errorf("engine %s: only unix:// engines can be proxied", host)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 16,
	}
	classify := func(r *http.Request) string {
		p := r.URL.Path
		switch {
		case strings.Contains(p, "/images/create"):
			return clsPull
		case strings.Contains(p, "/images/") && strings.HasSuffix(p, "/json"):
			return clsInspect
		case strings.Contains(p, "/distribution/"):
			return clsDist
		case strings.Contains(p, "/containers/"):
			return clsContainer
		}
		return clsOther
	}
	return serveProxy(ln, &url.URL{Scheme: "http", Host: "docker"}, tr, classify, func(cls string) bool { return cls == clsPull }, logger), nil
}

func serveProxy(ln net.Listener, target *url.URL, tr http.RoundTripper, classify func(*http.Request) string, stream func(string) bool, logger *log.Logger) *countingProxy {
	p := &countingProxy{addr: ln.Addr().String(), ln: ln, classify: classify, stream: stream, byClass: map[string]int64{}}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport:     tr,
		FlushInterval: -1,
		ErrorLog:      logger,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() == nil { // a client that went away is no proxy error
				p.errors.Add(1)
				logger.Printf("%s %s: %v", r.Method, r.URL.Path, err)
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	p.srv = &http.Server{
		Protocols: &protocols, ErrorLog: logger, ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cls := p.classify(r)
			p.mu.Lock()
			p.byClass[cls]++
			p.mu.Unlock()
			if p.stream(cls) {
				p.open.Add(1)
				defer p.open.Add(-1)
			}
			rp.ServeHTTP(&countingWriter{ResponseWriter: w, n: &p.bytes}, r)
		}),
	}
	go func() { _ = p.srv.Serve(ln) }()
	return p
}

func (p *countingProxy) snapshot() reqCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return reqCounts{byClass: maps.Clone(p.byClass), bytes: p.bytes.Load(), open: p.open.Load()}
}

func (p *countingProxy) close() { _ = p.srv.Close() }

// minus is r's counts since before; open stays r's.
func (r reqCounts) minus(before reqCounts) reqCounts {
	out := reqCounts{byClass: map[string]int64{}, bytes: r.bytes - before.bytes, open: r.open}
	for k, v := range r.byClass {
		if d := v - before.byClass[k]; d != 0 {
			out.byClass[k] = d
		}
	}
	return out
}

// countingWriter counts response bytes; Unwrap lets the reverse proxy
// flush through it.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ---------------------------------------------------------------- TCP counters

// ssSocket is one established TCP socket as `ss -tinp` shows it.
type ssSocket struct {
	local, peer string
	peerPort    string
	pid         int
	dataSegsOut int64
}

// ssSockets lists established TCP sockets with their owner and counters.
func ssSockets(ctx context.Context) ([]ssSocket, error) {
	out, err := exec.CommandContext(ctx, "ss", "-tinpH", "state", "established").Output()
	if err != nil {
		return nil, fmt.Errorf("ss -tinpH: %w", err)
	}
	var socks []ssSocket
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			f := strings.Fields(line)
			if len(f) < 4 {
				continue
			}
			s := ssSocket{local: f[2], peer: f[3]}
			if i := strings.LastIndexByte(s.peer, ':'); i >= 0 {
				s.peerPort = s.peer[i+1:]
			}
			if _, rest, ok := strings.Cut(line, "pid="); ok {
				end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
				if end < 0 {
					end = len(rest)
				}
				s.pid, _ = strconv.Atoi(rest[:end])
			}
			socks = append(socks, s)
			continue
		}
		if len(socks) == 0 {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "data_segs_out:"); ok {
				socks[len(socks)-1].dataSegsOut, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return socks, nil
}

// segsDelta sums the data segments sent by the matching sockets between two
// listings; a socket new in the second counts from zero, one closed in
// between is lost.
func segsDelta(before, after []ssSocket, match func(ssSocket) bool) int64 {
	prev := map[string]int64{}
	for _, s := range before {
		if match(s) {
			prev[s.local+" "+s.peer] = s.dataSegsOut
		}
	}
	var n int64
	for _, s := range after {
		if match(s) {
			n += s.dataSegsOut - prev[s.local+" "+s.peer]
		}
	}
	return n
}
