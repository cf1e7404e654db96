package gckeep_test

import (
	"context"
	"slices"
	"testing"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/registry/gckeep"
	"github.com/ucplane/uc/registry/regclient"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/statetest"
)

// TestFromState seeds the embedded state with a build (its status, its
// history and a shipped context) and an image a node holds, and checks
// that everything they reference is kept.
func TestFromState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := statetest.Start(t).Store
	build := api.BuildSpec{Name: "p/web", Project: "p", Service: "web", Image: "p/web", Context: "/src",
		ContextRef: "r/uc-contexts/p/web@sha256:ctx", CacheFrom: []string{"team/cache"}}
	image := api.ImageSpec{Name: "p/db", Project: "p", Service: "db", Image: "postgres@sha256:pinned"}
	p := &api.Project{Name: "p", Builds: []api.BuildSpec{build}, Images: []api.ImageSpec{image}}
	if _, err := store.ApplyProject(ctx, p, state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	st := api.BuildStatus{Name: "p/web", Node: "n1", Digest: "sha256:built", Detail: api.BuildDetail{History: []string{"sha256:old"}}}
	if err := store.PutBuildStatus(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := store.PutPresence(ctx, api.ImagePresence{Image: "p/db", Node: "n1", Digest: "sha256:held"}); err != nil {
		t.Fatal(err)
	}
	keep, err := gckeep.FromState(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	wantDigests := []string{"sha256:built", "sha256:ctx", "sha256:held", "sha256:old", "sha256:pinned"}
	if !slices.Equal(keep.Digests, wantDigests) {
		t.Errorf("digests %q, want %q", keep.Digests, wantDigests)
	}
	wantTags := []regclient.RepoTag{{Repo: "uc-cache/p/web", Tag: "buildcache"}, {Repo: "team/cache", Tag: "latest"}}
	if !slices.Equal(keep.Tags, wantTags) {
		t.Errorf("tags %v, want %v", keep.Tags, wantTags)
	}
}
