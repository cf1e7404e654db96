package e2e

import (
	"strings"
	"testing"
)

// TestNoBuilderFailsFast: with no node that builds, a node still says why
// the build cannot run, and uc apply --wait and uc wait fail with that
// reason instead of waiting out their timeout.
func TestNoBuilderFailsFast(t *testing.T) {
	c := startCluster(t, false) // two nodes, neither builds nor has an engine
	const why = "no live node runs a builder (node1: no builder; node2: no builder); start ucd run with --buildkit-addr, or --build-driver docker, on a node"
	r := c.uc("apply", "-f", hello, "--wait", "--timeout", "5m")
	if r.code != 1 || !strings.Contains(r.stderr, "build failed: hello/web: "+why) {
		t.Errorf("apply --wait: %v\nwant it to fail with %q", r, why)
	}
	r = c.uc("wait", "images", "hello/web", "--timeout", "5m")
	if r.code != 1 || !strings.Contains(r.stderr, "hello/web: build failed: "+why) {
		t.Errorf("wait images: %v\nwant it to fail with %q", r, why)
	}
	if out := c.ok(t, "describe", "build", "hello/web"); !strings.Contains(out, "Unschedulable") || !strings.Contains(out, why) {
		t.Errorf("describe build:\n%s\nwant the reason %q", out, why)
	}
}
