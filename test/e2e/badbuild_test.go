package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildBadInputs: each bad input ends in a clear error or status and
// loses nothing else (the good service of the same project still builds).
func TestBuildBadInputs(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)

	t.Run("unknown target fails the build, not the project", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox AS real\nRUN true\n")
		writeFile(t, filepath.Join(dir, "compose.yaml"), "name: tgt\nservices:\n  bad:\n    build: {context: ., target: nosuch}\n    x-machines: [node1]\n  good:\n    build: .\n    x-machines: [node1]\n")
		r := c.uc("apply", "--wait", "--timeout", "3m", "-f", filepath.Join(dir, "compose.yaml"))
		if r.code == 0 || !strings.Contains(r.stderr, "tgt/bad") || !strings.Contains(r.stderr, "nosuch") {
			t.Fatalf("apply --wait with an unknown target: %v", r)
		}
		c.ok(t, "wait", "images", "tgt/good", "--timeout", "3m")
	})

	before := c.snapshot(t)
	for _, tt := range []struct {
		name  string
		setup func(dir string)
		args  []string
		want  []string
	}{
		{"missing Dockerfile", func(dir string) {}, nil, []string{"services.web.build.dockerfile", "Dockerfile"}},
		{"symlink out of the context", func(dir string) {
			writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\n")
			if err := os.Symlink("/etc/passwd", filepath.Join(dir, "passwd")); err != nil {
				t.Fatal(err)
			}
		}, nil, []string{"services.web.build.context", "passwd is a symlink to /etc/passwd, outside the context"}},
		{"oversized context", func(dir string) {
			writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\n")
			writeFile(t, filepath.Join(dir, "blob.bin"), strings.Repeat("x", 64<<10))
		}, []string{"--max-context-size", "16KiB"}, []string{"services.web.build.context", "larger than the 16384-byte limit"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(dir)
			writeFile(t, filepath.Join(dir, "compose.yaml"), "name: bad\nservices:\n  web:\n    build: .\n")
			r := c.uc(append([]string{"apply", "-f", filepath.Join(dir, "compose.yaml")}, tt.args...)...)
			if r.code == 0 || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
				t.Fatalf("want one error line and a non-zero exit: %v", r)
			}
			for _, w := range append(tt.want, "compose.yaml") {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("error lacks %q: %s", w, r.stderr)
				}
			}
			if after := c.snapshot(t); after != before {
				t.Errorf("a refused apply changed the state")
			}
		})
	}
}
