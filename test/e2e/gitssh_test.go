package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ucplane/uc/test/harness"
	"github.com/ucplane/uc/test/harness/files"
	"github.com/ucplane/uc/test/harness/gitserver"
)

// sshGitServer serves dir's repositories over SSH on loopback (Debian's
// sshd, key auth only) and returns the port and a client key accepted
// for root.
func sshGitServer(t *testing.T) (port, key string) {
	t.Helper()
	dir := t.TempDir()
	for _, k := range []string{"host", "client"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "client.pub"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "authorized_keys"), string(pub))
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ = strings.Cut(addr, ":")
	writeFile(t, filepath.Join(dir, "sshd_config"), fmt.Sprintf("Port %s\nListenAddress 127.0.0.1\nHostKey %s\nPidFile %s\n"+
		"AuthorizedKeysFile %s\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"+
		"StrictModes no\nUsePAM no\n", port, filepath.Join(dir, "host"), filepath.Join(dir, "sshd.pid"), filepath.Join(dir, "authorized_keys")))
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // sshd's privilege separation directory
		t.Fatal(err)
	}
	d := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	d.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.Start(); err != nil {
		t.Fatalf("sshd: %v", err)
	}
	t.Cleanup(func() { _ = d.Process.Kill(); _ = d.Wait() })
	if err := poll(10*time.Second, func() error { return exec.Command("ssh-keyscan", "-p", port, "127.0.0.1").Run() }); err != nil {
		t.Fatalf("sshd did not answer: %v", err)
	}
	return port, filepath.Join(dir, "client")
}

// TestFollowOverSSH follows a branch of a repository reached over SSH
// with x-uc-git-credential: ssh:KEY: the owner resolves it and BuildKit
// fetches it with the key, and a new commit is built.
func TestFollowOverSSH(t *testing.T) {
	env := requireInfra(t)
	port, key := sshGitServer(t)
	t.Setenv("HOME", t.TempDir()) // ucd's ssh remembers the host key here, not in root's home
	root := t.TempDir()
	work, bare := filepath.Join(root, "work"), filepath.Join(root, "repo.git")
	contents := map[string]string{"app/Dockerfile": "FROM busybox\nCOPY msg /msg\nCMD [\"cat\", \"/msg\"]\n", "app/msg": "over ssh v1\n"}
	files.Write(t, work, contents)
	gitserver.Git(t, root, "init", "-q", "--bare", "-b", "main", bare)
	gitserver.Git(t, work, "init", "-q", "-b", "main")
	gitserver.Git(t, work, "add", "-A")
	gitserver.Git(t, work, "commit", "-q", "-m", "v1")
	gitserver.Git(t, work, "push", "-q", bare, "HEAD:refs/heads/main")
	url := fmt.Sprintf("ssh://root@127.0.0.1:%s%s", port, bare)

	c := sliceCluster(t, env)
	compose := filepath.Join(t.TempDir(), "compose.yaml")
	writeFile(t, compose, fmt.Sprintf("name: sshfollow\nservices:\n  web:\n    build: %s#main:app\n    x-uc-follow: 10s\n"+
		"    x-uc-git-credential: ssh:%s\n    x-machines: [node1, node2]\n", url, key))
	c.ok(t, "apply", "-f", compose)
	c.ok(t, "wait", "images", "sshfollow/web", "--timeout", "5m")
	first := sameDigestOnBoth(t, c, "sshfollow/web")
	if out := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", env["UC_REGISTRY"]+"/sshfollow/web@"+first); out != "over ssh v1\n" {
		t.Fatalf("image prints %q", out)
	}
	files.Write(t, work, map[string]string{"app/msg": "over ssh v2\n"})
	gitserver.Git(t, work, "commit", "-q", "-am", "v2")
	gitserver.Git(t, work, "push", "-q", bare, "HEAD:refs/heads/main")
	second := waitNewDigest(t, c, "sshfollow/web", first, 2*time.Minute)
	if out := docker(t, env["UC_DOCKER_HOST_2"], "run", "--rm", env["UC_REGISTRY"]+"/sshfollow/web@"+second); out != "over ssh v2\n" {
		t.Errorf("after a push the image prints %q", out)
	}
}
