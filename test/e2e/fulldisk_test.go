package e2e

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ucplane/uc/test/harness"
)

// TestFullDataDir fills the data dir of a single node that holds the
// embedded state, the internal registry and the context cache (a 160 MiB
// tmpfs) once uc apply has shipped the context, leaving room to fetch the
// context but not to push the layer: the push fails ("invalid content
// range") and so does the failure's status write ("database or disk is
// full"). Both are retried, the error says the disk is full, and the
// build succeeds once space returns. Before, the failed status write was
// terminal and the build showed "building" until a resync.
func TestFullDataDir(t *testing.T) {
	env := requireInfra(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	data := t.TempDir()
	if err := syscall.Mount("tmpfs", data, "tmpfs", 0, "size=160m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(data, syscall.MNT_DETACH) })
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	stable, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	node, err := startProc(t.TempDir(), "node1", "run", "--node", "node1", "--data-dir", data, "--state-listen", addr,
		"--registry-address", stable, "--heartbeat", "1s", "--docker-host", env["UC_DOCKER_HOST_1"], "--buildkit-addr", env["UC_BUILDKIT_ADDR"],
		"--registry-listen", env["UC_REGISTRY"])
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{apiURL: "http://" + addr, procs: map[string]*proc{"node1": node}, stable: stable}
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			t.Logf("--- node1 log (%s):\n%s", node.log, lastLines(node.logText(), 60))
			_ = os.WriteFile("/tmp/fulldisk-node1.log", []byte(node.logText()), 0o644)
		}
	})
	if err := c.waitReady(1); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	big := make([]byte, 24<<20)
	_, _ = rand.Read(big)
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nCOPY big.bin /big.bin\nRUN sleep 3\n")
	compose := filepath.Join(dir, "compose.yaml")
	writeFile(t, compose, "name: full\nservices:\n  web:\n    build: .\n")
	c.ok(t, "apply", "-f", compose)
	// Room to fetch the 24 MiB context, not to push its layer as well.
	filler := filepath.Join(data, "filler")
	fillDisk(t, filler, 40<<20)

	if err := poll(3*time.Minute, func() error {
		for _, want := range []string{"disk full on node1 (data dir " + data, "the state's disk is full (retrying)"} {
			if !strings.Contains(node.logText(), want) {
				return fmt.Errorf("no error says %q yet", want)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if terminal := regexp.MustCompile(`terminal error.*key=full/web`).FindString(node.logText()); terminal != "" {
		t.Errorf("the full disk made the build's failure terminal: %s", terminal)
	}
	t.Logf("while the disk is full: %s", firstMatch(node.logText(), `err="build full/web[^"]*"`))

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := poll(5*time.Minute, func() error {
		out := c.uc("get", "builds", "full/web")
		if out.code != 0 || !strings.Contains(out.stdout, "succeeded") {
			return fmt.Errorf("build not succeeded: %s", out)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, _ = runTool(t, nil, "docker", "-H", env["UC_DOCKER_HOST_1"], "rmi", env["UC_REGISTRY"]+"/full/web:latest")
}

// fillDisk writes path until its disk is full, then frees leave bytes.
func fillDisk(t *testing.T, path string, leave int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", path, err)
			}
			fi, err := f.Stat()
			if err != nil || f.Truncate(max(0, fi.Size()-leave)) != nil {
				t.Fatalf("free %d bytes of %s: %v", leave, path, err)
			}
			return
		}
	}
}

func firstMatch(s, re string) string { return regexp.MustCompile(re).FindString(s) }
