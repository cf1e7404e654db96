package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Failover: the managed registry's node dies (ucd killed, its registry
// container gone); the time until another node serves the registry and
// until every referenced image is pullable from it again.

// failoverServices is how many built images must come back.
const failoverServices = 10

// failoverAfter is ucd's --registry-failover-after in this measurement.
const failoverAfter = 5 * time.Second

type failoverResult struct {
	newRegistry, allPullable time.Duration
	restored                 int
	from, to                 string
}

func runFailover(ctx context.Context, bins binaries, work string, sum *summary) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	dir := filepath.Join(work, "failover")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	env, skip := bringUpInfra(ctx, root, filepath.Join(dir, "up.log"))
	if skip != "" {
		progress("failover: skipped: %s", skip)
		return nil
	}
	c, err := startFailoverCluster(ctx, bins, env, dir)
	if err != nil {
		return err
	}
	defer c.cleanup()
	res, err := c.measure(ctx, dir)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, c.logTails())
	}
	res.print()
	sum.failover = &res
	return nil
}

// failoverCluster is a state server apart from the nodes (it must survive
// the registry's node) and two nodes that may both run the registry.
type failoverCluster struct {
	*buildCluster
	state *proc
}

func startFailoverCluster(ctx context.Context, bins binaries, env buildEnv, dir string) (*failoverCluster, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	state, err := startProc("ucd state", filepath.Join(dir, "state.log"), bins.UCD, "state", "serve",
		"--data-dir", filepath.Join(dir, "state"), "--listen", addr)
	if err != nil {
		return nil, err
	}
	c := &failoverCluster{buildCluster: &buildCluster{label: "failover", env: env, bins: bins, api: "http://" + addr}, state: state}
	for _, i := range []string{"1", "2"} {
		node := "node" + i
		p, err := startProc("ucd "+node, filepath.Join(dir, node+".log"), bins.UCD, "run", "--node", node,
			"--data-dir", filepath.Join(dir, node), "--corrosion-api", c.api, "--heartbeat", "1s",
			"--docker-host", env["UC_DOCKER_HOST_"+i], "--buildkit-addr", env["UC_BUILDKIT_ADDR"],
			"--advertise-addr", "127.0.0."+i, "--registry-failover-after", failoverAfter.String())
		if err != nil {
			c.cleanup()
			return nil, err
		}
		c.nodes, c.procs = append(c.nodes, node), append(c.procs, p)
	}
	if err := c.waitReady(ctx, c.nodes...); err != nil {
		c.cleanup()
		return nil, err
	}
	return c, nil
}

// cleanup stops the nodes and the state, and removes the registry
// containers, which outlive ucd by design.
func (c *failoverCluster) cleanup() {
	c.stopNodes()
	c.state.Stop()
	for _, i := range []string{"1", "2"} {
		_ = exec.Command("docker", "-H", c.env["UC_DOCKER_HOST_"+i], "rm", "-f", "uc-registry").Run()
	}
}

func (c *failoverCluster) measure(ctx context.Context, dir string) (failoverResult, error) {
	var res failoverResult
	if _, out, err := c.uc(ctx, "", "registry", "configure", "--port", "5002"); err != nil {
		return res, fmt.Errorf("uc registry configure: %v: %s", err, out)
	}
	holder, _, err := c.registryHolder(ctx, "")
	if err != nil {
		return res, err
	}
	other := map[string]string{"node1": "node2", "node2": "node1"}[holder]
	res.from, res.to = holder, other
	digests, err := c.buildProject(ctx, filepath.Join(dir, "proj"), other)
	if err != nil {
		return res, err
	}
	progress("failover: %d images built; killing %s, which serves the registry", len(digests), holder)
	i := strings.TrimPrefix(holder, "node")
	start := time.Now()
	c.procs[map[string]int{"node1": 0, "node2": 1}[holder]].Kill()
	_ = exec.Command("docker", "-H", c.env["UC_DOCKER_HOST_"+i], "rm", "-f", "uc-registry").Run()
	_, addr, err := c.registryHolder(ctx, holder)
	if err != nil {
		return res, err
	}
	res.newRegistry = time.Since(start)
	if err := waitUntilErr(ctx, 3*time.Minute, func() error { return allPresent(addr, digests) }); err != nil {
		return res, fmt.Errorf("images not restored into %s: %w", addr, err)
	}
	res.allPullable = time.Since(start)
	res.restored = len(digests)
	return res, nil
}

// registryHolder waits for a node other than not to serve the registry.
func (c *failoverCluster) registryHolder(ctx context.Context, not string) (node, addr string, err error) {
	err = waitUntilErr(ctx, 2*time.Minute, func() error {
		_, out, err := c.uc(ctx, "", "registry", "status")
		if err != nil {
			return errNotYet
		}
		for _, line := range strings.Split(out, "\n")[1:] {
			if f := strings.Fields(line); len(f) >= 3 && f[2] == "True" && f[0] != not {
				node, addr = f[0], f[1]
				return nil
			}
		}
		return errNotYet
	})
	return node, addr, err
}

// buildProject builds failoverServices images on builder and returns
// their repositories and digests.
func (c *failoverCluster) buildProject(ctx context.Context, dir, builder string) (map[string]string, error) {
	var compose strings.Builder
	compose.WriteString("name: fo\nservices:\n")
	for s := range failoverServices {
		svc := fmt.Sprintf("s%d", s)
		if err := os.MkdirAll(filepath.Join(dir, svc), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, svc, "Dockerfile"), []byte("FROM busybox\nCOPY msg.txt /msg.txt\n"), 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, svc, "msg.txt"), []byte(svc+"\n"), 0o644); err != nil {
			return nil, err
		}
		fmt.Fprintf(&compose, "  %s:\n    build: ./%s\n    x-uc-builder: %s\n", svc, svc, builder)
	}
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte(compose.String()), 0o644); err != nil {
		return nil, err
	}
	if _, out, err := c.uc(ctx, "", "apply", "-f", file, "--wait", "--timeout", "5m"); err != nil {
		return nil, fmt.Errorf("uc apply: %v: %s", err, out)
	}
	_, out, err := c.uc(ctx, "", "get", "builds", "-o", "json")
	if err != nil {
		return nil, err
	}
	var builds []struct {
		Spec   struct{ Image string }
		Status []struct{ Digest string }
	}
	if err := json.Unmarshal([]byte(out), &builds); err != nil {
		return nil, err
	}
	digests := map[string]string{}
	for _, b := range builds {
		for _, st := range b.Status {
			if st.Digest != "" {
				digests[b.Spec.Image] = st.Digest
			}
		}
	}
	if len(digests) != failoverServices {
		return nil, fmt.Errorf("%d built images, want %d", len(digests), failoverServices)
	}
	return digests, nil
}

// allPresent checks every image's manifest by digest in the registry.
func allPresent(addr string, digests map[string]string) error {
	for repo, dg := range digests {
		req, _ := http.NewRequest(http.MethodHead, "http://"+addr+"/v2/"+repo+"/manifests/"+dg, nil)
		req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return errNotYet
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errNotYet
		}
	}
	return nil
}

func (r failoverResult) print() {
	t := newTable("7. registry failover: the registry's node dies (ucd SIGKILL, its registry container removed)",
		"measurement", "uc", "peer", "notes")
	t.row("node death → another node serves the registry", ms(r.newRegistry)+" ms", "-",
		fmt.Sprintf("--registry-failover-after %s; %s → %s", failoverAfter, r.from, r.to))
	t.row(fmt.Sprintf("node death → all %d images pullable again", failoverServices), ms(r.allPullable)+" ms", "never (by hand)",
		fmt.Sprintf("%d restored by cached, reproducible rebuilds: same digests", r.restored))
	t.flush()
	note("peer: a plain registry container on one node; when the node dies its images are gone until someone rebuilds and pushes them.")
	note("uc: every manifest checked by digest (HEAD) in the new registry; builds pinned to the surviving node (its context cache and build cache).")
}

func (r failoverResult) summaryRows(t table) {
	t.row("registry failover: node death → registry served again (ms)", ms(r.newRegistry))
	t.row(fmt.Sprintf("registry failover: node death → %d images pullable (ms)", failoverServices), ms(r.allPullable))
}
