package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The peer is docker compose v2, built once from its Go module and cached;
// docker compose v2 is not packaged where the bench runs.
const (
	composeModule  = "github.com/docker/compose/v2"
	composeVersion = "v2.40.3"
	composeCache   = "/var/cache/uc/compose-" + composeVersion
)

// peer is the command `uc apply --dry-run` is compared with.
type peer struct {
	label       string
	path        string
	args        []string // after the binary, run in the project dir
	unavailable string   // why there is no peer; empty when there is one
	origin      string   // where the binary came from, for the reader
}

func (p peer) describe() string {
	return strings.Join(append([]string{p.path}, p.args...), " ")
}

// findPeer prefers compose v2 (cached, else built), then Debian's python
// docker-compose 1.29. It never fails the bench: without a peer the table
// says why.
func findPeer(ctx context.Context, cfg config) peer {
	bin, errV2 := composeV2(ctx, cfg.composeWait)
	if errV2 == nil {
		p := composePeer("docker compose "+composeVersion, bin)
		p.origin = "built with CGO_ENABLED=0 from the Go module " + composeModule + "@" + composeVersion
		return p
	}
	progress("docker compose %s unavailable (%v); trying python docker-compose", composeVersion, errV2)
	bin, label, errPy := pythonCompose(ctx)
	if errPy == nil {
		p := composePeer(label, bin)
		p.origin = "Debian package docker-compose"
		return p
	}
	return peer{label: "none", unavailable: fmt.Sprintf("compose %s: %v; python docker-compose: %v", composeVersion, errV2, errPy)}
}

func composePeer(label, bin string) peer {
	return peer{label: label, path: bin, args: []string{"-f", "compose.yaml", "config"}}
}

// composeV2 returns the cached binary, building it first if needed. Run as
// `docker-compose` (standalone, not as a docker CLI plugin), its main
// rewrites `docker-compose config` to `docker compose config`.
func composeV2(ctx context.Context, limit time.Duration) (string, error) {
	bin := filepath.Join(composeCache, "docker-compose")
	if _, err := os.Stat(bin); err != nil {
		if err := buildComposeV2(ctx, bin, limit); err != nil {
			return "", err
		}
	}
	if out, err := exec.CommandContext(ctx, bin, "version").CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s version: %w: %s", bin, err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

func buildComposeV2(ctx context.Context, bin string, limit time.Duration) error {
	progress("building docker compose %s from its Go module (once; cached in %s; up to %s)", composeVersion, composeCache, limit)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	src, err := moduleDir(ctx, composeModule+"@"+composeVersion)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(composeCache, 0o755); err != nil {
		return err
	}
	// Build beside the target and rename, so an interrupted build never
	// leaves a half-written binary that a later run would trust.
	tmp := bin + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-X "+composeModule+"/internal.Version="+composeVersion, "-o", tmp, "./cmd")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("go build: %w: %s", err, lastLines(string(out), 5))
	}
	return os.Rename(tmp, bin)
}

// moduleDir downloads a module through the Go module proxy and returns its
// source directory in the module cache.
func moduleDir(ctx context.Context, mod string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", mod).Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
		return "", errors.New(info.Error)
	}
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w", mod, err)
	}
	if info.Dir == "" {
		return "", fmt.Errorf("go mod download %s: no source dir", mod)
	}
	return info.Dir, nil
}

// pythonCompose finds Debian's docker-compose, installing it when absent.
func pythonCompose(ctx context.Context) (bin, label string, err error) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		if err := aptInstall(ctx, "docker-compose"); err != nil {
			return "", "", err
		}
	}
	bin, err = exec.LookPath("docker-compose")
	if err != nil {
		return "", "", err
	}
	out, err := exec.CommandContext(ctx, bin, "version", "--short").Output()
	if err != nil {
		return "", "", fmt.Errorf("%s version: %w", bin, err)
	}
	v := strings.TrimSpace(string(out))
	if !strings.HasPrefix(v, "1.") {
		return "", "", fmt.Errorf("%s is version %s, not the python 1.x", bin, v)
	}
	return bin, "docker-compose " + v + " (python)", nil
}

// aptInstall installs a Debian package, refreshing the lists only if the
// first try cannot find it.
func aptInstall(ctx context.Context, pkg string) error {
	progress("apt-get install -y %s", pkg)
	install := func() error {
		out, err := exec.CommandContext(ctx, "apt-get", "install", "-y", pkg).CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get install %s: %w: %s", pkg, err, lastLines(string(out), 3))
		}
		return nil
	}
	if install() == nil {
		return nil
	}
	if out, err := exec.CommandContext(ctx, "apt-get", "update").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %w: %s", err, lastLines(string(out), 3))
	}
	return install()
}
