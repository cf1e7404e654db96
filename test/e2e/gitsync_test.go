package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ucplane/uc/controllers/webhook"
	"github.com/ucplane/uc/test/harness"
	"github.com/ucplane/uc/test/harness/gitserver"
)

// TestGitOpsSync: uc sync add follows a repository whose Compose file
// builds from a sibling directory. Every pushed commit is applied as uc
// apply would (built, pre-pulled, pruned), first by polling and then by a
// signed push webhook; an invalid file changes nothing and says so.
func TestGitOpsSync(t *testing.T) {
	env := requireInfra(t)
	srv := gitserver.Start(t, "")
	compose := func(extra string) string {
		return "name: gitops\nservices:\n  web:\n    build: ../app\n    x-machines: [node1, node2]\n" + extra
	}
	extra := "  tool:\n    image: " + env["UC_BASE_IMAGE"] + "\n    x-machines: [node1]\n"
	repo := srv.NewRepo(t, "site", map[string]string{
		"deploy/compose.yaml": compose(extra),
		"app/Dockerfile":      "FROM busybox\nCOPY msg /msg\nCMD [\"cat\", \"/msg\"]\n",
		"app/msg":             "v1\n",
	})
	secret := "e2e-sync-webhook-secret-0123"
	secretFile := filepath.Join(t.TempDir(), "secret")
	writeFile(t, secretFile, secret)
	hookAddr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	c := twoNodeCluster(t, env, "--webhook-listen", hookAddr, "--webhook-secret-file", secretFile)
	c.ok(t, "sync", "add", "site", "--repo", repo.URL, "--ref", "main", "--path", "deploy/compose.yaml", "--interval", "10s")
	waitSync(t, c, "site", "applied commit "+repo.Head()[:12])
	c.ok(t, "wait", "images", "gitops/web", "gitops/tool", "--timeout", "5m")
	first := sameDigestOnBoth(t, c, "gitops/web")

	// Polling: a pushed commit is applied, built and pre-pulled; the tool
	// service it drops is pruned.
	repo.Commit(map[string]string{"app/msg": "v2\n", "deploy/compose.yaml": compose("")}, "v2")
	pushed := time.Now()
	repo.Push("main")
	second := waitNewDigest(t, c, "gitops/web", first, 2*time.Minute)
	t.Logf("sync by polling (10 s): pushed commit → present on 2 nodes in %s", time.Since(pushed).Round(10*time.Millisecond))
	if r := c.uc("get", "images", "gitops/tool"); r.code == 0 {
		t.Errorf("the service the file dropped is still there: %s", r.stdout)
	}

	// An invalid file changes nothing, and the sync says which commit.
	bad := repo.Commit(map[string]string{"deploy/compose.yaml": "name: gitops\nservices:\n  web:\n    build: ../nowhere\n"}, "broken")
	repo.Push("main")
	waitSync(t, c, "site", "commit "+bad[:12]+" not applied, nothing changed")
	if d := presentDigests(t, c, "gitops/web")["node1"]; d != second {
		t.Errorf("an invalid file moved the image to %s", d)
	}

	// A webhook applies at once, even with an hourly interval.
	c.ok(t, "sync", "add", "site", "--repo", repo.URL, "--ref", "main", "--path", "deploy/compose.yaml", "--interval", "1h")
	repo.Commit(map[string]string{"app/msg": "v3\n", "deploy/compose.yaml": compose("")}, "v3")
	pushed = time.Now()
	repo.Push("main")
	event := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","repository":{"clone_url":%q}}`, repo.URL))
	if code := postHook(t, hookAddr, event, webhook.Sign(event, []byte(secret))); code != http.StatusAccepted {
		t.Fatalf("a signed push got %d, want 202", code)
	}
	waitNewDigest(t, c, "gitops/web", second, 2*time.Minute)
	t.Logf("sync by webhook: pushed commit → present on 2 nodes in %s", time.Since(pushed).Round(10*time.Millisecond))
	if out := c.ok(t, "get", "syncs"); !strings.Contains(out, "site") || !strings.Contains(out, "applied") {
		t.Errorf("uc get syncs:\n%s", out)
	}
}

// waitSync waits until uc describe sync shows want.
func waitSync(t *testing.T, c *cluster, name, want string) {
	t.Helper()
	var desc string
	if err := poll(2*time.Minute, func() error {
		if desc = c.ok(t, "describe", "sync", name); !strings.Contains(desc, want) {
			return fmt.Errorf("no %q yet", want)
		}
		return nil
	}); err != nil {
		t.Fatalf("sync %s: %v\n%s", name, err, desc)
	}
}
