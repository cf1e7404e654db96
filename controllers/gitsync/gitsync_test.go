package gitsync

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state/statetest"
	"github.com/ucplane/uc/test/harness/gitserver"
)

// TestSyncReconcile drives one node's sync controller over the embedded
// state and a real git server: a commit is applied once, a new commit
// waits for the interval (or a refresh), an invalid file changes nothing
// and is reported with its commit, and a node that is not the owner does
// nothing.
func TestSyncReconcile(t *testing.T) {
	srv := gitserver.Start(t, "")
	compose := "name: synced\nservices:\n  web:\n    image: busybox:1.36\n  tool:\n    image: busybox:1.37\n"
	repo := srv.NewRepo(t, "site", map[string]string{"deploy/compose.yaml": compose})
	st := statetest.Start(t)
	ctx := context.Background()
	now := time.Now()
	if err := st.Store.RegisterNode(ctx, api.Node{Name: "n1", State: api.NodeReady, StartedAt: now, HeartbeatAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	cache := st.StartCache(t)
	clock := now
	r := &Reconciler{store: st.Store, cache: cache, cfg: Config{Node: "n1", Dir: t.TempDir()}, log: slog.New(slog.DiscardHandler),
		now: func() time.Time { return clock }, heads: map[string]head{}}
	if err := st.Store.PutSync(ctx, api.SyncSpec{Name: "site", Repo: repo.URL, Ref: "main", Path: "deploy/compose.yaml", Interval: "10s"}); err != nil {
		t.Fatal(err)
	}
	status := func() api.SyncStatus {
		t.Helper()
		statetest.Eventually(t, "the cache to hold the sync", func() bool { _, ok := cache.GetSync("site"); return ok })
		if _, err := r.Reconcile(ctx, "site"); err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		rec, err := st.Store.GetSync(ctx, "site")
		if err != nil {
			t.Fatal(err)
		}
		cur, _ := rec.Current()
		statetest.Eventually(t, "the cache to hold the status", func() bool {
			c, _ := cache.GetSync("site")
			got, _ := c.Current()
			return got.UpdatedAt.Equal(cur.UpdatedAt)
		})
		return cur
	}
	images := func() int {
		imgs, err := st.Store.ListImages(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		return len(imgs)
	}

	first := status()
	if first.Phase != api.SyncApplied || first.Commit != repo.Head() || first.Project != "synced" || images() != 2 {
		t.Fatalf("first commit: %+v, %d images", first, images())
	}
	if again := status(); !again.UpdatedAt.Equal(first.UpdatedAt) {
		t.Errorf("an unchanged commit was applied again")
	}

	// A new commit drops a service: applied once the interval passed.
	second := repo.Commit(map[string]string{"deploy/compose.yaml": "name: synced\nservices:\n  web:\n    image: busybox:1.36\n"}, "drop tool")
	repo.Push("main")
	if st := status(); st.Commit != first.Commit {
		t.Errorf("applied %s before the interval passed", st.Commit)
	}
	clock = clock.Add(11 * time.Second)
	if st := status(); st.Phase != api.SyncApplied || st.Commit != second || images() != 1 || !strings.Contains(strings.Join(st.Changes, ";"), "image synced/tool deleted") {
		t.Errorf("second commit: %+v, %d images", st, images())
	}

	// An invalid file changes nothing; a refresh resolves at once.
	bad := repo.Commit(map[string]string{"deploy/compose.yaml": "name: synced\nservices:\n  web:\n    imag: busybox\n"}, "typo")
	repo.Push("main")
	if err := st.Store.RefreshSyncs(ctx, []string{"site"}); err != nil {
		t.Fatal(err)
	}
	statetest.Eventually(t, "the refresh", func() bool { c, _ := cache.GetSync("site"); return c.Meta.Generation == 2 })
	if st := status(); st.Phase != api.SyncFailed || st.Commit != bad || st.Applied != second || !strings.Contains(st.Message, "not applied, nothing changed") || images() != 1 {
		t.Errorf("invalid file: %+v, %d images", st, images())
	}

	// Another node's controller does nothing: n1 owns the sync.
	other := &Reconciler{store: st.Store, cache: cache, cfg: Config{Node: "n2", Dir: t.TempDir()}, log: r.log, now: r.now, heads: map[string]head{}}
	if _, err := other.Reconcile(ctx, "site"); err != nil {
		t.Fatal(err)
	}
	if rec, _ := st.Store.GetSync(ctx, "site"); len(rec.Status) != 1 {
		t.Errorf("a node that does not own the sync wrote %d rows", len(rec.Status))
	}
}

// TestSyncBakeAndMonorepo applies the other two kinds a sync's path may
// name: a Bake file (its default group) and an image monorepo directory.
func TestSyncBakeAndMonorepo(t *testing.T) {
	srv := gitserver.Start(t, "")
	repo := srv.NewRepo(t, "tree", map[string]string{
		"docker-bake.hcl":                    "group \"default\" { targets = [\"app\"] }\ntarget \"app\" {\n  context = \"app\"\n  tags = [\"bake/app:1\"]\n}\n",
		"app/Dockerfile":                     "FROM busybox\n",
		"images/contexts/00-base/Dockerfile": "FROM busybox\n",
		"images/contexts/00-base/info.edn":   `{:version "1.0.0"}`,
	})
	st := statetest.Start(t)
	ctx := context.Background()
	now := time.Now()
	if err := st.Store.RegisterNode(ctx, api.Node{Name: "n1", State: api.NodeReady, StartedAt: now, HeartbeatAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	cache := st.StartCache(t)
	r := &Reconciler{store: st.Store, cache: cache, cfg: Config{Node: "n1", Dir: t.TempDir()}, log: slog.New(slog.DiscardHandler),
		now: time.Now, heads: map[string]head{}}
	for name, path := range map[string]string{"bake": "docker-bake.hcl", "mono": "images"} {
		if err := st.Store.PutSync(ctx, api.SyncSpec{Name: name, Repo: repo.URL, Ref: "main", Path: path, Interval: "1m"}); err != nil {
			t.Fatal(err)
		}
		statetest.Eventually(t, "the cache to hold "+name, func() bool { _, ok := cache.GetSync(name); return ok })
		if _, err := r.Reconcile(ctx, name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rec, err := st.Store.GetSync(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if cur, _ := rec.Current(); cur.Phase != api.SyncApplied || cur.Project == "" {
			t.Errorf("sync of %s: %+v", path, cur)
		}
	}
	builds, err := st.Store.ListBuilds(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range builds {
		names = append(names, b.Spec.Name)
	}
	if len(names) != 2 {
		t.Errorf("builds %v, want the Bake target's and the monorepo context's", names)
	}
}
