package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

const placementCompose = `name: place
services:
  byname:
    build: {context: ., args: {W: byname}}
    x-uc-builder: node2
    x-machines: [node1]
  bylabel:
    build: {context: ., args: {W: bylabel}}
    x-uc-builder: zone=b
    x-machines: [node1]
  nowhere:
    build: {context: ., args: {W: nowhere}}
    x-uc-builder: zone=mars
    x-machines: [node1]
`

// TestBuilderPlacement pins builds to a node by name and by labels, and
// shows a selector no node matches as a clear status.
func TestBuilderPlacement(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nARG W\nRUN echo $W > /w.txt\n")
	writeFile(t, filepath.Join(dir, "compose.yaml"), placementCompose)
	c.ok(t, "apply", "-f", filepath.Join(dir, "compose.yaml"))
	c.ok(t, "wait", "images", "place/byname", "place/bylabel", "--timeout", "5m")
	builds := c.ok(t, "get", "builds")
	for _, name := range []string{"place/byname", "place/bylabel"} {
		// NAME IMAGE GEN PHASE DIGEST BUILT-ON …
		if f := tableRow(t, builds, name); len(f) < 6 || f[3] != "succeeded" || f[5] != "node2" {
			t.Errorf("%s: %v, want succeeded on node2", name, f)
		}
	}
	r := c.uc("wait", "images", "place/nowhere", "--timeout", "2m")
	if r.code == 0 || !strings.Contains(r.stderr, `no live builder node matches x-uc-builder "zone=mars"`) {
		t.Fatalf("wait on an unplaceable build: %v", r)
	}
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "name: place2\nservices:\n  web:\n    build: .\n    x-uc-builder: node9\n")
	if r := c.uc("apply", "-f", bad); r.code == 0 || !strings.Contains(r.stderr, `bad.yaml: services.web.x-uc-builder: unknown node "node9"`) {
		t.Errorf("apply with an unknown builder node: %v", r)
	}
}
