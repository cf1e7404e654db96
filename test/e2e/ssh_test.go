package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const sshCompose = `name: ssh
services:
  web:
    build:
      context: .
      dockerfile_inline: |
        FROM busybox
        RUN --mount=type=ssh test -S "$$SSH_AUTH_SOCK" && echo agent-ok > /agent.txt
        RUN --mount=type=ssh,id=deploy test -S "$$SSH_AUTH_SOCK" && echo key-ok > /key.txt
        CMD ["cat", "/agent.txt", "/key.txt"]
      ssh: [default, "deploy=%s"]
    x-machines: [node1]
`

// TestBuildSSH forwards the builder node's SSH agent (default) and a key
// file (id=path) into RUN --mount=type=ssh steps.
func TestBuildSSH(t *testing.T) {
	env := requireInfra(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	agent.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := agent.Start(); err != nil {
		t.Fatalf("start ssh-agent: %v", err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	if err := poll(5*time.Second, func() error { _, err := os.Stat(sock); return err }); err != nil {
		t.Fatal("ssh-agent socket never appeared")
	}
	add := exec.Command("ssh-add", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	t.Setenv("SSH_AUTH_SOCK", sock) // the nodes' ucd forward this agent
	c := sliceCluster(t, env)
	writeFile(t, filepath.Join(dir, "compose.yaml"), strings.Replace(sshCompose, "%s", key, 1))
	c.ok(t, "apply", "-f", filepath.Join(dir, "compose.yaml"))
	c.ok(t, "wait", "images", "ssh/web", "--timeout", "3m")
	digest := presentDigests(t, c, "ssh/web")["node1"]
	out := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", env["UC_REGISTRY"]+"/ssh/web@"+digest)
	if !strings.Contains(out, "agent-ok") || !strings.Contains(out, "key-ok") {
		t.Fatalf("image output %q, want agent-ok and key-ok", out)
	}
}
