package e2e

import (
	"bytes"
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

// TestFollowBranch follows a branch of a private repository served over
// git's smart HTTP behind a token, on real BuildKit and engines. One
// project polls every 10 s; another follows the same branch hourly and is
// moved by a signed push webhook served by node2. Each new commit is built
// and pre-pulled on both nodes without uc apply.
func TestFollowBranch(t *testing.T) {
	env := requireInfra(t)
	const token = "e2e-git-t0ken"
	srv := gitserver.Start(t, token)
	repo := srv.NewRepo(t, "app", map[string]string{
		"app/Dockerfile": "FROM busybox\nCOPY msg.txt /msg.txt\nCMD [\"cat\", \"/msg.txt\"]\n", "app/msg.txt": "v1\n"})
	t.Setenv("UC_E2E_GIT_TOKEN", token) // ucd and uc inherit it
	secret := []byte("e2e-webhook-secret-0123456789")
	secretFile := filepath.Join(t.TempDir(), "secret")
	writeFile(t, secretFile, string(secret)+"\n")
	hookAddr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	c := twoNodeCluster(t, env, "--webhook-listen", hookAddr, "--webhook-secret-file", secretFile)
	dir := t.TempDir()
	service := func(project, every string) string {
		f := filepath.Join(dir, project+".yaml")
		writeFile(t, f, fmt.Sprintf("name: %s\nservices:\n  web:\n    build: %s#main:app\n    x-uc-follow: %s\n"+
			"    x-uc-git-credential: env:UC_E2E_GIT_TOKEN\n    x-machines: [node1, node2]\n", project, repo.URL, every))
		return f
	}
	c.ok(t, "apply", "-f", service("poll", "10s"))
	c.ok(t, "apply", "-f", service("hook", "1h"))
	c.ok(t, "wait", "images", "poll/web", "hook/web", "--timeout", "5m")
	first := sameDigestOnBoth(t, c, "poll/web")
	if hook := sameDigestOnBoth(t, c, "hook/web"); hook != first {
		t.Errorf("two projects building one commit got %s and %s, want one image (build key)", first, hook)
	}
	if desc := c.ok(t, "describe", "build", "poll/web"); !strings.Contains(desc, repo.Head()) || !strings.Contains(desc, "branch main, resolved every 10s") {
		t.Errorf("describe does not show the branch and commit %s:\n%s", repo.Head(), desc)
	}

	// Polling: a pushed commit is built and on both nodes within the interval.
	repo.Commit(map[string]string{"app/msg.txt": "v2\n"}, "second")
	pushed := time.Now()
	repo.Push("main")
	second := waitNewDigest(t, c, "poll/web", first, 2*time.Minute)
	t.Logf("polling (10 s): pushed commit → present on 2 nodes in %s", time.Since(pushed).Round(10*time.Millisecond))
	if out := docker(t, env["UC_DOCKER_HOST_2"], "run", "--rm", env["UC_REGISTRY"]+"/poll/web@"+second); out != "v2\n" {
		t.Errorf("after a push the image prints %q, want v2", out)
	}
	if d := presentDigests(t, c, "hook/web")["node1"]; d != first {
		t.Errorf("the hourly follower moved without a webhook: %s", d)
	}

	// A push webhook signed with the wrong secret is refused and moves nothing.
	event := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","repository":{"clone_url":%q,"default_branch":"main"}}`, repo.URL))
	if code := postHook(t, hookAddr, event, webhook.Sign(event, []byte("not the secret"))); code != http.StatusUnauthorized {
		t.Errorf("a bad signature got %d, want 401", code)
	}
	if out := c.ok(t, "get", "builds", "hook/web"); !strings.Contains(out, "hook/web") {
		t.Fatalf("uc get builds: %s", out)
	}

	// A signed push webhook moves the hourly follower at once.
	if code := postHook(t, hookAddr, event, webhook.Sign(event, secret)); code != http.StatusAccepted {
		t.Fatalf("a signed push got %d, want 202", code)
	}
	if got := waitNewDigest(t, c, "hook/web", first, 2*time.Minute); got != second {
		t.Errorf("after the webhook hook/web is %s, want the image of the pushed commit %s", got, second)
	}

	// A deleted branch stalls the build, naming the repository and branch.
	repo.DeleteBranch("main")
	c.ok(t, "refresh", "builds", "poll/web")
	if err := poll(time.Minute, func() error {
		if desc := c.ok(t, "describe", "build", "poll/web"); !strings.Contains(desc, "branch main of "+repo.URL+" no longer exists") {
			return fmt.Errorf("describe:\n%s", desc)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// waitNewDigest waits until image is present on both nodes with one digest
// other than old, and returns it.
func waitNewDigest(t *testing.T, c *cluster, image, old string, timeout time.Duration) string {
	t.Helper()
	var now string
	err := poll(timeout, func() error {
		d := presentDigests(t, c, image)
		if d["node1"] == "" || d["node1"] == old || d["node1"] != d["node2"] {
			return fmt.Errorf("%s present as %v", image, d)
		}
		now = d["node1"]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return now
}

// postHook posts a push event as GitHub signs it and returns the status.
func postHook(t *testing.T, addr string, body []byte, signature string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+webhook.Path, bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", signature)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
