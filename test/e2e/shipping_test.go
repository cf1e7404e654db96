package e2e

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestContextShipping: uc apply ships the context to the internal registry
// as content-addressed pieces; a one-file change uploads only that file,
// and the builder builds from the fetched, verified copy.
func TestContextShipping(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	dir := t.TempDir()
	for i := range 20 {
		b := make([]byte, 100<<10)
		_, _ = rand.Read(b)
		writeFile(t, filepath.Join(dir, fmt.Sprintf("data%02d.bin", i)), string(b))
	}
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nCOPY . /ctx\nCMD [\"sh\", \"-c\", \"ls /ctx | wc -l; cat /ctx/note.txt\"]\n")
	writeFile(t, filepath.Join(dir, "note.txt"), "first\n")
	writeFile(t, filepath.Join(dir, ".dockerignore"), "*.tmp\n")
	writeFile(t, filepath.Join(dir, "scratch.tmp"), "ignored\n")
	writeFile(t, filepath.Join(dir, "compose.yaml"), "name: ship\nservices:\n  web:\n    build: .\n    x-machines: [node1, node2]\n")
	compose := filepath.Join(dir, "compose.yaml")

	out := c.ok(t, "apply", "-f", compose)
	first := uploaded(t, out)
	if first.pieces < 22 || first.uploaded != first.pieces {
		t.Fatalf("first apply: %+v, want every piece (>= 22) uploaded", first)
	}
	c.ok(t, "wait", "images", "ship/web", "--timeout", "5m")

	writeFile(t, filepath.Join(dir, "note.txt"), "second\n")
	second := uploaded(t, c.ok(t, "apply", "-f", compose))
	if second.uploaded > 2 || second.bytes > 4096 {
		t.Fatalf("one-file change: %+v, want the file and the index only", second)
	}
	c.ok(t, "wait", "images", "ship/web", "--timeout", "5m")
	digest := sameDigestOnBoth(t, c, "ship/web")
	got := docker(t, env["UC_DOCKER_HOST_2"], "run", "--rm", env["UC_REGISTRY"]+"/ship/web@"+digest)
	if !strings.Contains(got, "second") || !strings.Contains(got, "23") { // 20 data files, Dockerfile, note, .dockerignore, compose.yaml: scratch.tmp left out
		t.Errorf("image built from the shipped context printed %q", got)
	}
	fetched, _ := filepath.Glob(filepath.Join(c.dir, "node*", "contexts", "*"))
	if len(fetched) == 0 {
		t.Error("no builder fetched a context into its cache")
	}
}

type shipStats struct {
	pieces, uploaded int
	bytes            float64
}

var shipLine = regexp.MustCompile(`context \S+: (\d+) pieces, (\d+) uploaded \(([\d.]+)([KMG]?i?B) of`)

// uploaded reads uc apply's "context NAME: N pieces, M uploaded (X of Y)".
func uploaded(t *testing.T, out string) shipStats {
	t.Helper()
	m := shipLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("uc apply printed no shipping line:\n%s", out)
	}
	var s shipStats
	fmt.Sscan(m[1], &s.pieces)
	fmt.Sscan(m[2], &s.uploaded)
	fmt.Sscan(m[3], &s.bytes)
	s.bytes *= map[string]float64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m[4]]
	return s
}
