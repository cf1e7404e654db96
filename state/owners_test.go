package state_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/statetest"
)

// TestRepositoryOwnership: a project owns the repositories its builds
// wrote first; another project's build into one is refused, even with
// --force, until the owner lists it in x-uc-allow-writers.
func TestRepositoryOwnership(t *testing.T) {
	t.Parallel()
	st := statetest.Start(t).Store
	ctx := context.Background()
	project := func(name, image string, tags []string, writers ...string) *api.Project {
		return &api.Project{Name: name, Builds: []api.BuildSpec{{Name: name + "/b", Project: name, Service: "b",
			Image: image, Tags: tags, Context: "/src", AllowWriters: writers}}}
	}
	apply := func(p *api.Project, opts state.ApplyOptions) error {
		_, err := st.ApplyProject(ctx, p, opts)
		return err
	}
	if err := apply(project("shop", "shop/base", nil), state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := apply(project("shop", "shop/base:2", nil), state.ApplyOptions{}); err != nil {
		t.Errorf("the owner re-applying: %v", err)
	}
	for _, tt := range []struct {
		name string
		p    *api.Project
		opts state.ApplyOptions
	}{
		{"same repository", project("evil", "shop/base:evil", nil), state.ApplyOptions{}},
		{"through a tag", project("evil", "evil/x", []string{"docker.io/shop/base:1"}), state.ApplyOptions{}},
		{"with --force", project("evil", "shop/base", nil), state.ApplyOptions{Force: true}},
		{"on a dry run", project("evil", "shop/base", nil), state.ApplyOptions{DryRun: true}},
	} {
		err := apply(tt.p, tt.opts)
		var rc *state.RepositoryConflict
		if !errors.As(err, &rc) || !strings.Contains(err.Error(), "writes repository shop/base, which project shop owns (its build shop/b writes it); project evil may write it only if shop lists evil in x-uc-allow-writers") {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	if _, err := st.GetBuild(ctx, "evil/b"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("a refused apply wrote its build: %v", err)
	}
	if err := apply(project("shop", "shop/base:2", nil, "evil"), state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := apply(project("evil", "shop/base:evil", nil), state.ApplyOptions{}); err != nil {
		t.Errorf("a writer the owner allows: %v", err)
	}
	if err := apply(project("shop", "shop/base:3", nil, "evil"), state.ApplyOptions{}); err != nil {
		t.Errorf("the owner re-applying beside its guest: %v", err)
	}
	// A guest cannot let a third project in.
	if err := apply(project("evil", "shop/base:evil", nil, "thief"), state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := apply(project("thief", "shop/base:mine", nil), state.ApplyOptions{}); err == nil || !strings.Contains(err.Error(), "which project shop owns") {
		t.Errorf("a project only a guest let in: %v", err)
	}
}
