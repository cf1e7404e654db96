package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const resolveCompose = `name: ext
services:
  local:
    image: %s
  hub:
    image: busybox:latest
  gone:
    image: %s/library/no-such-image:1
`

// TestTagResolvedOnce resolves external images' tags to a digest once, on
// one node, and every node pulls that digest; a Docker Hub name goes
// through the engines' mirror. An image that does not exist is a terminal
// failure that names it.
func TestTagResolvedOnce(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	dir := t.TempDir()
	compose := filepath.Join(dir, "compose.yaml")
	writeFile(t, compose, fmt.Sprintf(resolveCompose, env["UC_BASE_IMAGE"], env["UC_BASE_REGISTRY"]))
	c.ok(t, "apply", "-f", compose)
	c.ok(t, "wait", "images", "ext/local", "ext/hub", "--timeout", "3m")
	for _, name := range []string{"ext/local", "ext/hub"} {
		digest := sameDigestOnBoth(t, c, name)
		if !strings.HasPrefix(digest, "sha256:") {
			t.Errorf("%s present with digest %q, want the resolved sha256 digest", name, digest)
		}
		if row := tableRow(t, c.ok(t, "get", "images"), name); !strings.Contains(strings.Join(row, " "), shortDigestOf(digest)) {
			t.Errorf("uc get images row %q lacks the resolved digest %s", row, digest)
		}
	}
	desc := c.ok(t, "describe", "image", "ext/hub")
	// The engines hold busybox from hack/up.sh, so a node may find the
	// digest there and not pull (0 attempts).
	if !strings.Contains(desc, "Digest:") || !strings.Contains(desc, "ATTEMPTS") || !regexp.MustCompile(`node1\s+present\s+sha256:\S+\s+(\d+/\d+|-)\s+\S+\s+[01]\s`).MatchString(desc) {
		t.Errorf("describe image lacks the digest or node1's pull detail (one attempt, or none):\n%s", desc)
	}
	resolvers := 0
	for _, node := range []string{"node1", "node2"} {
		resolvers += strings.Count(c.procs[node].logText(), `msg="Resolved a tag to a digest for every node." node=`+node+` controller=prepull image=ext/local`)
	}
	if resolvers != 1 {
		t.Errorf("ext/local was resolved %d times, want once, by one node", resolvers)
	}
	r := c.uc("wait", "images", "ext/gone", "--timeout", "2m")
	if r.code == 0 || !strings.Contains(r.stderr, "no-such-image:1 does not exist") {
		t.Errorf("wait on a missing image: %v", r)
	}
}

// shortDigestOf is the digest as uc's tables print it.
func shortDigestOf(d string) string {
	return strings.TrimPrefix(d, "sha256:")[:12]
}
