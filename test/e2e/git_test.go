package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ucplane/uc/test/harness"
	"github.com/ucplane/uc/test/harness/gitserver"
)

// gitRepo makes a repository with a Dockerfile under app/ and serves it
// with git daemon on loopback; it returns the git:// URL of the repository.
func gitRepo(t *testing.T, message string) (url, work string) {
	t.Helper()
	root := t.TempDir()
	work = filepath.Join(root, "work")
	writeFile(t, filepath.Join(root, "keep"), "")
	if err := os.MkdirAll(filepath.Join(work, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(work, "app", "Dockerfile"), "FROM busybox\nCOPY msg.txt /msg.txt\nCMD [\"cat\", \"/msg.txt\"]\n")
	writeFile(t, filepath.Join(work, "app", "msg.txt"), message+"\n")
	git(t, work, "init", "-q", "-b", "main")
	commit(t, work, "first")
	git(t, root, "clone", "-q", "--bare", work, filepath.Join(root, "repo.git"))
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(addr, ":")
	d := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--base-path="+root, "--listen=127.0.0.1", "--port="+port, root)
	d.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.Start(); err != nil {
		t.Fatalf("git daemon: %v", err)
	}
	t.Cleanup(func() { _ = d.Process.Kill(); _ = d.Wait() })
	url = "git://127.0.0.1:" + port + "/repo.git"
	if err := poll(10*time.Second, func() error { return exec.Command("git", "ls-remote", url).Run() }); err != nil {
		t.Fatalf("git daemon did not answer: %v", err)
	}
	return url, work
}

func git(t *testing.T, dir string, args ...string) { t.Helper(); gitserver.Git(t, dir, args...) }

func commit(t *testing.T, dir, msg string) {
	t.Helper()
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", msg)
}

// TestGitContext builds from a git URL that BuildKit fetches itself: the
// ref is pinned to a commit at apply, so a new commit rebuilds.
func TestGitContext(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	url, work := gitRepo(t, "from git v1")
	dir := t.TempDir()
	compose := filepath.Join(dir, "compose.yaml")
	writeFile(t, compose, "name: gitctx\nservices:\n  web:\n    build: "+url+"#main:app\n    x-machines: [node1, node2]\n")
	c.ok(t, "apply", "-f", compose)
	c.ok(t, "wait", "images", "gitctx/web", "--timeout", "5m")
	first := sameDigestOnBoth(t, c, "gitctx/web")
	if out := docker(t, env["UC_DOCKER_HOST_2"], "run", "--rm", env["UC_REGISTRY"]+"/gitctx/web@"+first); !strings.Contains(out, "from git v1") {
		t.Fatalf("image output %q", out)
	}
	if desc := c.ok(t, "describe", "build", "gitctx/web"); !strings.Contains(desc, "Context digest:  git:") {
		t.Errorf("describe does not show the pinned commit:\n%s", desc)
	}

	writeFile(t, filepath.Join(work, "app", "msg.txt"), "from git v2\n")
	commit(t, work, "second")
	git(t, work, "push", "-q", filepath.Join(filepath.Dir(work), "repo.git"), "main")
	if out := c.ok(t, "apply", "-f", compose); !strings.Contains(out, "build gitctx/web configured") {
		t.Fatalf("apply after a new commit printed %q, want the build configured", out)
	}
	c.ok(t, "wait", "images", "gitctx/web", "--timeout", "5m")
	second := sameDigestOnBoth(t, c, "gitctx/web")
	if out := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", env["UC_REGISTRY"]+"/gitctx/web@"+second); !strings.Contains(out, "from git v2") {
		t.Errorf("after a new commit the image prints %q", out)
	}

	t.Run("a repository-root context is reproducible", func(t *testing.T) {
		// no_cache makes both builds solve; SOURCE_DATE_EPOCH (the commit
		// time stamps the checkout) makes them the same image.
		digests := map[string]bool{}
		for _, p := range []string{"gitroot1", "gitroot2"} {
			f := filepath.Join(dir, p+".yaml")
			writeFile(t, f, "name: "+p+"\nservices:\n  web:\n    build:\n      context: "+url+"#main\n      no_cache: true\n"+
				"      dockerfile_inline: |\n        FROM busybox\n        COPY app/msg.txt /msg.txt\n    x-machines: [node1]\n")
			c.ok(t, "apply", "-f", f)
			c.ok(t, "wait", "images", p+"/web", "--timeout", "5m")
			digests[presentDigests(t, c, p+"/web")["node1"]] = true
		}
		if len(digests) != 1 {
			t.Errorf("two solves of one commit gave digests %v, want one", digests)
		}
	})

	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "name: gitbad\nservices:\n  web:\n    build: git://127.0.0.1:1/nope.git#main\n")
	if r := c.uc("apply", "-f", bad); r.code == 0 || !strings.Contains(r.stderr, "bad.yaml: services.web.build.context: git ls-remote git://127.0.0.1:1/nope.git main") {
		t.Errorf("an unreachable git context: %v", r)
	}
}
