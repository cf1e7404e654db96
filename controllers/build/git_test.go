package build

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/test/harness/gitserver"
)

// TestFollowBranch follows a branch of a private repository on a real git
// server (smart HTTP behind a token): a new commit builds once its
// interval passes, a refresh resolves at once, a force-push back reuses
// the old image by build key, a deleted branch stalls naming the branch,
// and a refused token is retried with the repository named.
func TestFollowBranch(t *testing.T) {
	srv := gitserver.Start(t, "t0ken")
	repo := srv.NewRepo(t, "app", map[string]string{"Dockerfile": "FROM scratch\n"})
	t.Setenv("UC_TEST_GIT_TOKEN", "t0ken")
	w := newBuildWorld(t, func(_ context.Context, n int, _ func(progress)) (solveResult, error) {
		return solveResult{Digest: strconv.Itoa(n)}, nil
	})
	clock := time.Now()
	w.r.now = func() time.Time { return clock }
	spec := api.BuildSpec{Name: "p/web", Project: "p", Service: "web", Image: "p/web", Context: repo.URL + "#main",
		Follow: "10s", GitCredential: "env:UC_TEST_GIT_TOKEN"}
	if _, err := w.store.ApplyProject(context.Background(), &api.Project{Name: "p", Builds: []api.BuildSpec{spec}}, state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	w.synced("p/web", func(state.BuildRecord) bool { return true })

	first := repo.Head()
	st, err := w.reconcile("p/web")
	if err != nil || st.Phase != api.BuildSucceeded || st.Detail.Commit != first || w.solver.count() != 1 {
		t.Fatalf("first reconcile: %v, %s commit %s, %d solves", err, st.Phase, st.Detail.Commit, w.solver.count())
	}
	firstDigest := st.Digest

	second := repo.Commit(map[string]string{"msg": "v2"}, "second")
	repo.Push("main")
	if st, _ = w.reconcile("p/web"); st.Detail.Commit != first || w.solver.count() != 1 {
		t.Errorf("before the interval passed: commit %s, %d solves; want no new resolve", st.Detail.Commit, w.solver.count())
	}
	clock = clock.Add(11 * time.Second)
	if st, err = w.reconcile("p/web"); err != nil || st.Detail.Commit != second || w.solver.count() != 2 || st.Digest == firstDigest {
		t.Fatalf("after the interval: %v, commit %s, %d solves", err, st.Detail.Commit, w.solver.count())
	}

	// A force-push back to the first commit reuses its image.
	{
		repo.ResetTo(first)
		repo.Push("main")
		w.refresh("p/web")
		st, err := w.reconcile("p/web")
		if err != nil || st.Detail.Commit != first || !st.Detail.Reused || st.Digest != firstDigest || w.solver.count() != 2 {
			t.Errorf("after a refresh: %v, commit %s, reused %v, digest %s, %d solves", err, st.Detail.Commit, st.Detail.Reused, st.Digest, w.solver.count())
		}
	}

	// A deleted branch stalls, keeps the image, and is said once.
	{
		repo.DeleteBranch("main")
		w.refresh("p/web")
		st, err := w.reconcile("p/web")
		if !reconcile.IsTerminal(err) || st.Phase != api.BuildFailed || conditionOf(st, api.ConditionStalled).Reason != "BranchGone" ||
			!strings.Contains(st.Message, "branch main of "+repo.URL+" no longer exists") || st.Digest != firstDigest {
			t.Fatalf("deleted branch: %v, %s %q, digest %s", err, st.Phase, st.Message, st.Digest)
		}
		clock = clock.Add(11 * time.Second)
		again, err := w.reconcile("p/web")
		if err != nil || !again.UpdatedAt.Equal(st.UpdatedAt) {
			t.Errorf("the next check wrote again: %v, updated %v then %v", err, st.UpdatedAt, again.UpdatedAt)
		}
		third := repo.Commit(map[string]string{"msg": "v3"}, "third")
		repo.Push("main")
		clock = clock.Add(11 * time.Second)
		if st, err = w.reconcile("p/web"); err != nil || st.Phase != api.BuildSucceeded || st.Detail.Commit != third {
			t.Errorf("the branch pushed again: %v, %s commit %s", err, st.Phase, st.Detail.Commit)
		}
	}

	// A refused token is retried, naming the repository.
	{
		t.Setenv("UC_TEST_GIT_TOKEN", "wrong")
		repo.Commit(map[string]string{"msg": "v4"}, "fourth")
		repo.Push("main")
		clock = clock.Add(11 * time.Second)
		before := w.solver.count()
		st, err := w.reconcile("p/web")
		if err == nil || reconcile.IsTerminal(err) || st.Phase != api.BuildFailed || !strings.Contains(st.Message, repo.URL) ||
			st.Digest == "" || w.solver.count() != before {
			t.Errorf("a refused token: %v, %s %q, digest %q", err, st.Phase, st.Message, st.Digest)
		}
	}
}

// refresh bumps a build's generation, as uc refresh builds and a push
// webhook do, and waits for the cache to see it.
func (w *buildWorld) refresh(name string) {
	w.t.Helper()
	before, err := w.store.GetBuild(context.Background(), name)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, _, err := w.store.RefreshBuilds(context.Background(), []string{name}); err != nil {
		w.t.Fatal(err)
	}
	w.synced(name, func(b state.BuildRecord) bool { return b.Meta.Generation > before.Meta.Generation })
}
