package main

import (
	"bytes"
	"slices"
	"testing"
	"text/tabwriter"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
)

func TestTreeTable(t *testing.T) {
	t.Parallel()
	rec := func(name, phase string, deps ...string) state.BuildRecord {
		ctx := map[string]string{}
		for _, d := range deps {
			ctx[d] = api.ServiceContextPrefix + d
		}
		r := state.BuildRecord{Spec: api.BuildSpec{Name: name, AdditionalContexts: ctx}, Meta: state.SpecMeta{UID: "u", Generation: 1}}
		if phase != "" {
			r.Status = []api.BuildStatus{{Name: name, Node: "n1", SpecUID: "u", Phase: phase, ObservedGeneration: 1, Digest: "sha256:abcdef0123456789"}}
		}
		return r
	}
	graph := buildGraph([]state.BuildRecord{
		rec("s/leaf", "", "s/v1", "s/v2"),
		rec("s/base", api.BuildSucceeded),
		rec("s/v1", api.BuildBuilding, "s/base"),
		rec("s/v2", api.BuildSucceeded, "s/base"),
		rec("s/other", api.BuildFailed),
	})
	var buf bytes.Buffer
	w := tabwriter.NewWriter(&buf, 0, 4, 1, ' ', 0)
	treeTable(w, graph)
	w.Flush()
	want := `NAME         PHASE     DIGEST       BUILT ON ALSO NEEDS
s/base       succeeded abcdef012345 n1       -
├─ s/v1      building  abcdef012345 n1       -
│  └─ s/leaf pending   -            -        s/v2
└─ s/v2      succeeded abcdef012345 n1       -
s/other      failed    abcdef012345 n1       -
`
	if got := buf.String(); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
	if leaf := graph[slices.IndexFunc(graph, func(n treeNode) bool { return n.Name == "s/leaf" })]; !slices.Equal(leaf.DependsOn, []string{"s/v1", "s/v2"}) {
		t.Errorf("graph data for s/leaf: %+v", leaf)
	}
}
