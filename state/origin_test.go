package state_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/statetest"
)

// TestApplyFromTwoOrigins: one project name applied from two places must
// not have the second apply prune or rewrite the first's specs unless
// forced (it used to delete them silently).
func TestApplyFromTwoOrigins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := statetest.Start(t).Store
	teamA := demoProject("hi", "web", "db")
	teamA.Origin = "git ssh://git/a.git shop/compose.yaml"
	if _, err := st.ApplyProject(ctx, teamA, state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	teamB := demoProject("hello", "web")
	teamB.Origin = "laptop:/home/b/shop/compose.yaml"

	for _, opts := range []state.ApplyOptions{{}, {DryRun: true}} {
		_, err := st.ApplyProject(ctx, teamB, opts)
		var conflict *state.OriginConflict
		if !errors.As(err, &conflict) {
			t.Fatalf("dry run %v: got %v, want an origin conflict", opts.DryRun, err)
		}
		for _, want := range []string{"project demo was applied from git ssh://git/a.git shop/compose.yaml",
			"this apply, from laptop:/home/b/shop/compose.yaml, would change build demo/web, delete image demo/db (use",
			"--force"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	}
	if rec, err := st.GetBuild(ctx, "demo/web"); err != nil || rec.Spec.Args["GREETING"] != "hi" {
		t.Fatalf("team A's build was touched: %+v %v", rec.Spec.Args, err)
	}

	same := demoProject("hi", "web", "db")
	same.Origin = "ci:/tmp/other/compose.yaml"
	res, err := st.ApplyProject(ctx, same, state.ApplyOptions{})
	if err != nil || res.Wrote() {
		t.Errorf("an identical project from elsewhere: wrote %v, err %v; want nothing changed and no conflict", res.Wrote(), err)
	}

	res, err = st.ApplyProject(ctx, teamB, state.ApplyOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	wantActions(t, res, "build demo/web configured", "image demo/db deleted", "image demo/web unchanged")
	teamB.Builds[0].Args["GREETING"] = "hey"
	if _, err := st.ApplyProject(ctx, teamB, state.ApplyOptions{}); err != nil {
		t.Errorf("after taking over, the new origin's own apply: %v", err)
	}
}
