package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/controllers/webhook"
	"github.com/ucplane/uc/state"
)

// Where builds come from and where images go (issue 14), on the two-node
// build cluster:
//   - a pushed commit → the image present on both nodes, for a followed
//     branch and for a GitOps sync, by polling (10 s) and by push webhook,
//     beside a CI runner's work for the same push (buildctl building the
//     git context and pushing, then docker pull on both engines at once);
//   - the bytes an off-cluster build (uc build) sends into the cluster, on
//     the first build and after a one-file change, beside docker push of the
//     same images to an empty registry and docker save | docker load;
//   - publishing a project's 10 images to an external registry (uc images
//     publish) beside skopeo copy of each.

type sourcesResult struct {
	skipped                    string
	followPoll, followHook     time.Duration
	syncPoll, syncHook         time.Duration
	ciPeer                     time.Duration
	ucFirst, ucEdit            int64 // bytes stored into the cluster's registry by uc build
	pushFirst, pushEdit        int64 // by docker push into an empty registry
	saveFirst, saveEdit        int64 // docker save's tar
	publishUC, publishSkopeo   time.Duration
	publishedUC, publishedPeer int
}

const sourcesSecret = "bench-webhook-secret-0123456789"

func benchSources(ctx context.Context, bins binaries, dir string) (sourcesResult, error) {
	var r sourcesResult
	hookAddr, err := freeAddr()
	if err != nil {
		return r, err
	}
	secretFile := filepath.Join(dir, "webhook-secret")
	if err := writeFile(secretFile, sourcesSecret); err != nil {
		return r, err
	}
	skip, err := withBuildCluster(ctx, bins, dir, "sources", func(root string, c *buildCluster) error {
		s := &sourcesRun{c: c, dir: dir, hook: hookAddr}
		if err := s.startGit(); err != nil {
			return err
		}
		defer s.git.Close()
		steps := []func(context.Context, *sourcesResult) error{s.follow, s.sync, s.ciRunner, s.offCluster(root), s.publish}
		for _, step := range steps {
			if err := step(ctx, &r); err != nil {
				return err
			}
		}
		return nil
	}, "--webhook-listen", hookAddr, "--webhook-secret-file", secretFile)
	r.skipped = skip
	return r, err
}

// sourcesRun is the section's cluster, git server and webhook address.
type sourcesRun struct {
	c    *buildCluster
	dir  string
	hook string
	git  *httptest.Server
	bare string // the repository's bare copy, served by git http-backend
	work string // its work tree, which pushes into bare
}

// startGit serves one repository over git's smart HTTP (http-backend
// behind net/http/cgi), as a forge would.
func (s *sourcesRun) startGit() error {
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return fmt.Errorf("git --exec-path: %w", err)
	}
	root := filepath.Join(s.dir, "git")
	s.bare, s.work = filepath.Join(root, "app.git"), filepath.Join(s.dir, "work")
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	files := map[string]string{
		"app/Dockerfile":      "FROM busybox\nCOPY msg /msg\nRUN cat /msg > /seen\n",
		"app/msg":             "first " + nonce + "\n",
		"deploy/compose.yaml": "name: gsync\nservices:\n  web:\n    build: ../app\n    x-machines: [node1, node2]\n",
	}
	for name, body := range files {
		if err := writeFile(filepath.Join(s.work, name), body); err != nil {
			return err
		}
	}
	for _, args := range [][]string{{"init", "-q", "--bare", "-b", "main", s.bare}, {"-C", s.work, "init", "-q", "-b", "main"}} {
		if err := gitRun(args...); err != nil {
			return err
		}
	}
	if err := s.commitAndPush("first"); err != nil {
		return err
	}
	s.git = httptest.NewServer(&cgi.Handler{Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}})
	return nil
}

func gitRun(args ...string) error {
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=b@b", "GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=b@b")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// commitAndPush commits a new message and pushes main.
func (s *sourcesRun) commitAndPush(msg string) error {
	if err := writeFile(filepath.Join(s.work, "app", "msg"), msg+" "+time.Now().String()+"\n"); err != nil {
		return err
	}
	for _, args := range [][]string{{"-C", s.work, "add", "-A"}, {"-C", s.work, "commit", "-q", "-m", msg}, {"-C", s.work, "push", "-q", "-f", s.bare, "HEAD:refs/heads/main"}} {
		if err := gitRun(args...); err != nil {
			return err
		}
	}
	return nil
}

func (s *sourcesRun) repoURL() string { return s.git.URL + "/app.git" }

// postHook posts a push event signed as GitHub signs it.
func (s *sourcesRun) postHook(ctx context.Context) error {
	body := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","repository":{"clone_url":%q}}`, s.repoURL()))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.hook+webhook.Path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", webhook.Sign(body, []byte(sourcesSecret)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// presentDigest is the digest image is present at on both nodes ("" if
// the nodes differ or lack it).
func (s *sourcesRun) presentDigest(ctx context.Context, image string) string {
	_, out, err := s.c.uc(ctx, "", "get", "images", image, "-o", "json")
	if err != nil {
		return ""
	}
	var imgs []state.ImageRecord
	if json.Unmarshal([]byte(out), &imgs) != nil || len(imgs) != 1 {
		return ""
	}
	seen := map[string]string{}
	for _, p := range imgs[0].Presence {
		if p.State == api.PresencePresent && p.SpecUID == imgs[0].Meta.UID {
			seen[p.Node] = p.Digest
		}
	}
	if len(seen) != 2 || seen["node1"] != seen["node2"] {
		return ""
	}
	return seen["node1"]
}

// pushUntilPresent pushes a commit (and posts the webhook if hook) and
// times it until image is present on both nodes at a new digest.
func (s *sourcesRun) pushUntilPresent(ctx context.Context, image string, hook bool) (time.Duration, error) {
	old := s.presentDigest(ctx, image)
	t0 := time.Now()
	if err := s.commitAndPush("commit"); err != nil {
		return 0, err
	}
	if hook {
		if err := s.postHook(ctx); err != nil {
			return 0, err
		}
	}
	err := waitUntilErr(ctx, 3*time.Minute, func() error {
		if d := s.presentDigest(ctx, image); d == "" || d == old {
			return errNotYet
		}
		return nil
	})
	return time.Since(t0), err
}

// follow: a project follows main, polling every 10 s; then another,
// hourly, is moved by the webhook. Each is deleted after its timing, so
// that one push builds one image, as the CI runner's does.
func (s *sourcesRun) follow(ctx context.Context, r *sourcesResult) error {
	for _, p := range []struct {
		name, every string
		hook        bool
		into        *time.Duration
	}{{"fpoll", "10s", false, &r.followPoll}, {"fhook", "1h", true, &r.followHook}} {
		compose := filepath.Join(s.dir, p.name+".yaml")
		body := fmt.Sprintf("name: %s\nservices:\n  web:\n    build: %s#main:app\n    x-uc-follow: %s\n    x-machines: [node1, node2]\n", p.name, s.repoURL(), p.every)
		if err := writeFile(compose, body); err != nil {
			return err
		}
		if _, _, err := s.c.uc(ctx, "", "apply", "-f", compose); err != nil {
			return err
		}
		if _, _, err := s.c.uc(ctx, "", "wait", "images", p.name+"/web", "--timeout", waitTimeout); err != nil {
			return err
		}
		progress("sources: followed branch, %s (webhook: %v)", p.every, p.hook)
		var err error
		if *p.into, err = s.pushUntilPresent(ctx, p.name+"/web", p.hook); err != nil {
			return fmt.Errorf("follow %s: %w", p.name, err)
		}
		if _, _, err := s.c.uc(ctx, "", "delete", "-f", compose); err != nil {
			return err
		}
	}
	return nil
}

// sync: uc sync add, polling every 10 s, then hourly and the webhook.
func (s *sourcesRun) sync(ctx context.Context, r *sourcesResult) error {
	add := func(every string) error {
		_, _, err := s.c.uc(ctx, "", "sync", "add", "site", "--repo", s.repoURL(), "--ref", "main", "--path", "deploy/compose.yaml", "--interval", every)
		return err
	}
	if err := add("10s"); err != nil {
		return err
	}
	if err := waitUntilErr(ctx, 3*time.Minute, func() error {
		if s.presentDigest(ctx, "gsync/web") == "" {
			return errNotYet
		}
		return nil
	}); err != nil {
		return fmt.Errorf("first sync: %w", err)
	}
	progress("sources: sync, by polling")
	var err error
	if r.syncPoll, err = s.pushUntilPresent(ctx, "gsync/web", false); err != nil {
		return fmt.Errorf("sync by polling: %w", err)
	}
	if err := add("1h"); err != nil {
		return err
	}
	progress("sources: sync, by webhook")
	if r.syncHook, err = s.pushUntilPresent(ctx, "gsync/web", true); err != nil {
		return fmt.Errorf("sync by webhook: %w", err)
	}
	return nil
}

// ciRunner is the peer of a push's path: what a CI runner does on a
// push, with the same BuildKit, registry and engines: build the git
// context and push, then pull on both engines at once.
func (s *sourcesRun) ciRunner(ctx context.Context, r *sourcesResult) error {
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	ref := s.c.env["UC_REGISTRY"] + "/ci/web:" + nonce
	t0 := time.Now()
	if err := s.commitAndPush("ci"); err != nil {
		return err
	}
	if _, out, err := timed(ctx, "", nil, s.c.env["UC_BUILDCTL"], "--addr", s.c.env["UC_BUILDKIT_ADDR"], "build", "--frontend", "dockerfile.v0",
		"--opt", "context="+s.repoURL()+"#main:app", "--output", "type=image,name="+ref+",push=true,registry.insecure=true"); err != nil {
		return fmt.Errorf("buildctl: %w\n%s", err, out)
	}
	s.c.notePeerPull(ref)
	if _, err := s.c.repullOnBoth(ctx, []string{"DOCKER_CONFIG=" + s.c.dockerConfig}, ref); err != nil && !strings.Contains(err.Error(), "No such image") {
		return err
	}
	r.ciPeer = time.Since(t0)
	return nil
}

// offCluster measures the bytes sent into the cluster's registry by uc
// build (first, then after a one-file change) beside docker push of the
// same images into another registry and docker save's tar. Bytes on the
// wire are counted by the kernel: an iptables rule per registry port that
// jumps to an empty chain (it changes nothing, and counts). Both
// registries hold busybox, put there by others than the engine, as a
// laptop finds a cluster's registry.
func (s *sourcesRun) offCluster(root string) func(context.Context, *sourcesResult) error {
	return func(ctx context.Context, r *sourcesResult) error {
		nonce, err := newNonce()
		if err != nil {
			return err
		}
		project := "off" + nonce
		proj := filepath.Join(s.dir, project)
		if err := writeHelloProject(root, proj, project, nonce); err != nil {
			return err
		}
		peerAddr, err := freeAddr()
		if err != nil {
			return err
		}
		peer, err := startProc("peer registry", filepath.Join(s.dir, "peer-registry.log"), s.c.bins.UCD, "registry", "serve",
			"--data-dir", filepath.Join(s.dir, "peer-registry"), "--listen", peerAddr)
		if err != nil {
			return err
		}
		defer peer.Stop()
		engine, dockerEnv := s.c.env["UC_DOCKER_HOST_1"], []string{"DOCKER_CONFIG=" + s.c.dockerConfig}
		docker := func(args ...string) error {
			_, out, err := timed(ctx, "", dockerEnv, "docker", append([]string{"-H", engine}, args...)...)
			if err != nil {
				return fmt.Errorf("docker %s: %w\n%s", args[0], err, out)
			}
			return nil
		}
		// The peer registry holds busybox as the cluster's does: put there
		// by another client, so that the engine does not know it is there.
		if err := waitUntilErr(ctx, 30*time.Second, func() error {
			_, _, err := timed(ctx, "", nil, "skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
				"docker://"+s.c.env["UC_BASE_IMAGE"], "docker://"+peerAddr+"/library/busybox:latest")
			if err != nil {
				return errNotYet
			}
			return nil
		}); err != nil {
			return fmt.Errorf("seed the peer registry with busybox: %w", err)
		}
		cluster, err := countBytes(ctx, s.c.env["UC_REGISTRY"])
		if err != nil {
			return err
		}
		defer cluster.stop()
		toPeer, err := countBytes(ctx, peerAddr)
		if err != nil {
			return err
		}
		defer toPeer.stop()
		image := s.c.env["UC_REGISTRY"] + "/" + project + "/web:latest"
		round := func(ucBytes, pushBytes, saveBytes *int64) error {
			before := cluster.read()
			if _, out, err := timed(ctx, proj, []string{"DOCKER_HOST=" + engine}, s.c.bins.UC, "--corrosion-api", s.c.api, "build", "-f", "compose.yaml"); err != nil {
				return fmt.Errorf("uc build: %w\n%s", err, out)
			}
			*ucBytes = cluster.read() - before
			peerRef := peerAddr + "/" + project + "/web:latest"
			before = toPeer.read()
			if err := errors.Join(docker("tag", image, peerRef), docker("push", peerRef)); err != nil {
				return err
			}
			*pushBytes = toPeer.read() - before
			s.c.notePeerPull(peerRef)
			out, err := exec.CommandContext(ctx, "docker", "-H", engine, "save", image).Output()
			if err != nil {
				return fmt.Errorf("docker save: %w", err)
			}
			*saveBytes = int64(len(out))
			return nil
		}
		progress("sources: off-cluster build, first")
		if err := round(&r.ucFirst, &r.pushFirst, &r.saveFirst); err != nil {
			return err
		}
		if err := editMessage(proj, "bench "+nonce); err != nil {
			return err
		}
		progress("sources: off-cluster build, after a one-file change")
		return round(&r.ucEdit, &r.pushEdit, &r.saveEdit)
	}
}

// byteCounter counts the bytes of the TCP packets sent to one loopback
// port, with an iptables rule that jumps to an empty chain of its own.
type byteCounter struct {
	ctx   context.Context
	chain string
	port  string
}

func countBytes(ctx context.Context, addr string) (*byteCounter, error) {
	_, port, _ := strings.Cut(addr, ":")
	c := &byteCounter{ctx: ctx, chain: "UC_BENCH_" + port, port: port}
	if err := c.iptables("-N", c.chain); err != nil {
		return nil, err
	}
	if err := c.iptables("-I", "INPUT", "-i", "lo", "-p", "tcp", "--dport", port, "-j", c.chain); err != nil {
		_ = c.iptables("-X", c.chain)
		return nil, err
	}
	return c, nil
}

func (c *byteCounter) iptables(args ...string) error {
	if _, out, err := timed(c.ctx, "", nil, "iptables", append([]string{"-w"}, args...)...); err != nil {
		return fmt.Errorf("iptables: %w\n%s", err, out)
	}
	return nil
}

// read is the bytes counted so far.
func (c *byteCounter) read() int64 {
	out, err := exec.Command("iptables", "-w", "-L", "INPUT", "-n", "-v", "-x").Output()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == c.chain && strings.Contains(line, "dpt:"+c.port) {
			var n int64
			fmt.Sscan(f[1], &n)
			return n
		}
	}
	return 0
}

// stop removes the rule and the chain.
func (c *byteCounter) stop() {
	ctx := context.Background()
	for _, args := range [][]string{{"-D", "INPUT", "-i", "lo", "-p", "tcp", "--dport", c.port, "-j", c.chain}, {"-X", c.chain}} {
		if _, out, err := timed(ctx, "", nil, "iptables", append([]string{"-w"}, args...)...); err != nil {
			progress("iptables %v: %v: %s", args, err, out)
		}
	}
}

// publish copies a 10-service project's images to an empty external
// registry with uc images publish, and to another with skopeo copy each.
func (s *sourcesRun) publish(ctx context.Context, r *sourcesResult) error {
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	project := "pub" + nonce
	proj := filepath.Join(s.dir, project)
	if err := writeProject10(proj, project, nonce); err != nil {
		return err
	}
	progress("sources: building the 10 images to publish")
	if _, out, err := s.c.uc(ctx, proj, "apply", "-f", "compose.yaml", "--wait"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	var regs [2]string
	for i := range regs {
		if regs[i], err = freeAddr(); err != nil {
			return err
		}
		p, err := startProc("external registry", filepath.Join(s.dir, fmt.Sprintf("ext%d.log", i)), s.c.bins.UCD, "registry", "serve",
			"--data-dir", filepath.Join(s.dir, fmt.Sprintf("ext%d", i)), "--listen", regs[i])
		if err != nil {
			return err
		}
		defer p.Stop()
	}
	if err := waitUntilErr(ctx, 30*time.Second, func() error {
		for _, a := range regs {
			if resp, err := http.Get("http://" + a + "/v2/"); err != nil {
				return errNotYet
			} else {
				resp.Body.Close()
			}
		}
		return nil
	}); err != nil {
		return err
	}
	progress("sources: uc images publish")
	d, out, err := s.c.uc(ctx, "", "images", "publish", "--to", regs[0], "--project", project)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	r.publishUC, r.publishedUC = d, strings.Count(out, "copied  ")
	progress("sources: skopeo copy of each")
	t0 := time.Now()
	for i := range build10Services {
		repo := project + "/" + service10(i)
		if _, out, err := timed(ctx, "", nil, "skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
			"docker://"+s.c.env["UC_REGISTRY"]+"/"+repo+":latest", "docker://"+regs[1]+"/"+repo+":latest"); err != nil {
			return fmt.Errorf("skopeo: %w\n%s", err, out)
		}
		r.publishedPeer++
	}
	r.publishSkopeo = time.Since(t0)
	return nil
}

func (r sourcesResult) print() {
	if r.skipped != "" {
		fmt.Printf("\n== Where builds come from and go: skipped (%s)\n", r.skipped)
		return
	}
	t := newTable("Pushed commit → image present on both nodes", "path", "uc", "CI runner (buildctl + 2 pulls)", "uc / runner")
	for _, row := range []struct {
		name string
		d    time.Duration
	}{{"followed branch, polling 10 s", r.followPoll}, {"followed branch, webhook", r.followHook},
		{"sync (uc sync), polling 10 s", r.syncPoll}, {"sync (uc sync), webhook", r.syncHook}} {
		t.row(row.name, ms(row.d), ms(r.ciPeer), fmt.Sprintf("%.2f", row.d.Seconds()/r.ciPeer.Seconds()))
	}
	t.flush()
	b := newTable("Bytes into the cluster: uc build of the hello project", "build", "uc build", "docker push", "docker save | load", "uc / push", "uc / save")
	for _, row := range []struct {
		name            string
		uc, push, saved int64
	}{{"first", r.ucFirst, r.pushFirst, r.saveFirst}, {"after a one-file change", r.ucEdit, r.pushEdit, r.saveEdit}} {
		b.row(row.name, kib(row.uc), kib(row.push), kib(row.saved), byteRatio(row.uc, row.push), byteRatio(row.uc, row.saved))
	}
	b.flush()
	note("uc build and docker push: TCP bytes sent to the registry's port (iptables counters); both registries hold busybox, which the engine does not know")
	note("docker save: the tar that docker load reads")
	p := newTable("Publishing a project's 10 images to an empty registry", "tool", "images", "wall", "vs skopeo")
	p.row("uc images publish", fmt.Sprint(r.publishedUC), ms(r.publishUC), fmt.Sprintf("%.2f", r.publishUC.Seconds()/r.publishSkopeo.Seconds()))
	p.row("skopeo copy, each", fmt.Sprint(r.publishedPeer), ms(r.publishSkopeo), "1.00")
	p.flush()
}

func kib(n int64) string { return fmt.Sprintf("%.1f KiB", float64(n)/1024) }

func byteRatio(a, b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}
