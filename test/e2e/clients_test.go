package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ucplane/uc/test/harness"
)

// authRegistry runs `ucd registry serve --htpasswd` on a free loopback
// port until the test ends and returns its address.
func authRegistry(t *testing.T, user, pass string) string {
	t.Helper()
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	writeFile(t, htpasswd, user+":"+string(hash)+"\n")
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	startRegistry(t, dir, addr, "--htpasswd", htpasswd)
	return addr
}

// startRegistry serves `ucd registry serve` from dir on addr until the
// test ends or the returned process is stopped.
func startRegistry(t *testing.T, dir, addr string, args ...string) *proc {
	t.Helper()
	p, err := startProc(dir, "registry", append([]string{"registry", "serve", "--data-dir", dir, "--listen", addr}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.stop() })
	if err := poll(10*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}); err != nil {
		t.Fatalf("registry did not start: %v\n%s", err, p.logText())
	}
	return p
}

func runTool(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestRegistryClients pushes and pulls through `ucd registry serve` with
// basic auth using the real clients: skopeo, the Docker Engine and
// BuildKit (buildctl). Wrong credentials get nothing.
func TestRegistryClients(t *testing.T) {
	env := requireInfra(t)
	addr := authRegistry(t, "uc", "s3cret-pass")
	src := "docker://" + env["UC_BASE_IMAGE"]

	t.Run("skopeo", func(t *testing.T) {
		dest := "docker://" + addr + "/clients/busybox:v1"
		if out, err := runTool(t, nil, "skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
			"--dest-creds", "uc:wrong", src, dest); err == nil || !strings.Contains(out, "401") && !strings.Contains(strings.ToLower(out), "unauthorized") {
			t.Errorf("skopeo copy with a wrong password: %v\n%s", err, out)
		}
		if out, err := runTool(t, nil, "skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
			"--dest-creds", "uc:s3cret-pass", src, dest); err != nil {
			t.Fatalf("skopeo copy: %v\n%s", err, out)
		}
		out, err := runTool(t, nil, "skopeo", "inspect", "--tls-verify=false", "--creds", "uc:s3cret-pass", dest)
		if err != nil || !strings.Contains(out, `"Digest": "sha256:`) {
			t.Errorf("skopeo inspect: %v\n%s", err, out)
		}
	})

	// The Docker Engine and buildctl read credentials from a client config.
	config := t.TempDir()
	dockerEnv := []string{"DOCKER_CONFIG=" + config}
	host := env["UC_DOCKER_HOST_1"]
	t.Run("docker engine", func(t *testing.T) {
		if out, err := runTool(t, dockerEnv, "docker", "-H", host, "login", addr, "-u", "uc", "--password-stdin"); err == nil {
			t.Errorf("docker login without a password succeeded:\n%s", out)
		}
		login := exec.Command("docker", "-H", host, "login", addr, "-u", "uc", "--password-stdin")
		login.Env = append(os.Environ(), dockerEnv...)
		login.Stdin = strings.NewReader("s3cret-pass")
		if out, err := login.CombinedOutput(); err != nil {
			t.Fatalf("docker login: %v\n%s", err, out)
		}
		ref := addr + "/clients/engine:v1"
		for _, args := range [][]string{{"pull", env["UC_BASE_IMAGE"]}, {"tag", env["UC_BASE_IMAGE"], ref}, {"push", ref}, {"rmi", ref}, {"pull", ref}} {
			if out, err := runTool(t, dockerEnv, "docker", append([]string{"-H", host}, args...)...); err != nil {
				t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		_, _ = runTool(t, dockerEnv, "docker", "-H", host, "rmi", ref)
	})

	t.Run("buildkit", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nRUN echo built > /built.txt\n")
		ref := addr + "/clients/built:v1"
		out, err := runTool(t, dockerEnv, env["UC_BUILDCTL"], "--addr", env["UC_BUILDKIT_ADDR"], "build", "--frontend", "dockerfile.v0",
			"--local", "context="+dir, "--local", "dockerfile="+dir,
			"--output", fmt.Sprintf("type=image,name=%s,push=true,registry.insecure=true", ref))
		if err != nil {
			t.Fatalf("buildctl push with credentials: %v\n%s", err, out)
		}
		out, err = runTool(t, nil, "skopeo", "inspect", "--tls-verify=false", "--creds", "uc:s3cret-pass", "docker://"+ref)
		if err != nil {
			t.Errorf("the image BuildKit pushed: %v\n%s", err, out)
		}
	})
}
