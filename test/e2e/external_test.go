package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/test/harness"
)

// pushImage builds a one-file image with BuildKit and pushes it as ref,
// returning its manifest digest. content makes each image distinct.
func pushImage(t *testing.T, env infra, ref, content string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nCOPY content.txt /content.txt\n")
	writeFile(t, filepath.Join(dir, "content.txt"), content+"\n")
	meta := filepath.Join(dir, "metadata.json")
	out, err := runTool(t, nil, env["UC_BUILDCTL"], "--addr", env["UC_BUILDKIT_ADDR"], "build", "--frontend", "dockerfile.v0",
		"--local", "context="+dir, "--local", "dockerfile="+dir, "--metadata-file", meta,
		"--output", fmt.Sprintf("type=image,name=%s,push=true,registry.insecure=true", ref))
	if err != nil {
		t.Fatalf("buildctl build and push %s: %v\n%s", ref, err, out)
	}
	b, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Digest string `json:"containerimage.digest"`
	}
	if err := json.Unmarshal(b, &m); err != nil || m.Digest == "" {
		t.Fatalf("buildctl metadata %s: %v, digest %q", b, err, m.Digest)
	}
	return m.Digest
}

// scratchRegistry serves a registry of the test's own on a free loopback
// address, from dir (which also holds the test's other files).
func scratchRegistry(t *testing.T) (dir, addr string, p *proc) {
	t.Helper()
	dir = t.TempDir()
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return dir, addr, startRegistry(t, dir, addr)
}

// removeFromEngines removes refs from both engines when the test ends, so
// that a later run pulls them again.
func removeFromEngines(t *testing.T, env infra, refs ...string) {
	t.Cleanup(func() {
		for _, host := range []string{env["UC_DOCKER_HOST_1"], env["UC_DOCKER_HOST_2"]} {
			_, _ = runTool(t, nil, "docker", append([]string{"-H", host, "rmi"}, refs...)...)
		}
	})
}

// TestExternalTagMoves: a tag that moves upstream keeps the digest it was
// resolved to (re-applying changes nothing) until `uc refresh images`, or
// the spec's x-uc-refresh interval passes; then every node pulls the new
// digest and still holds the old one.
func TestExternalTagMoves(t *testing.T) {
	env := requireInfra(t)
	dir, addr, _ := scratchRegistry(t)
	repo := addr + "/ext/app"
	first := pushImage(t, env, repo+":latest", "first")
	compose := filepath.Join(dir, "compose.yaml")
	writeFile(t, compose, "name: ext\nservices:\n  app:\n    image: "+repo+":latest\n  follow:\n    image: "+repo+":latest\n    x-uc-refresh: 10s\n")

	c := sliceCluster(t, env)
	c.ok(t, "apply", "-f", compose)
	c.ok(t, "wait", "images", "ext/app", "--timeout", "2m")
	if got := sameDigestOnBoth(t, c, "ext/app"); got != first {
		t.Fatalf("ext/app present as %s, want the pushed %s", got, first)
	}

	second := pushImage(t, env, repo+":latest", "second")
	removeFromEngines(t, env, repo+"@"+first, repo+"@"+second)
	if out := c.ok(t, "apply", "-f", compose); !strings.Contains(out, "nothing changed") {
		t.Fatalf("re-apply printed %q, want nothing changed", out)
	}
	time.Sleep(time.Second) // a wrong re-resolution would start at once
	if got := sameDigestOnBoth(t, c, "ext/app"); got != first {
		t.Fatalf("ext/app moved to %s without a refresh", got)
	}
	// ext/follow re-resolves its tag every 10 s on its own.
	if err := poll(time.Minute, func() error {
		if d := presentDigests(t, c, "ext/follow"); d["node1"] != second || d["node2"] != second {
			return fmt.Errorf("ext/follow present as %v, want %s on both nodes", d, second)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := c.logCount(`msg="Tag moved; every node pulls the new digest."`, "image=ext/follow "); n != 1 {
		t.Errorf("ext/follow's tag move was noticed %d times, want once, by its owner", n)
	}
	if desc := c.ok(t, "describe", "image", "ext/follow"); !strings.Contains(desc, "every 10s") || !strings.Contains(desc, "last checked") {
		t.Errorf("describe image ext/follow lacks the refresh:\n%s", desc)
	}

	if out := c.ok(t, "refresh", "images", "ext/app"); !strings.Contains(out, "image ext/app refreshed") {
		t.Fatalf("uc refresh printed %q", out)
	}
	c.ok(t, "wait", "images", "ext/app", "--timeout", "2m")
	if got := sameDigestOnBoth(t, c, "ext/app"); got != second {
		t.Fatalf("after a refresh ext/app is %s on both nodes, want the new %s", got, second)
	}
	for _, host := range []string{env["UC_DOCKER_HOST_1"], env["UC_DOCKER_HOST_2"]} {
		out := docker(t, host, "run", "--rm", repo+"@"+second, "cat", "/content.txt")
		if strings.TrimSpace(out) != "second" {
			t.Errorf("engine %s runs %q from the new digest, want second", host, out)
		}
		docker(t, host, "image", "inspect", repo+"@"+first) // the old one is kept until pruned
	}

	t.Run("refresh of an unmoved tag pulls nothing", func(t *testing.T) {
		pulls := c.logCount(`msg="Image is present." `, "image=ext/app ")
		c.ok(t, "refresh", "images")
		c.ok(t, "wait", "images", "ext/app", "--timeout", "2m")
		if got := sameDigestOnBoth(t, c, "ext/app"); got != second {
			t.Fatalf("ext/app is %s after a refresh of an unmoved tag, want %s", got, second)
		}
		if n := c.logCount(`msg="Image is present." `, "image=ext/app "); n != pulls {
			t.Errorf("%d new pulls of ext/app, want none: the engines hold the digest", n-pulls)
		}
	})

	if r := c.uc("refresh", "images", "ext/nosuch"); r.code == 0 || !strings.Contains(r.stderr, "ext/nosuch") {
		t.Errorf("refresh of an unknown image: %v", r)
	}
}

// TestRegistryOutage applies images whose registry is down: nodes say
// they are retrying and why (a tag to resolve, a digest to pull), `uc
// wait` times out naming them, and once the registry is back every node
// converges without anyone acting.
func TestRegistryOutage(t *testing.T) {
	env := requireInfra(t)
	dir, addr, reg := scratchRegistry(t)
	tagged := addr + "/flaky/tagged:v1"
	taggedDigest := pushImage(t, env, tagged, "tagged "+dir)
	pinned := addr + "/flaky/pinned@" + pushImage(t, env, addr+"/flaky/pinned:v1", "pinned "+dir)
	removeFromEngines(t, env, addr+"/flaky/tagged@"+taggedDigest, pinned)
	if err := reg.stop(); err != nil {
		t.Fatalf("stop the registry: %v", err)
	}

	compose := filepath.Join(dir, "compose.yaml")
	writeFile(t, compose, fmt.Sprintf("name: flaky\nservices:\n  tagged:\n    image: %s\n  pinned:\n    image: %s\n", tagged, pinned))
	c := sliceCluster(t, env)
	c.ok(t, "apply", "-f", compose)
	if err := poll(time.Minute, func() error {
		return retryingEverywhere(t, c, tagged)
	}); err != nil {
		t.Fatal(err)
	}
	if row := tableRow(t, c.ok(t, "get", "images"), "flaky/pinned"); row[3] != "0/2" || row[4] != "retrying:2" {
		t.Errorf("uc get images row %q, want 0/2 present and retrying:2", row)
	}
	r := c.uc("wait", "images", "--timeout", "3s")
	t.Logf("uc wait while the registry is down: %s", r.stderr)
	if r.code == 0 || !strings.Contains(r.stderr, "timed out") || !strings.Contains(r.stderr, "flaky/pinned on node2: retrying") {
		t.Errorf("uc wait while the registry is down: %v; want a timeout naming the retrying nodes", r)
	}

	startRegistry(t, dir, addr)
	start := time.Now()
	c.ok(t, "wait", "images", "--timeout", "3m")
	t.Logf("converged %v after the registry came back", time.Since(start).Round(time.Millisecond))
	if got := sameDigestOnBoth(t, c, "flaky/tagged"); got != taggedDigest {
		t.Errorf("flaky/tagged is %s, want %s", got, taggedDigest)
	}
	sameDigestOnBoth(t, c, "flaky/pinned")
	if row := tableRow(t, c.ok(t, "get", "images"), "flaky/pinned"); row[3] != "2/2" || row[4] != "-" {
		t.Errorf("uc get images row %q, want 2/2 present and nothing lagging", row)
	}
}

// retryingEverywhere checks that the pinned image's pull was retried on
// both nodes and that the tag's resolver says why it cannot resolve.
func retryingEverywhere(t *testing.T, c *cluster, tagged string) error {
	var imgs []struct {
		Spec     struct{ Name string }
		Presence []struct {
			Node, State, Error string
			Detail             struct{ Attempts int }
		}
	}
	if err := json.Unmarshal([]byte(c.ok(t, "get", "images", "-o", "json")), &imgs); err != nil {
		return err
	}
	pulls, resolving := 0, false
	var rows []string
	for _, img := range imgs {
		for _, p := range img.Presence {
			rows = append(rows, fmt.Sprintf("%s on %s: %s, %d attempts, %s", img.Spec.Name, p.Node, p.State, p.Detail.Attempts, p.Error))
			retrying := p.State == "retrying" && strings.HasSuffix(p.Error, "; retrying with backoff")
			switch img.Spec.Name {
			case "flaky/pinned":
				if retrying && p.Detail.Attempts >= 2 {
					pulls++
				}
			case "flaky/tagged":
				resolving = resolving || retrying && strings.HasPrefix(p.Error, "resolve "+tagged+": ")
			}
		}
	}
	if pulls < 2 || !resolving {
		return fmt.Errorf("want flaky/pinned retried on both nodes and a resolver of flaky/tagged saying why:\n%s", strings.Join(rows, "\n"))
	}
	return nil
}

// logCount counts the nodes' log lines that hold every part.
func (c *cluster) logCount(parts ...string) int {
	n := 0
	for _, p := range c.procs {
		for _, line := range strings.Split(p.logText(), "\n") {
			if allIn(line, parts) {
				n++
			}
		}
	}
	return n
}

func allIn(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestMaxPulls: with --max-pulls 1 a node's pulls never overlap, as their
// presence rows' start times and durations show.
func TestMaxPulls(t *testing.T) {
	env := requireInfra(t)
	dir, addr, _ := scratchRegistry(t)
	var compose strings.Builder
	compose.WriteString("name: bounded\nservices:\n")
	var refs []string
	for _, svc := range []string{"a", "b", "c", "d"} {
		ref := addr + "/bounded/" + svc + ":v1"
		if out, err := runTool(t, nil, "skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
			"docker://"+env["UC_BASE_IMAGE"], "docker://"+ref); err != nil {
			t.Fatalf("skopeo copy: %v\n%s", err, out)
		}
		refs = append(refs, ref)
		fmt.Fprintf(&compose, "  %s:\n    image: %s\n", svc, ref)
	}
	removeFromEngines(t, env, refs...)
	writeFile(t, filepath.Join(dir, "compose.yaml"), compose.String())

	c := sliceCluster(t, env, "--max-pulls", "1")
	c.ok(t, "apply", "-f", filepath.Join(dir, "compose.yaml"))
	c.ok(t, "wait", "images", "--timeout", "2m")
	var imgs []state.ImageRecord
	if err := json.Unmarshal([]byte(c.ok(t, "get", "images", "-o", "json")), &imgs); err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"node1", "node2"} {
		var pulls []api.PresenceDetail
		for _, img := range imgs {
			for _, p := range img.Presence {
				if p.Node == node && p.Detail.Attempts > 0 {
					pulls = append(pulls, p.Detail)
				}
			}
		}
		if len(pulls) != len(refs) {
			t.Fatalf("%s pulled %d images, want %d", node, len(pulls), len(refs))
		}
		slices.SortFunc(pulls, func(a, b api.PresenceDetail) int { return a.StartedAt.Compare(b.StartedAt) })
		for i := 1; i < len(pulls); i++ {
			if prevEnd := pulls[i-1].StartedAt.Add(pulls[i-1].Duration); pulls[i].StartedAt.Before(prevEnd) {
				t.Errorf("%s: %s started at %s, before %s finished at %s", node, pulls[i].Ref, pulls[i].StartedAt.Format(time.StampMicro),
					pulls[i-1].Ref, prevEnd.Format(time.StampMicro))
			}
		}
	}
}
