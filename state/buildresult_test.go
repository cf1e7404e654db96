package state_test

import (
	"context"
	"testing"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/statetest"
)

// TestBuildResultFollowsParents: a child's success counts only while it
// was made from its parent's current result.
func TestBuildResultFollowsParents(t *testing.T) {
	t.Parallel()
	st := statetest.Start(t).Store
	ctx := context.Background()
	p := &api.Project{Name: "g", Builds: []api.BuildSpec{
		{Name: "g/base", Project: "g", Service: "base", Image: "g/base", Context: "/b"},
		{Name: "g/app", Project: "g", Service: "app", Image: "g/app", Context: "/a",
			AdditionalContexts: map[string]string{"base": api.ServiceContextPrefix + "g/base"}},
	}}
	if _, err := st.ApplyProject(ctx, p, state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	succeed := func(name, digest string, inputs map[string]string) {
		t.Helper()
		b, err := st.GetBuild(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.PutBuildStatus(ctx, api.BuildStatus{Name: name, Node: "n1", SpecUID: b.Meta.UID, ObservedGeneration: b.Meta.Generation,
			Phase: api.BuildSucceeded, Digest: digest, UpdatedAt: time.Now(), Detail: api.BuildDetail{Inputs: inputs}}); err != nil {
			t.Fatal(err)
		}
	}
	ready := func() bool {
		t.Helper()
		_, ok, err := st.BuildResult(ctx, "g/app")
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	succeed("g/base", "sha256:1", nil)
	succeed("g/app", "sha256:a", map[string]string{"g/base": "r/g/base@sha256:1"})
	if !ready() {
		t.Fatal("app built from base's current result is not ready")
	}
	succeed("g/base", "sha256:2", nil) // the parent rebuilt
	if ready() {
		t.Error("app built from base's old result counts as ready")
	}
	succeed("g/app", "sha256:b", map[string]string{"g/base": "r/g/base@sha256:2"})
	if !ready() {
		t.Error("app rebuilt from the new base is not ready")
	}
}
