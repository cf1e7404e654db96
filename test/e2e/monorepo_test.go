package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucplane/uc/test/harness/files"
)

// TestMonorepo applies an image monorepo shaped like seed 002's: NN-name/
// contexts with info.edn versions, linked by FROM ${REGISTRY}/name lines,
// built in that order on real BuildKit and tagged with their versions.
func TestMonorepo(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	dir := filepath.Join(t.TempDir(), "images")
	files.Write(t, dir, map[string]string{
		"contexts/00-base/Dockerfile": "FROM busybox\nRUN echo base > /chain\n",
		"contexts/00-base/info.edn":   `{:version "1.0.0"}`,
		"contexts/01-tool/Dockerfile": "ARG REGISTRY\nFROM ${REGISTRY}/base:1.0.0\nRUN echo tool >> /chain\n",
		"contexts/01-tool/info.edn":   `{:version "0.4.2"}`,
		"contexts/02-app/Dockerfile":  "ARG REGISTRY\nFROM ${REGISTRY}/tool:latest\nRUN echo app >> /chain\nCMD [\"cat\", \"/chain\"]\n",
		"contexts/02-app/info.edn":    "{:version \"2.0.1\" :owner \"team\"}",
		"contexts/README.md":          "the images\n",
	})
	c.ok(t, "apply", "--contexts", dir)
	c.ok(t, "wait", "images", "images/app", "--timeout", "5m")
	digest := sameDigestOnBoth(t, c, "images/app")
	if out := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", c.stable+"/library/app@"+digest); out != "base\ntool\napp\n" {
		t.Errorf("app shows %q, want its ancestors' lines in order", out)
	}
	tree := c.ok(t, "get", "builds", "images/app", "--tree")
	if !strings.Contains(tree, "└─ images/tool") || !strings.Contains(tree, "   └─ images/app") {
		t.Errorf("the graph is not base → tool → app:\n%s", tree)
	}
	for _, ref := range []string{"app:2.0.1", "app:latest"} {
		if code := registryGet(t, env["UC_REGISTRY"], "/v2/library/app/manifests/"+strings.TrimPrefix(ref, "app:"), nil); code != 200 {
			t.Errorf("the registry has no %s: %d", ref, code)
		}
	}

	// The base changes: a cascade raises its descendants' versions, and
	// the next apply builds them.
	files.Write(t, dir, map[string]string{"contexts/00-base/Dockerfile": "FROM busybox\nRUN echo base2 > /chain\n"})
	plan := c.ok(t, "contexts", "cascade", dir, "--dry-run")
	for _, want := range []string{"01-tool: 0.4.2 → 0.4.3 (descends from 00-base, which changed)", "02-app: 2.0.1 → 2.0.2 (descends from 00-base, which changed)"} {
		if !strings.Contains(plan, want) {
			t.Errorf("cascade plan lacks %q:\n%s", want, plan)
		}
	}
	c.ok(t, "contexts", "cascade", dir)
	c.ok(t, "apply", "--contexts", dir)
	c.ok(t, "wait", "images", "images/app", "--timeout", "5m")
	if out := docker(t, env["UC_DOCKER_HOST_2"], "run", "--rm", c.stable+"/library/app@"+sameDigestOnBoth(t, c, "images/app")); out != "base2\ntool\napp\n" {
		t.Errorf("app after the cascade shows %q", out)
	}
	if code := registryGet(t, env["UC_REGISTRY"], "/v2/library/app/manifests/2.0.2", nil); code != 200 {
		t.Errorf("the registry has no app:2.0.2 after the cascade: %d", code)
	}

	// A prefix that contradicts a FROM line is refused, naming both.
	files.Write(t, dir, map[string]string{
		"contexts/03-extra/Dockerfile": "FROM busybox\n",
		"contexts/03-extra/info.edn":   `{:version "1.0.0"}`,
		"contexts/01-tool/Dockerfile":  "ARG REGISTRY\nFROM ${REGISTRY}/extra:1.0.0\n",
	})
	if r := c.uc("apply", "--contexts", dir); r.code == 0 || !strings.Contains(r.stderr, "01-tool builds FROM 03-extra (image extra), but its prefix 01 does not order it after 03") {
		t.Errorf("apply with a contradicting prefix: %v", r)
	}
}
