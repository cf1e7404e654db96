package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/statetest"
)

// TestGetImagesWhileHeartbeatsFail: a built image whose nodes all stopped
// heartbeating still shows its digest, and says why nothing is counted.
func TestGetImagesWhileHeartbeatsFail(t *testing.T) {
	t.Parallel()
	srv := statetest.Start(t)
	ctx := testCtx(t)
	node(t, srv.Store, "node1", false, true)
	node(t, srv.Store, "node2", false, true)
	p := &api.Project{Name: "w",
		Builds: []api.BuildSpec{{Name: "w/web", Project: "w", Service: "web", Image: "w/web", Context: "/src"}},
		Images: []api.ImageSpec{{Name: "w/web", Project: "w", Service: "web", Build: "w/web"}}}
	if _, err := srv.Store.ApplyProject(ctx, p, state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := srv.Store.GetBuild(ctx, "w/web")
	if err != nil {
		t.Fatal(err)
	}
	const dg = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	if err := srv.Store.PutBuildStatus(ctx, api.BuildStatus{Name: "w/web", Node: "node1", SpecUID: b.Meta.UID,
		ObservedGeneration: b.Meta.Generation, Phase: api.BuildSucceeded, Digest: dg, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := &cobra.Command{}
	cmd.SetContext(ctx)
	cmd.SetOut(&out)
	if err := (view{cmd: cmd, store: srv.Store, output: "table", now: time.Now()}).get("images", ""); err != nil {
		t.Fatal(err)
	}
	// NAME SOURCE DIGEST PRESENT STATUS …
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[0] == "w/web" {
			if f[2] != "222222222222" || f[3] != "0/0" || f[4] != "skipped(NotReady):2" {
				t.Errorf("row %q: want digest 222222222222, 0/0, skipped(NotReady):2", line)
			}
			return
		}
	}
	t.Errorf("no w/web row in:\n%s", out.String())
}
