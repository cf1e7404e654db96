package state_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/corrosion"
	"github.com/ucplane/uc/state/embedded"
	"github.com/ucplane/uc/state/statetest"
)

const waitFor = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startServer serves the embedded state with the given schema.
func startServer(t *testing.T, schema string) *statetest.Server {
	t.Helper()
	return statetest.StartWith(t, embedded.Options{Schema: []string{schema}, Logger: slog.New(slog.DiscardHandler)})
}

// probe writes a scratch row and returns the db_version of that write.
// Two probes one apart bracket an operation that wrote nothing.
func probe(t *testing.T, st *state.Store) int64 {
	t.Helper()
	res, err := st.Client().Exec(t.Context(), corrosion.Stmt(`INSERT INTO registry_status (node, updated_at) VALUES ('probe', ?)
ON CONFLICT (node) DO UPDATE SET updated_at = excluded.updated_at`, time.Now().UnixNano()))
	if err != nil {
		t.Fatalf("probe write: %v", err)
	}
	if res.Version == nil {
		t.Fatal("probe write: version is null")
	}
	return *res.Version
}

// assertNoWrite fails when op wrote anything to the state.
func assertNoWrite(t *testing.T, st *state.Store, what string, op func()) {
	t.Helper()
	before := probe(t, st)
	op()
	if after := probe(t, st); after != before+1 {
		t.Errorf("%s wrote to the state (db_version %d → %d around it)", what, before, after)
	}
}

// assertWrote fails when op wrote nothing.
func assertWrote(t *testing.T, st *state.Store, what string, op func()) {
	t.Helper()
	before := probe(t, st)
	op()
	if after := probe(t, st); after == before+1 {
		t.Errorf("%s wrote nothing", what)
	}
}

func removeTable(t *testing.T, schema, table string) string {
	t.Helper()
	start := strings.Index(schema, "CREATE TABLE IF NOT EXISTS "+table+" (")
	if start < 0 {
		t.Fatalf("schema has no table %s", table)
	}
	end := strings.Index(schema[start:], ");\n")
	return schema[:start] + schema[start+end+3:]
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("schema does not contain %q", old)
	}
	return strings.Replace(s, old, new, 1)
}

func TestCheckSchema(t *testing.T) {
	t.Parallel()
	t.Run("embedded state", func(t *testing.T) {
		t.Parallel()
		srv := statetest.Start(t)
		if err := srv.Store.CheckSchema(testCtx(t)); err != nil {
			t.Fatalf("CheckSchema: %v", err)
		}
	})
	noHeartbeat := replaceOnce(t, state.Schema, "    heartbeat_at INTEGER NOT NULL DEFAULT 0,\n", "")
	for _, tc := range []struct {
		name    string
		schema  string
		missing []string
	}{
		{"missing table", removeTable(t, state.Schema, "image_presence"), []string{"table image_presence"}},
		{"missing column", noHeartbeat, []string{"nodes.heartbeat_at"}},
		{"missing both", removeTable(t, noHeartbeat, "build_status"), []string{"nodes.heartbeat_at", "table build_status"}},
		{"empty", "CREATE TABLE IF NOT EXISTS other (id INTEGER NOT NULL PRIMARY KEY);", []string{
			"table build_specs", "table build_status", "table image_presence", "table image_specs",
			"table nodes", "table registry_spec", "table registry_status"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := startServer(t, tc.schema).Store
			err := st.CheckSchema(testCtx(t))
			if err == nil {
				t.Fatal("CheckSchema passed on an incomplete schema")
			}
			msg := err.Error()
			for _, m := range tc.missing {
				if !strings.Contains(msg, m) {
					t.Errorf("error does not name %q: %v", m, err)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			if tc.name != "empty" && strings.Contains(msg, "table nodes") {
				t.Errorf("error names a table that exists: %v", err)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		c, err := corrosion.New("http://127.0.0.1:1")
		if err != nil {
			t.Fatal(err)
		}
		err = state.NewStore(c).CheckSchema(testCtx(t))
		var unreachable *corrosion.Unreachable
		if !errors.As(err, &unreachable) {
			t.Fatalf("CheckSchema on a closed port: got %v, want *corrosion.Unreachable", err)
		}
	})
}

func TestNodes(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st := statetest.Start(t).Store
	t0 := time.UnixMilli(time.Now().UnixMilli())
	n1 := api.Node{Name: "node1", Labels: map[string]string{"zone": "eu"}, State: api.NodeReady, Version: "v1",
		StartedAt: t0, HeartbeatAt: t0}
	n2 := api.Node{Name: "node0", State: api.NodeReady, Version: "v1", StartedAt: t0, HeartbeatAt: t0}
	for _, n := range []api.Node{n1, n2} {
		if err := st.RegisterNode(ctx, n); err != nil {
			t.Fatalf("RegisterNode(%s): %v", n.Name, err)
		}
	}
	nodes, err := st.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{nodes[0].Name, nodes[1].Name}; len(nodes) != 2 || !slices.Equal(got, []string{"node0", "node1"}) {
		t.Fatalf("ListNodes = %+v, want node0, node1 in order", nodes)
	}
	if nodes[0].Labels == nil || len(nodes[0].Labels) != 0 {
		t.Errorf("node0 labels = %#v, want an empty map", nodes[0].Labels)
	}
	got, err := st.GetNode(ctx, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels["zone"] != "eu" || got.State != api.NodeReady || got.Version != "v1" ||
		!got.StartedAt.Equal(t0) || !got.HeartbeatAt.Equal(t0) {
		t.Errorf("GetNode = %+v, want %+v", got, n1)
	}
	if _, err := st.GetNode(ctx, "nope"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("GetNode(nope) = %v, want ErrNotFound", err)
	}

	// Registering again with only a newer heartbeat writes nothing.
	again := n1
	again.HeartbeatAt = t0.Add(time.Second)
	assertNoWrite(t, st, "re-registering an identical node", func() {
		if err := st.RegisterNode(ctx, again); err != nil {
			t.Fatal(err)
		}
	})
	if got, _ := st.GetNode(ctx, "node1"); !got.HeartbeatAt.Equal(t0) {
		t.Errorf("identical re-register moved heartbeat_at to %v", got.HeartbeatAt)
	}

	// Heartbeats move forward only.
	t1 := t0.Add(2 * time.Second)
	assertWrote(t, st, "Heartbeat", func() {
		if err := st.Heartbeat(ctx, "node1", t1); err != nil {
			t.Fatal(err)
		}
	})
	assertNoWrite(t, st, "an older heartbeat", func() {
		if err := st.Heartbeat(ctx, "node1", t0.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	})
	if got, _ := st.GetNode(ctx, "node1"); !got.HeartbeatAt.Equal(t1) {
		t.Errorf("heartbeat_at = %v, want %v", got.HeartbeatAt, t1)
	}
	assertNoWrite(t, st, "a heartbeat of an unknown node", func() {
		if err := st.Heartbeat(ctx, "nope", t1); err != nil {
			t.Fatal(err)
		}
	})

	// A changed label is written.
	changed := n1
	changed.Labels = map[string]string{"zone": "us"}
	assertWrote(t, st, "re-registering with new labels", func() {
		if err := st.RegisterNode(ctx, changed); err != nil {
			t.Fatal(err)
		}
	})
	if got, _ := st.GetNode(ctx, "node1"); got.Labels["zone"] != "us" {
		t.Errorf("labels = %v after re-register, want zone=us", got.Labels)
	}

	// Gone once; marking again is a no-op.
	assertWrote(t, st, "MarkNodeGone", func() {
		if err := st.MarkNodeGone(ctx, "node1"); err != nil {
			t.Fatal(err)
		}
	})
	assertNoWrite(t, st, "a second MarkNodeGone", func() {
		if err := st.MarkNodeGone(ctx, "node1"); err != nil {
			t.Fatal(err)
		}
	})
	if got, _ := st.GetNode(ctx, "node1"); got.State != api.NodeGone {
		t.Errorf("state = %q after MarkNodeGone, want gone", got.State)
	}
	// A restart registers it as ready again.
	if err := st.RegisterNode(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GetNode(ctx, "node1"); got.State != api.NodeReady {
		t.Errorf("state = %q after re-register, want ready", got.State)
	}
}

func demoProject(greeting string, services ...string) *api.Project {
	p := &api.Project{Name: "demo"}
	for _, s := range services {
		name := "demo/" + s
		if s == "web" {
			p.Builds = append(p.Builds, api.BuildSpec{Name: name, Project: "demo", Service: s, Image: name,
				Context: "/src/web", Args: map[string]string{"GREETING": greeting}})
			p.Images = append(p.Images, api.ImageSpec{Name: name, Project: "demo", Service: s, Build: name,
				Placement: api.Placement{Nodes: []string{"node1", "node2"}}})
			continue
		}
		p.Images = append(p.Images, api.ImageSpec{Name: name, Project: "demo", Service: s, Image: "postgres:17"})
	}
	return p
}

func actions(res state.ApplyResult) []string {
	var out []string
	for _, c := range res.Changes {
		out = append(out, c.Kind+" "+c.Name+" "+c.Action)
	}
	return out
}

func wantActions(t *testing.T, res state.ApplyResult, want ...string) {
	t.Helper()
	if got := actions(res); !slices.Equal(got, want) {
		t.Errorf("changes = %q, want %q", got, want)
	}
}

func generations(t *testing.T, st *state.Store) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	builds, err := st.ListBuilds(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range builds {
		out["build "+b.Spec.Name] = b.Meta.Generation
	}
	images, err := st.ListImages(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range images {
		out["image "+i.Spec.Name] = i.Meta.Generation
	}
	return out
}

func wantGenerations(t *testing.T, st *state.Store, want map[string]int64) {
	t.Helper()
	got := generations(t, st)
	if len(got) != len(want) {
		t.Errorf("specs = %v, want %v", got, want)
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("specs = %v, want %v", got, want)
			return
		}
	}
}

// changeStream follows a subscription and hands out the keys (first
// column) of its change events.
func changeStream(t *testing.T, st *state.Store, query string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := st.Client().Subscribe(ctx, corrosion.Stmt(query), corrosion.SubscribeOptions{})
	if err != nil {
		cancel()
		t.Fatalf("subscribe: %v", err)
	}
	for {
		ev, err := s.Next()
		if err != nil {
			cancel()
			t.Fatalf("subscription snapshot: %v", err)
		}
		if ev.Kind == corrosion.EventEOQ {
			break
		}
	}
	out := make(chan string, 100)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(out)
		for {
			ev, err := s.Next()
			if err != nil {
				return
			}
			if ev.Kind == corrosion.EventChange {
				out <- string(ev.Change) + " " + ev.Values[0].(string)
			}
		}
	})
	t.Cleanup(func() { cancel(); s.Close(); wg.Wait() })
	return out
}

func nextChange(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("subscription ended")
		}
		return c
	case <-time.After(waitFor):
		t.Fatal("no change event")
	}
	return ""
}

func TestApplyProject(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st := statetest.Start(t).Store
	changes := changeStream(t, st, "SELECT name, generation FROM image_specs")

	res, err := st.ApplyProject(ctx, demoProject("hi", "web", "db"), state.ApplyOptions{})
	if err != nil {
		t.Fatalf("first apply: %v", err)
	}
	wantActions(t, res, "build demo/web created", "image demo/db created", "image demo/web created")
	if !res.Wrote() {
		t.Error("Wrote() = false after creating specs")
	}
	wantGenerations(t, st, map[string]int64{"build demo/web": 1, "image demo/db": 1, "image demo/web": 1})
	for range 2 {
		if c := nextChange(t, changes); !strings.HasPrefix(c, "insert demo/") {
			t.Errorf("change = %q, want an insert", c)
		}
	}
	b, err := st.GetBuild(ctx, "demo/web")
	if err != nil {
		t.Fatal(err)
	}
	uid := b.Meta.UID
	if uid == "" || b.Spec.Args["GREETING"] != "hi" || b.Spec.Context != "/src/web" || b.Meta.UpdatedAt.IsZero() {
		t.Errorf("build = %+v", b)
	}
	img, err := st.GetImage(ctx, "demo/web")
	if err != nil {
		t.Fatal(err)
	}
	if img.Spec.Build != "demo/web" || !slices.Equal(img.Spec.Placement.Nodes, []string{"node1", "node2"}) {
		t.Errorf("image = %+v", img)
	}

	t.Run("unchanged re-apply writes nothing", func(t *testing.T) {
		assertNoWrite(t, st, "an unchanged apply", func() {
			res, err := st.ApplyProject(ctx, demoProject("hi", "web", "db"), state.ApplyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			wantActions(t, res, "build demo/web unchanged", "image demo/db unchanged", "image demo/web unchanged")
			if res.Wrote() {
				t.Error("Wrote() = true for an unchanged apply")
			}
		})
		wantGenerations(t, st, map[string]int64{"build demo/web": 1, "image demo/db": 1, "image demo/web": 1})
		// A later write to image_specs must be the very next change the
		// subscription sees: the no-op apply produced none.
		marker := &api.Project{Name: "marker", Images: []api.ImageSpec{{Name: "marker/x", Project: "marker", Service: "x", Image: "busybox"}}}
		if _, err := st.ApplyProject(ctx, marker, state.ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		if c := nextChange(t, changes); c != "insert marker/x" {
			t.Errorf("next change after an unchanged apply = %q, want the marker's insert", c)
		}
		if _, err := st.DeleteProject(ctx, "marker"); err != nil {
			t.Fatal(err)
		}
		if c := nextChange(t, changes); c != "delete marker/x" {
			t.Errorf("change = %q, want the marker's delete", c)
		}
	})

	t.Run("dry run writes nothing", func(t *testing.T) {
		assertNoWrite(t, st, "a dry run", func() {
			res, err := st.ApplyProject(ctx, demoProject("hello", "web", "cache"), state.ApplyOptions{DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			wantActions(t, res, "build demo/web configured", "image demo/cache created", "image demo/db deleted", "image demo/web unchanged")
		})
		wantGenerations(t, st, map[string]int64{"build demo/web": 1, "image demo/db": 1, "image demo/web": 1})
	})

	t.Run("changed spec gets a new generation", func(t *testing.T) {
		res, err := st.ApplyProject(ctx, demoProject("hello", "web", "db"), state.ApplyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wantActions(t, res, "build demo/web configured", "image demo/db unchanged", "image demo/web unchanged")
		wantGenerations(t, st, map[string]int64{"build demo/web": 2, "image demo/db": 1, "image demo/web": 1})
		b, err := st.GetBuild(ctx, "demo/web")
		if err != nil {
			t.Fatal(err)
		}
		if b.Meta.UID != uid || b.Spec.Args["GREETING"] != "hello" {
			t.Errorf("after configure: uid %s (was %s), args %v", b.Meta.UID, uid, b.Spec.Args)
		}
	})

	t.Run("removed service is deleted", func(t *testing.T) {
		res, err := st.ApplyProject(ctx, demoProject("hello", "web"), state.ApplyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wantActions(t, res, "build demo/web unchanged", "image demo/db deleted", "image demo/web unchanged")
		if c := nextChange(t, changes); c != "delete demo/db" {
			t.Errorf("change = %q, want delete demo/db", c)
		}
		if _, err := st.GetImage(ctx, "demo/db"); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("GetImage(demo/db) after delete = %v, want ErrNotFound", err)
		}
		wantGenerations(t, st, map[string]int64{"build demo/web": 2, "image demo/web": 1})
	})

	t.Run("other projects are left alone", func(t *testing.T) {
		other := &api.Project{Name: "other", Images: []api.ImageSpec{{Name: "other/x", Project: "other", Service: "x", Image: "busybox"}}}
		if _, err := st.ApplyProject(ctx, other, state.ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		res, err := st.ApplyProject(ctx, demoProject("hello", "web"), state.ApplyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wantActions(t, res, "build demo/web unchanged", "image demo/web unchanged")
		if res, err := st.DeleteProject(ctx, "other"); err != nil {
			t.Fatal(err)
		} else {
			wantActions(t, res, "image other/x deleted")
		}
	})

	t.Run("delete and re-create gets a new uid", func(t *testing.T) {
		if err := st.DeleteSpec(ctx, state.KindBuild, "demo/web"); err != nil {
			t.Fatalf("DeleteSpec: %v", err)
		}
		if _, err := st.GetBuild(ctx, "demo/web"); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("GetBuild after DeleteSpec = %v, want ErrNotFound", err)
		}
		res, err := st.ApplyProject(ctx, demoProject("hello", "web"), state.ApplyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wantActions(t, res, "build demo/web created", "image demo/web unchanged")
		b, err := st.GetBuild(ctx, "demo/web")
		if err != nil {
			t.Fatal(err)
		}
		if b.Meta.UID == uid || b.Meta.UID == "" || b.Meta.Generation != 1 {
			t.Errorf("re-created build: uid %q (old %q), generation %d; want a new uid and generation 1", b.Meta.UID, uid, b.Meta.Generation)
		}
	})

	t.Run("DeleteSpec", func(t *testing.T) {
		for _, tc := range []struct {
			kind, name string
			want       error
		}{
			{state.KindBuild, "demo/nope", state.ErrNotFound},
			{state.KindImage, "demo/nope", state.ErrNotFound},
			{"volume", "demo/web", nil},
		} {
			err := st.DeleteSpec(ctx, tc.kind, tc.name)
			switch {
			case err == nil:
				t.Errorf("DeleteSpec(%s, %s) succeeded", tc.kind, tc.name)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Errorf("DeleteSpec(%s, %s) = %v, want %v", tc.kind, tc.name, err, tc.want)
			case tc.want == nil && errors.Is(err, state.ErrNotFound):
				t.Errorf("DeleteSpec(%s, %s) = %v, want an unknown-kind error", tc.kind, tc.name, err)
			}
		}
	})

	t.Run("DeleteProject", func(t *testing.T) {
		res, err := st.DeleteProject(ctx, "demo")
		if err != nil {
			t.Fatal(err)
		}
		wantActions(t, res, "build demo/web deleted", "image demo/web deleted")
		wantGenerations(t, st, map[string]int64{})
		// Empty lists are empty slices, so that JSON output says [] not null.
		if b, err := st.ListBuilds(ctx, ""); err != nil || b == nil {
			t.Errorf("ListBuilds on no builds = %#v, %v; want an empty slice", b, err)
		}
		if i, err := st.ListImages(ctx, "demo/nope"); err != nil || i == nil {
			t.Errorf("ListImages on no images = %#v, %v; want an empty slice", i, err)
		}
		assertNoWrite(t, st, "deleting an empty project", func() {
			res, err := st.DeleteProject(ctx, "demo")
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Changes) != 0 || res.Wrote() {
				t.Errorf("second DeleteProject = %+v, want no changes", res)
			}
		})
	})
}

func TestApplyIsAtomic(t *testing.T) {
	t.Parallel()

	t.Run("direct transaction", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t)
		st := statetest.Start(t).Store
		_, err := st.Client().Exec(ctx,
			corrosion.Stmt("INSERT INTO build_specs (name, project, uid, spec) VALUES ('p/a', 'p', 'u1', '{}')"),
			corrosion.Stmt("INSERT INTO image_specs (name, project, uid, spec) VALUES ('p/a', 'p', 'u2', 'not json')"))
		if err == nil {
			t.Fatal("a transaction with invalid JSON in spec succeeded")
		}
		if !strings.Contains(err.Error(), "CHECK constraint failed") {
			t.Errorf("error = %v, want a CHECK constraint failure", err)
		}
		wantGenerations(t, st, map[string]int64{})
	})

	t.Run("ApplyProject", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t)
		// A state whose image_specs refuses long specs: the build spec goes
		// first in the transaction and must be rolled back with the image.
		schema := state.Schema
		at := strings.Index(schema, "CREATE TABLE IF NOT EXISTS image_specs")
		schema = schema[:at] + replaceOnce(t, schema[at:], "CHECK (json_valid(spec))", "CHECK (json_valid(spec) AND length(spec) < 120)")
		st := startServer(t, schema).Store
		small := &api.Project{Name: "demo", Images: []api.ImageSpec{{Name: "demo/db", Project: "demo", Service: "db", Image: "pg"}}}
		if _, err := st.ApplyProject(ctx, small, state.ApplyOptions{}); err != nil {
			t.Fatalf("apply of a small project: %v", err)
		}
		p := demoProject("hi", "web", "db")
		p.Images[0].Image = "postgres:" + strings.Repeat("x", 200) // demo/db
		before := generations(t, st)
		_, err := st.ApplyProject(ctx, p, state.ApplyOptions{})
		if err == nil {
			t.Fatal("apply succeeded although image_specs refuses one of its rows")
		}
		if !strings.Contains(err.Error(), "apply project demo") || !strings.Contains(err.Error(), "CHECK constraint failed") {
			t.Errorf("error = %v, want it to name the project and the failed check", err)
		}
		wantGenerations(t, st, before)
		if _, err := st.GetBuild(ctx, "demo/web"); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("build demo/web was half-written: %v", err)
		}
	})
}

func TestStatusSkipsNoOps(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st := statetest.Start(t).Store
	if _, err := st.ApplyProject(ctx, demoProject("hi", "web"), state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := st.GetBuild(ctx, "demo/web")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.UnixMilli(time.Now().UnixMilli())

	t.Run("build status", func(t *testing.T) {
		s := api.BuildStatus{Name: "demo/web", Node: "node1", SpecUID: b.Meta.UID, ObservedGeneration: 1,
			Phase: api.BuildBuilding, Conditions: []api.Condition{{Type: "Ready", Status: "False", Reason: "Building", LastTransitionTime: t0}},
			UpdatedAt: t0}
		if err := st.PutBuildStatus(ctx, s); err != nil {
			t.Fatal(err)
		}
		s.UpdatedAt = t0.Add(time.Second)
		assertNoWrite(t, st, "an identical build status", func() {
			if err := st.PutBuildStatus(ctx, s); err != nil {
				t.Fatal(err)
			}
		})
		got, err := st.GetBuild(ctx, "demo/web")
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Status) != 1 || !got.Status[0].UpdatedAt.Equal(t0) || got.Status[0].Phase != api.BuildBuilding ||
			len(got.Status[0].Conditions) != 1 || got.Status[0].Conditions[0].Reason != "Building" {
			t.Fatalf("status = %+v, want the first write untouched", got.Status)
		}
		s.Phase, s.Digest = api.BuildSucceeded, "sha256:abc"
		assertWrote(t, st, "a changed build status", func() {
			if err := st.PutBuildStatus(ctx, s); err != nil {
				t.Fatal(err)
			}
		})
		got, _ = st.GetBuild(ctx, "demo/web")
		if cur, ok := got.Current(); !ok || cur.Phase != api.BuildSucceeded || cur.Digest != "sha256:abc" || !cur.UpdatedAt.Equal(s.UpdatedAt) {
			t.Errorf("Current() = %+v, %v", cur, ok)
		}
	})

	t.Run("presence", func(t *testing.T) {
		p := api.ImagePresence{Image: "demo/web", Node: "node2", SpecUID: "u", ObservedGeneration: 1,
			State: api.PresencePulling, UpdatedAt: t0}
		if err := st.PutPresence(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.UpdatedAt = t0.Add(time.Second)
		assertNoWrite(t, st, "an identical presence row", func() {
			if err := st.PutPresence(ctx, p); err != nil {
				t.Fatal(err)
			}
		})
		img, err := st.GetImage(ctx, "demo/web")
		if err != nil {
			t.Fatal(err)
		}
		if len(img.Presence) != 1 || !img.Presence[0].UpdatedAt.Equal(t0) {
			t.Fatalf("presence = %+v, want the first write untouched", img.Presence)
		}
		p.State, p.Digest = api.PresencePresent, "sha256:abc"
		assertWrote(t, st, "a changed presence row", func() {
			if err := st.PutPresence(ctx, p); err != nil {
				t.Fatal(err)
			}
		})
		img, _ = st.GetImage(ctx, "demo/web")
		if len(img.Presence) != 1 || img.Presence[0].State != api.PresencePresent || img.Presence[0].Digest != "sha256:abc" {
			t.Errorf("presence = %+v", img.Presence)
		}
	})
}

func TestBuildRecordCurrent(t *testing.T) {
	t.Parallel()
	t0 := time.UnixMilli(1_700_000_000_000)
	st := func(node, uid string, gen int64, at time.Duration) api.BuildStatus {
		return api.BuildStatus{Name: "p/s", Node: node, SpecUID: uid, ObservedGeneration: gen, UpdatedAt: t0.Add(at)}
	}
	for _, tc := range []struct {
		name   string
		status []api.BuildStatus
		want   string // node, or "" for none
	}{
		{"no status", nil, ""},
		{"only an earlier incarnation", []api.BuildStatus{st("a", "old", 9, 0)}, ""},
		{"highest generation of the current uid", []api.BuildStatus{
			st("a", "old", 9, 5*time.Second), st("b", "cur", 2, 3*time.Second), st("c", "cur", 3, 0)}, "c"},
		{"same generation: newest", []api.BuildStatus{st("a", "cur", 3, 0), st("b", "cur", 3, time.Second), st("c", "cur", 3, -time.Second)}, "b"},
		{"order does not matter", []api.BuildStatus{st("c", "cur", 3, 0), st("b", "cur", 2, 3*time.Second)}, "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := state.BuildRecord{Meta: state.SpecMeta{UID: "cur", Generation: 3}, Status: tc.status}
			got, ok := r.Current()
			if ok != (tc.want != "") || got.Node != tc.want {
				t.Errorf("Current() = %q, %v; want %q", got.Node, ok, tc.want)
			}
		})
	}
	// Through the store: statuses of several nodes and incarnations.
	ctx := testCtx(t)
	store := statetest.Start(t).Store
	if _, err := store.ApplyProject(ctx, demoProject("a", "web"), state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ApplyProject(ctx, demoProject("b", "web"), state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := store.GetBuild(ctx, "demo/web")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []api.BuildStatus{
		{Name: "demo/web", Node: "n1", SpecUID: "earlier", ObservedGeneration: 7, Phase: api.BuildSucceeded},
		{Name: "demo/web", Node: "n2", SpecUID: b.Meta.UID, ObservedGeneration: 1, Phase: api.BuildSucceeded},
		{Name: "demo/web", Node: "n3", SpecUID: b.Meta.UID, ObservedGeneration: 2, Phase: api.BuildBuilding},
	} {
		if err := store.PutBuildStatus(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	b, err = store.GetBuild(ctx, "demo/web")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Status) != 3 {
		t.Fatalf("status rows = %+v, want 3", b.Status)
	}
	if cur, ok := b.Current(); !ok || cur.Node != "n3" || cur.ObservedGeneration != 2 {
		t.Errorf("Current() = %+v, %v; want n3 at generation 2", cur, ok)
	}
}

// keys collects what a KeySource enqueues.
type keys struct {
	mu   sync.Mutex
	seen []string
	ch   chan struct{}
}

func (k *keys) enqueue(key string) {
	k.mu.Lock()
	k.seen = append(k.seen, key)
	k.mu.Unlock()
	select {
	case k.ch <- struct{}{}:
	default:
	}
}

func (k *keys) reset() {
	k.mu.Lock()
	k.seen = nil
	k.mu.Unlock()
}

// await waits until every wanted key was enqueued since the last reset.
func (k *keys) await(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		k.mu.Lock()
		got := slices.Clone(k.seen)
		k.mu.Unlock()
		if !slices.ContainsFunc(want, func(w string) bool { return !slices.Contains(got, w) }) {
			return
		}
		select {
		case <-k.ch:
		case <-deadline:
			t.Fatalf("enqueued %q, want all of %q", got, want)
		}
	}
}

func TestKeySource(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := startServer(t, state.Schema)
	st := srv.Store
	reg := func(name, zone string) {
		t.Helper()
		if err := st.RegisterNode(ctx, api.Node{Name: name, State: api.NodeReady, Labels: map[string]string{"zone": zone}}); err != nil {
			t.Fatal(err)
		}
	}
	reg("a", "eu")
	reg("b", "eu")

	k := &keys{ch: make(chan struct{}, 1)}
	watchCtx, stopWatch := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- st.KeySource(corrosion.Stmt("SELECT name, labels FROM nodes"), slog.New(slog.DiscardHandler))(watchCtx, k.enqueue)
	}()
	defer func() {
		stopWatch()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("KeySource returned %v, want context.Canceled", err)
		}
	}()

	k.await(t, "a", "b") // snapshot
	k.reset()
	reg("c", "eu")
	k.await(t, "c") // insert
	k.reset()
	reg("b", "us")
	k.await(t, "b") // update
	k.reset()
	if _, err := st.Client().Exec(ctx, corrosion.Stmt("DELETE FROM nodes WHERE name = 'a'")); err != nil {
		t.Fatal(err)
	}
	k.await(t, "a") // delete

	// The server restarts (its subscriptions are gone) and "c" is deleted
	// before it serves again: the re-list must enqueue "c" although no row
	// or change event names it.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	k.reset()
	err := srv.Restart(func(s *embedded.Server) {
		if _, _, err := s.DB().Transaction(ctx, []corrosion.Statement{corrosion.Stmt("DELETE FROM nodes WHERE name = 'c'")}); err != nil {
			t.Fatalf("delete c: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	k.await(t, "b", "c")
	k.mu.Lock()
	if slices.Contains(k.seen, "a") {
		t.Errorf("re-list enqueued %q, which was already deleted before the gap", k.seen)
	}
	k.mu.Unlock()

	// And changes keep flowing on the new subscription.
	k.reset()
	reg("d", "eu")
	k.await(t, "d")
}

// TestRefreshImages bumps only tagged external images, in one write, and a
// later unchanged apply keeps the refreshed generation.
func TestRefreshImages(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	st := statetest.Start(t).Store
	p := demoProject("hi", "web", "db")
	p.Images = append(p.Images, api.ImageSpec{Name: "demo/pinned", Project: "demo", Service: "pinned", Image: "busybox@sha256:" + strings.Repeat("a", 64)})
	if _, err := st.ApplyProject(ctx, p, state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	refreshed, skipped, err := st.RefreshImages(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(refreshed, []string{"demo/db"}) || !slices.Equal(skipped, []string{"demo/pinned", "demo/web"}) {
		t.Errorf("refreshed %v, skipped %v; want [demo/db], [demo/pinned demo/web]", refreshed, skipped)
	}
	want := map[string]int64{"build demo/web": 1, "image demo/db": 2, "image demo/pinned": 1, "image demo/web": 1}
	wantGenerations(t, st, want)

	if res, err := st.ApplyProject(ctx, p, state.ApplyOptions{}); err != nil || res.Wrote() {
		t.Fatalf("re-apply after a refresh: %v, wrote %v; want nothing written", err, res.Wrote())
	}
	wantGenerations(t, st, want)

	assertNoWrite(t, st, "a refresh naming an unknown image", func() {
		if _, _, err := st.RefreshImages(ctx, []string{"demo/db", "demo/nosuch"}); !errors.Is(err, state.ErrNotFound) || !strings.Contains(err.Error(), "demo/nosuch") {
			t.Errorf("refresh of an unknown image: %v, want not found naming it", err)
		}
	})
}
