package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/registry"
	"github.com/ucplane/uc/registry/registrytest"
	"github.com/ucplane/uc/state/statetest"

	"github.com/ucplane/uc/test/harness/files"
)

// ucAt runs uc in-process against the state at addr.
func ucAt(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	return runUC(context.Background(), append([]string{"--corrosion-api", addr}, args...)...)
}

// startCluster is a state with two live nodes and a Ready internal
// registry (a real distribution registry), so that apply ships contexts.
func startCluster(t *testing.T) string {
	t.Helper()
	srv := statetest.Start(t)
	reg := registrytest.Serve(t, registry.Config{})
	ctx := context.Background()
	now := time.Now()
	for _, n := range []string{"node1", "node2"} {
		node := api.Node{Name: n, State: api.NodeReady, StartedAt: now, HeartbeatAt: now,
			Capacity: api.NodeCapacity{Builders: []string{"buildkit"}, Platforms: []string{"linux/amd64"}, Engine: true}}
		if err := srv.Store.RegisterNode(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
	st := api.RegistryStatus{Node: "node1", Address: reg, UpdatedAt: now,
		Conditions: []api.Condition{{Type: api.ConditionReady, Status: "True"}}}
	if err := srv.Store.PutRegistryStatus(ctx, st); err != nil {
		t.Fatal(err)
	}
	return srv.Addr
}

func writeTree(t *testing.T, dir string, tree map[string]string) { files.Write(t, dir, tree) }

// TestDryRunPredictsApply runs uc apply --dry-run and then uc apply on the
// same file and the same state over a table of inputs: both must pass or
// both must fail, with the same message. Before, a dry run skipped every
// check that needs state, and an upper-case service passed the dry run
// and then failed the apply with a 404 from the context upload.
func TestDryRunPredictsApply(t *testing.T) {
	t.Parallel()
	addr := startCluster(t)
	df := map[string]string{"app/Dockerfile": "FROM busybox\n"}
	with := func(compose string, more map[string]string) map[string]string {
		files := map[string]string{"compose.yaml": compose}
		for k, v := range df {
			files[k] = v
		}
		for k, v := range more {
			files[k] = v
		}
		return files
	}
	tests := []struct {
		name    string
		setup   map[string]string // applied first, from another directory
		files   map[string]string
		args    []string
		wantErr string
	}{
		{name: "good", files: with("name: good\nservices:\n  web:\n    build: ./app\n    x-machines: [node1]\n", nil)},
		{name: "upper-case service", files: with("name: upper\nservices:\n  Web:\n    build: ./app\n", nil)},
		{name: "dockerfile outside the context", files: with("name: outside\nservices:\n  web:\n    build: {context: ./app, dockerfile: ../docker/Dockerfile.web}\n",
			map[string]string{"docker/Dockerfile.web": "FROM busybox\nRUN true\n"})},
		{name: "unknown node", files: with("name: unknown\nservices:\n  web:\n    image: busybox\n    x-machines: [node9]\n", nil),
			wantErr: `compose.yaml: services.web.x-machines: unknown node "node9" (known nodes: node1, node2)`},
		{name: "unknown builder", files: with("name: builder\nservices:\n  web:\n    build: ./app\n    x-uc-builder: node7\n", nil),
			wantErr: `compose.yaml: services.web.x-uc-builder: unknown node "node7"`},
		{name: "bad reference", files: with("name: badref\nservices:\n  web:\n    image: \"nginx:\"\n", nil),
			wantErr: `compose.yaml: services.web.image: "nginx:" is not a valid image reference`},
		{name: "cycle", files: with("name: cyc\nservices:\n  a:\n    build: {context: ./app, additional_contexts: {x: \"service:b\"}}\n  b:\n    build: {context: ./app, additional_contexts: {x: \"service:a\"}}\n", nil),
			wantErr: "a cycle through service: contexts or FROM lines, a → b → a"},
		{name: "same project from elsewhere",
			setup:   with("name: shop\nservices:\n  web:\n    build: ./app\n  api:\n    build: ./app\n", nil),
			files:   with("name: shop\nservices:\n  web:\n    build: ./app\n", nil),
			wantErr: "would delete build shop/api, change build shop/web"},
		{name: "same project from elsewhere, forced",
			setup: with("name: shop2\nservices:\n  web:\n    build: ./app\n  api:\n    build: ./app\n", nil),
			files: with("name: shop2\nservices:\n  web:\n    build: ./app\n", nil), args: []string{"--force"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.setup != nil {
				other := t.TempDir()
				writeTree(t, other, tt.setup)
				if out, err := ucAt(t, addr, "apply", "-f", filepath.Join(other, "compose.yaml")); err != nil {
					t.Fatalf("setup apply: %v\n%s", err, out)
				}
			}
			dir := t.TempDir()
			writeTree(t, dir, tt.files)
			args := append([]string{"apply", "-f", filepath.Join(dir, "compose.yaml")}, tt.args...)
			dryOut, dryErr := ucAt(t, addr, append(args, "--dry-run")...)
			out, err := ucAt(t, addr, args...)
			if (dryErr == nil) != (err == nil) || (err != nil && dryErr.Error() != err.Error()) {
				t.Fatalf("dry run and apply disagree:\ndry run: %v\n%s\napply: %v\n%s", dryErr, dryOut, err, out)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("apply: %v\n%s", err, out)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestDryRunWithoutState names the checks a dry run could not run.
func TestDryRunWithoutState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    image: busybox\n    x-machines: [node9]\n"})
	out, err := ucAt(t, "http://127.0.0.1:1", "apply", "-f", filepath.Join(dir, "compose.yaml"), "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"warning: dry run without the state:", "not checked: that placement and x-uc-builder nodes exist", "project: p"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestDeleteAfterContextsAreGone: uc delete -f needs only the project's
// name; it used to hash the contexts and fail when one was gone.
func TestDeleteAfterContextsAreGone(t *testing.T) {
	t.Parallel()
	addr := startCluster(t)
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"app/Dockerfile": "FROM busybox\n",
		"compose.yaml": "name: gone\nservices:\n  web:\n    build: ./app\n"})
	compose := filepath.Join(dir, "compose.yaml")
	if out, err := ucAt(t, addr, "apply", "-f", compose); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if err := os.RemoveAll(filepath.Join(dir, "app")); err != nil {
		t.Fatal(err)
	}
	out, err := ucAt(t, addr, "delete", "-f", compose)
	if err != nil || !strings.Contains(out, "build gone/web deleted") || !strings.Contains(out, "image gone/web deleted") {
		t.Errorf("delete -f with the context gone: %v\n%s", err, out)
	}
}

// TestDeleteFromAnotherOrigin: uc delete -f refuses, as apply does, to
// delete a project of the same name applied from somewhere else, unless
// --force.
func TestDeleteFromAnotherOrigin(t *testing.T) {
	t.Parallel()
	addr := startCluster(t)
	files := map[string]string{"app/Dockerfile": "FROM busybox\n", "compose.yaml": "name: twice\nservices:\n  web:\n    build: ./app\n"}
	teamA, teamB := t.TempDir(), t.TempDir()
	writeTree(t, teamA, files)
	writeTree(t, teamB, files)
	if out, err := ucAt(t, addr, "apply", "-f", filepath.Join(teamA, "compose.yaml")); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	_, err := ucAt(t, addr, "delete", "-f", filepath.Join(teamB, "compose.yaml"))
	if err == nil || !strings.Contains(err.Error(), "project twice was applied from") || !strings.Contains(err.Error(), "would delete build twice/web, delete image twice/web") {
		t.Fatalf("delete from another origin: %v, want a refusal naming both places", err)
	}
	out, err := ucAt(t, addr, "delete", "-f", filepath.Join(teamB, "compose.yaml"), "--force")
	if err != nil || !strings.Contains(out, "build twice/web deleted") {
		t.Errorf("delete --force: %v\n%s", err, out)
	}
}
