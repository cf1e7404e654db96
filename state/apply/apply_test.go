package apply_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/compose"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/apply"
	"github.com/ucplane/uc/state/statetest"
)

// TestApplyFromGo drives a whole apply as a GitOps job would, without the
// CLI: load, dry run, apply, apply again, delete.
func TestApplyFromGo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := statetest.Start(t).Store
	dir := t.TempDir()
	for name, body := range map[string]string{
		"compose.yaml": "name: shop\nservices:\n  web:\n    build: .\n  db:\n    image: busybox\n",
		"Dockerfile":   "FROM busybox\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var progress strings.Builder
	opts := apply.Options{Progress: &progress, Compose: compose.LoadOptions{
		Files: []string{filepath.Join(dir, "compose.yaml")}, Env: map[string]string{"COMPOSE_PROJECT_NAME": ""}}}
	p, err := apply.Load(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "shop" || len(p.Builds) != 1 || len(p.Images) != 2 || !strings.HasSuffix(p.Origin, filepath.Join(dir, "compose.yaml")) {
		t.Fatalf("loaded %s with %d builds, %d images, origin %q; want shop, 1, 2 and this file", p.Name, len(p.Builds), len(p.Images), p.Origin)
	}
	check := func(what string, run step, o apply.Options, writes bool) {
		t.Helper()
		res, err := run(ctx, store, p, o)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if res.Wrote() != writes {
			t.Errorf("%s: changes %v, want writes %v", what, res.Changes, writes)
		}
	}
	dry := opts
	dry.DryRun = true
	check("dry run", apply.Apply, dry, true)
	if builds, _ := store.ListBuilds(ctx, ""); len(builds) != 0 {
		t.Fatalf("the dry run wrote %d builds", len(builds))
	}
	check("apply", apply.Apply, opts, true)
	if !strings.Contains(progress.String(), "contexts not shipped") {
		t.Errorf("progress %q does not say why contexts stayed here (no registry)", progress.String())
	}
	check("apply again", apply.Apply, opts, false)
	check("delete", apply.Delete, opts, true)
	if images, _ := store.ListImages(ctx, ""); len(images) != 0 {
		t.Errorf("%d images left after delete", len(images))
	}
}

// step is Apply or Delete.
type step func(context.Context, *state.Store, *api.Project, apply.Options) (state.ApplyResult, error)
