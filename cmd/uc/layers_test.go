package main

import (
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// daemonOnly are packages only ucd may link: the registry server and
// distribution's storage drivers and handlers, BuildKit's solver, the
// Docker client, SQLite, the work queue and uc's own daemon side. A path
// ending in "/..." names the whole tree under it.
var daemonOnly = []string{
	"github.com/distribution/distribution/v3/registry/...",
	"github.com/moby/buildkit/solver/...",
	"github.com/docker/docker/client/...",
	"modernc.org/sqlite/...",
	"k8s.io/client-go/util/workqueue/...",
	"github.com/ucplane/uc/controllers/...",
	"github.com/ucplane/uc/reconcile/...",
	"github.com/ucplane/uc/registry",
	"github.com/ucplane/uc/state/embedded/...",
}

// TestCLILinksNoDaemonCode keeps the layering: the CLI links no daemon
// code (ARCHITECTURE.md, Layout), which kept uc at a third of its former
// size. A failure names the import chain that pulled the package in.
func TestCLILinksNoDaemonCode(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the CLI's packages")
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		imports[fields[0]] = fields[1:]
	}
	for _, pkg := range slices.Sorted(maps.Keys(imports)) {
		if slices.ContainsFunc(daemonOnly, func(pattern string) bool { return matches(pattern, pkg) }) {
			t.Errorf("uc links %s: %s", pkg, strings.Join(chain(imports, "github.com/ucplane/uc/cmd/uc", pkg), " → "))
		}
	}
}

func matches(pattern, pkg string) bool {
	if tree, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == tree || strings.HasPrefix(pkg, tree+"/")
	}
	return pkg == pattern
}

// chain is a shortest import path from one package to another.
func chain(imports map[string][]string, from, to string) []string {
	via := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		pkg := queue[0]
		queue = queue[1:]
		if pkg == to {
			var path []string
			for p := to; p != ""; p = via[p] {
				path = append([]string{p}, path...)
			}
			return path
		}
		for _, next := range imports[pkg] {
			if _, seen := via[next]; !seen {
				via[next] = pkg
				queue = append(queue, next)
			}
		}
	}
	return []string{from, "…", to}
}
