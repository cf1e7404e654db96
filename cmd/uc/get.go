package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
)

func newGetCmd(g *globals) *cobra.Command {
	var output string
	var tree bool
	cmd := &cobra.Command{
		Use:       "get nodes|builds|images|syncs [NAME] [--tree]",
		Short:     "List nodes, builds, images or syncs with their status",
		Args:      cobra.RangeArgs(1, 2),
		ValidArgs: []string{"nodes", "builds", "images", "syncs"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" && output != "yaml" {
				return fmt.Errorf("-o %s: want table, json or yaml", output)
			}
			name := ""
			if len(args) == 2 {
				name = args[1]
			}
			store, err := g.store()
			if err != nil {
				return err
			}
			if tree && strings.TrimSuffix(args[0], "s") != "build" {
				return fmt.Errorf("--tree draws the build graph: use it with uc get builds")
			}
			v := view{cmd: cmd, store: store, output: output, now: time.Now(), tree: tree}
			return explain(v.get(args[0], name))
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	cmd.Flags().BoolVar(&tree, "tree", false, "builds: draw the build graph (with NAME, that build's project), each build with its phase; -o json or yaml gives the graph as data")
	return cmd
}

// view renders state for a person (table) or a program (json, yaml).
type view struct {
	cmd    *cobra.Command
	store  *state.Store
	output string
	now    time.Time
	tree   bool // builds as their graph
}

func (v view) get(kind, name string) error {
	ctx := v.cmd.Context()
	switch strings.TrimSuffix(kind, "s") {
	case "node":
		nodes, err := v.store.ListNodes(ctx)
		if err != nil {
			return err
		}
		nodes = slices.DeleteFunc(nodes, func(n api.Node) bool { return name != "" && n.Name != name })
		if err := missing("node", name, len(nodes)); err != nil {
			return err
		}
		return v.render(nodes, func(w io.Writer) { v.nodesTable(w, nodes) })
	case "build":
		builds, err := v.store.ListBuilds(ctx, name)
		if err != nil {
			return err
		}
		if err := missing("build", name, len(builds)); err != nil {
			return err
		}
		if v.tree {
			return v.buildTree(name)
		}
		return v.render(builds, func(w io.Writer) { v.buildsTable(w, builds) })
	case "image":
		images, err := v.store.ListImages(ctx, name)
		if err != nil {
			return err
		}
		if err := missing("image", name, len(images)); err != nil {
			return err
		}
		nodes, err := v.store.ListNodes(ctx)
		if err != nil {
			return err
		}
		return v.render(images, func(w io.Writer) { v.imagesTable(w, images, nodes) })
	case "sync":
		syncs, err := v.store.ListSyncs(ctx, name)
		if err != nil {
			return err
		}
		if err := missing("sync", name, len(syncs)); err != nil {
			return err
		}
		return v.render(syncs, func(w io.Writer) { v.syncsTable(w, syncs) })
	}
	return fmt.Errorf("unknown kind %q: want nodes, builds, images or syncs", kind)
}

// buildTree renders every build, or those of name's project, as a graph.
func (v view) buildTree(name string) error {
	builds, err := v.store.ListBuilds(v.cmd.Context(), "")
	if err != nil {
		return err
	}
	if project, _, ok := strings.Cut(name, "/"); ok {
		builds = slices.DeleteFunc(builds, func(b state.BuildRecord) bool { return b.Spec.Project != project })
	}
	graph := buildGraph(builds)
	return v.render(graph, func(w io.Writer) { treeTable(w, graph) })
}

// missing fails `uc get KIND NAME` when there is no such NAME, as kubectl
// does, rather than print an empty table.
func missing(kind, name string, found int) error {
	if name != "" && found == 0 {
		return notFound(state.ErrNotFound, kind, name)
	}
	return nil
}

func (v view) render(data any, table func(io.Writer)) error {
	out := v.cmd.OutOrStdout()
	switch v.output {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(data)
	case "yaml":
		return yaml.NewEncoder(out).Encode(data)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	table(w)
	return w.Flush()
}

func (v view) nodesTable(w io.Writer, nodes []api.Node) {
	fmt.Fprintln(w, "NAME\tSTATUS\tLABELS\tBUILDER\tVERSION\tAGE\tLAST HEARTBEAT")
	for _, n := range nodes {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, v.nodeStatus(n), labelString(n.Labels),
			builderString(n.Capacity), n.Version, v.ago(n.StartedAt), v.ago(n.HeartbeatAt))
	}
}

// builderString is a node's drivers and the platforms they build for.
func builderString(c api.NodeCapacity) string {
	if len(c.Builders) == 0 {
		return "-"
	}
	return strings.Join(c.Builders, ",") + "(" + cmp.Or(c.PlatformList(), "platforms-unknown") + ")"
}

func (v view) nodeStatus(n api.Node) string { return n.Status(v.now, api.LiveTimeout) }

func (v view) buildsTable(w io.Writer, builds []state.BuildRecord) {
	fmt.Fprintln(w, "NAME\tIMAGE\tGEN\tPHASE\tDIGEST\tBUILT ON\tAGE\tMESSAGE")
	for _, b := range builds {
		phase, digest, node, msg := "pending", "-", "-", ""
		if st, ok := b.Current(); ok {
			phase, digest, node, msg = st.Phase, shortDigest(st.Digest), st.Node, st.Message
			if st.ObservedGeneration < b.Meta.Generation {
				phase += " (gen " + fmt.Sprint(st.ObservedGeneration) + ")"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", b.Spec.Name, b.Spec.Image, b.Meta.Generation,
			phase, digest, node, v.ago(b.Meta.UpdatedAt), oneLine(msg, 60))
	}
}

func (v view) imagesTable(w io.Writer, images []state.ImageRecord, nodes []api.Node) {
	fmt.Fprintln(w, "NAME\tSOURCE\tDIGEST\tPRESENT\tSTATUS\tPLACEMENT\tAGE")
	for _, img := range images {
		need := needOf(img.Spec, nodes, v.now, false)
		needed := api.Waited(need)
		present, digest, want := 0, "-", ""
		if d, ready, err := v.wanted(img); err == nil && ready {
			want = d
			present, _ = presentOn(img, needed, want)
			digest = shortDigest(want) // known even while no node holds it
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", img.Spec.Name, imageSource(img.Spec), digest,
			present, len(needed), lagStatus(img, need, want), placementString(img.Spec.Placement), v.ago(img.Meta.UpdatedAt))
	}
}

// lagStatus counts the waited-for nodes without the wanted digest by their
// row's state, e.g. "pulling:1,retrying:1", an unready one by its node's
// state ("NotReady:1"), and the placed nodes not waited for, e.g.
// "skipped(NotReady):1"; "-" when none lags and none is skipped.
func lagStatus(img state.ImageRecord, need []api.NodeNeed, want string) string {
	counts := map[string]int{}
	for _, n := range need {
		p, ok := findPresence(img, n.Node)
		switch {
		case !n.Wait:
			counts["skipped("+n.State+")"]++
		case ok && p.State == api.PresencePresent && want != "" && p.Digest == want:
		case n.State != api.StatusReady:
			counts[n.State]++
		case !ok:
			counts["unreported"]++
		case p.State != api.PresencePresent:
			counts[p.State]++
		default:
			counts["outdated"]++ // holds an older digest, the new one is not known or not pulled yet
		}
	}
	var parts []string
	for _, st := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s:%d", st, counts[st]))
	}
	return cmp.Or(strings.Join(parts, ","), "-")
}

// needOf is which nodes need an image, by the one rule
// (api.ImageSpec.Need) at the live timeout every controller uses.
func needOf(spec api.ImageSpec, nodes []api.Node, now time.Time, skipUnready bool) []api.NodeNeed {
	return spec.Need(nodes, api.NeedOptions{Now: now, LiveTimeout: api.LiveTimeout, SkipUnready: skipUnready})
}

// presentOn counts needed nodes whose presence row for this incarnation of
// the spec says present with the wanted digest ("" accepts any).
func presentOn(img state.ImageRecord, needed []string, want string) (int, string) {
	count, digest := 0, "-"
	for _, p := range img.Presence {
		if p.SpecUID == img.Meta.UID && p.State == api.PresencePresent && slices.Contains(needed, p.Node) &&
			(want == "" || p.Digest == want) {
			count++
			digest = shortDigest(p.Digest)
		}
	}
	return count, digest
}

// wanted is presentOn's digest filter for an image, and whether anything
// can count as present yet.
func (v view) wanted(img state.ImageRecord) (string, bool, error) {
	return v.store.WantedDigest(v.cmd.Context(), img)
}

func imageSource(s api.ImageSpec) string {
	if s.Build != "" {
		return "build:" + s.Build
	}
	return s.Image
}

func placementString(p api.Placement) string {
	var parts []string
	if len(p.Nodes) > 0 {
		parts = append(parts, "nodes="+strings.Join(p.Nodes, ","))
	}
	for _, c := range p.Constraints {
		parts = append(parts, c.String())
	}
	if len(parts) == 0 {
		return "all nodes"
	}
	return strings.Join(parts, "; ")
}

func labelString(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if d == "" {
		return "-"
	}
	return d[:min(12, len(d))]
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

func (v view) ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := v.now.Sub(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
