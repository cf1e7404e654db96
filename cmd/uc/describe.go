package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
)

func newDescribeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "describe build|image|sync NAME",
		Short: "Show one build, image or sync in detail, with every node's status",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.store()
			if err != nil {
				return err
			}
			v := view{cmd: cmd, store: store, output: "table", now: time.Now()}
			return explain(v.describe(args[0], args[1]))
		},
	}
}

func (v view) describe(kind, name string) error {
	ctx := v.cmd.Context()
	w := tabwriter.NewWriter(v.cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	defer w.Flush()
	switch kind {
	case state.KindBuild:
		b, err := v.store.GetBuild(ctx, name)
		if err != nil {
			return notFound(err, kind, name)
		}
		v.describeBuild(w, b)
		return nil
	case state.KindImage:
		img, err := v.store.GetImage(ctx, name)
		if err != nil {
			return notFound(err, kind, name)
		}
		nodes, err := v.store.ListNodes(ctx)
		if err != nil {
			return err
		}
		v.describeImage(w, img, nodes)
		return nil
	case "sync":
		s, err := v.store.GetSync(ctx, name)
		if err != nil {
			return notFound(err, kind, name)
		}
		v.describeSync(w, s)
		return nil
	}
	return fmt.Errorf("unknown kind %q: want build, image or sync", kind)
}

func notFound(err error, kind, name string) error {
	if errors.Is(err, state.ErrNotFound) {
		return fmt.Errorf("%s %q not found (see `uc get %ss`)", kind, name, kind)
	}
	return err
}

func (v view) describeBuild(w io.Writer, b state.BuildRecord) {
	s := b.Spec
	field(w, "Name", s.Name)
	field(w, "Project", s.Project)
	field(w, "Image", s.Image)
	field(w, "Context", s.Context)
	field(w, "Dockerfile", s.Dockerfile)
	field(w, "Target", s.Target)
	field(w, "Args", kvString(s.Args))
	field(w, "Labels", kvString(s.Labels))
	if s.CacheScope != "" {
		trust := "reads the shared cache, writes its own"
		if s.CacheScopeTrusted {
			trust = "trusted: writes the shared cache"
		}
		field(w, "Cache scope", s.CacheScope+" ("+trust+")")
	}
	if s.RebuildOnBase != "" {
		field(w, "Follows bases", "every "+s.RebuildOnBase)
	}
	v.buildOptions(w, s)
	field(w, "Generation", fmt.Sprintf("%d (uid %s, updated %s ago)", b.Meta.Generation, b.Meta.UID, v.ago(b.Meta.UpdatedAt)))
	if len(b.Status) == 0 {
		nodes, _ := v.store.ListNodes(v.cmd.Context())
		field(w, "Status", "no node has reported yet"+noLiveNode(nodes, v.now))
		return
	}
	fmt.Fprintln(w, "Status:")
	fmt.Fprintln(w, "  NODE\tPHASE\tOBSERVED GEN\tDIGEST\tUPDATED\tMESSAGE")
	for _, st := range b.Status {
		stale := ""
		if st.SpecUID != b.Meta.UID {
			stale = " (earlier incarnation)"
		}
		msg := st.Message
		if st.Detail.Part != "" {
			msg = "part " + st.Detail.Part + ": " + msg
		}
		fmt.Fprintf(w, "  %s\t%s\t%d%s\t%s\t%s\t%s\n", st.Node, st.Phase, st.ObservedGeneration, stale,
			orDash(st.Digest), v.ago(st.UpdatedAt), msg)
	}
	if cur, ok := b.Current(); ok {
		v.buildDetail(w, cur.Detail)
		v.conditions(w, cur.Conditions)
	}
}

func (v view) buildDetail(w io.Writer, d api.BuildDetail) {
	field(w, "Ref", d.Ref)
	field(w, "Commit", d.Commit)
	if !d.StartedAt.IsZero() {
		field(w, "Started", v.ago(d.StartedAt)+" ago")
	}
	if !d.FinishedAt.IsZero() {
		field(w, "Duration", d.FinishedAt.Sub(d.StartedAt).Round(10*time.Millisecond).String())
	}
	if d.StepsTotal > 0 {
		field(w, "Steps", fmt.Sprintf("%d/%d", d.StepsDone, d.StepsTotal))
		field(w, "Cache hits", fmt.Sprintf("%d/%d steps (%d%%)", d.StepsCached, d.StepsTotal, 100*d.StepsCached/d.StepsTotal))
	}
	field(w, "Driver", d.Driver)
	if d.Part != "" {
		field(w, "Part", d.Part+" (of a build another node merges)")
	}
	if len(d.Parts) > 0 {
		field(w, "Built on", kvString(d.Parts))
	}
	field(w, "Restored from", d.RestoredFrom)
	if d.Key != "" {
		key := d.Key[:16]
		if d.Reused {
			key += " (reused)"
		}
		field(w, "Build key", key)
	}
	field(w, "Base images", kvString(d.Bases))
	for _, name := range slices.Sorted(maps.Keys(d.MovedBases)) {
		field(w, "Warning", fmt.Sprintf("base %s moved (now %s); this build does not follow it "+
			"(x-uc-rebuild-on-base rebuilds on a move)", name, shortDigest(d.MovedBases[name])))
	}
	field(w, "Inputs", kvString(d.Inputs))
	for _, target := range slices.Sorted(maps.Keys(d.Pushed)) {
		p := d.Pushed[target]
		line := fmt.Sprintf("%s %s %s (%s ago)", target, p.State, shortDigest(p.Digest), v.ago(p.At))
		if p.Error != "" {
			line += ": " + p.Error
		}
		field(w, "Pushed", line)
	}
	if len(d.LogTail) > 0 {
		fmt.Fprintln(w, "Log (last lines):")
		for _, l := range d.LogTail {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}

func (v view) conditions(w io.Writer, conds []api.Condition) {
	if len(conds) == 0 {
		return
	}
	fmt.Fprintln(w, "Conditions:")
	fmt.Fprintln(w, "  TYPE\tSTATUS\tREASON\tSINCE\tMESSAGE")
	for _, c := range conds {
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, v.ago(c.LastTransitionTime), c.Message)
	}
}

func (v view) describeImage(w io.Writer, img state.ImageRecord, nodes []api.Node) {
	field(w, "Name", img.Spec.Name)
	field(w, "Project", img.Spec.Project)
	field(w, "Source", imageSource(img.Spec))
	field(w, "Placement", placementString(img.Spec.Placement))
	field(w, "Generation", fmt.Sprintf("%d (uid %s, updated %s ago)", img.Meta.Generation, img.Meta.UID, v.ago(img.Meta.UpdatedAt)))
	need := needOf(img.Spec, nodes, v.now, false)
	needed := api.Waited(need)
	present := 0
	if want, ready, err := v.wanted(img); err == nil && ready {
		present, _ = presentOn(img, needed, want)
		field(w, "Digest", want)
	}
	if img.Spec.RefreshEvery != "" {
		field(w, "Refresh", "every "+img.Spec.RefreshEvery)
	}
	if res, ok, err := v.store.Resolution(v.cmd.Context(), img.Spec.Name, img.Meta.UID, img.Meta.Generation); err == nil && ok {
		field(w, "Resolved", fmt.Sprintf("%s by %s, last checked %s ago", res.Ref, res.Node, v.ago(res.UpdatedAt)))
	}
	field(w, "Present", fmt.Sprintf("%d/%d needed nodes", present, len(needed)))
	fmt.Fprintln(w, "Nodes:")
	fmt.Fprintln(w, "  NODE\tSTATE\tDIGEST\tLAYERS\tBYTES\tATTEMPTS\tTOOK\tUPDATED\tERROR")
	for _, name := range needed {
		p, ok := findPresence(img, name)
		if !ok {
			fmt.Fprintf(w, "  %s\t%s\t-\t-\t-\t-\t-\t-\t\n", name, "not reported")
			continue
		}
		v.presenceRow(w, p, nodes)
	}
	for _, p := range img.Presence {
		if p.SpecUID == img.Meta.UID && !slices.Contains(needed, p.Node) {
			v.presenceRow(w, p, nodes)
		}
	}
	for _, n := range need {
		if n.Note != "" {
			fmt.Fprintf(w, "  note:\t%s\n", n.Note)
		}
	}
}

func (v view) presenceRow(w io.Writer, p api.ImagePresence, nodes []api.Node) {
	d := p.Detail
	fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", p.Node, v.presenceState(p, nodes), orDash(p.Digest),
		orDash(strings.TrimSuffix(layerProgress(d), " layers")), orDash(byteProgress(d)),
		d.Attempts, d.Duration.Round(time.Millisecond), v.ago(p.UpdatedAt), p.Error)
}

// presenceState marks the row of a node that stopped heartbeating or left
// stale: only that node writes its row, so nobody else deletes or
// corrects it.
func (v view) presenceState(p api.ImagePresence, nodes []api.Node) string {
	for _, n := range nodes {
		switch {
		case n.Name != p.Node:
		case n.State == api.NodeGone:
			return p.State + " (stale: node left)"
		case !n.Live(v.now, api.LiveTimeout):
			return p.State + " (stale: node silent)"
		}
	}
	return p.State
}

func findPresence(img state.ImageRecord, node string) (api.ImagePresence, bool) {
	for _, p := range img.Presence {
		if p.Node == node && p.SpecUID == img.Meta.UID {
			return p, true
		}
	}
	return api.ImagePresence{}, false
}

func field(w io.Writer, name, value string) {
	fmt.Fprintf(w, "%s:\t%s\n", name, orDash(value))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func kvString(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, " ")
}

// buildOptions shows the build attributes that are set, and only those.
func (v view) buildOptions(w io.Writer, s api.BuildSpec) {
	opt := func(name, value string) {
		if value != "" && value != "false" && value != "0" {
			field(w, name, value)
		}
	}
	switch {
	case s.Static != nil:
		st := s.Static
		opt("Build type", fmt.Sprintf("static: %s runs %q, %s serves %s/ from %s", st.Builder, st.Command, st.Server, st.Output, st.Root))
		field(w, "Dockerfile", "generated:")
		for _, line := range strings.Split(strings.TrimRight(s.DockerfileInline, "\n"), "\n") {
			fmt.Fprintf(w, "    %s\n", line)
		}
	case s.DockerfileInline != "":
		opt("Dockerfile inline", fmt.Sprintf("%d lines", strings.Count(strings.TrimRight(s.DockerfileInline, "\n"), "\n")+1))
	}
	opt("Tags", strings.Join(s.Tags, " "))
	opt("No cache", fmt.Sprint(s.NoCache))
	opt("No cache for", strings.Join(s.NoCacheFilter, " "))
	opt("Pull", fmt.Sprint(s.Pull))
	opt("Extra hosts", strings.Join(s.ExtraHosts, " "))
	opt("Shm size", fmt.Sprint(s.ShmSize))
	opt("Ulimits", strings.Join(s.Ulimits, " "))
	opt("Network", s.Network)
	opt("Platforms", strings.Join(s.Platforms, " "))
	opt("Entitlements", strings.Join(s.Entitlements, " "))
	opt("Cache from", strings.Join(s.CacheFrom, " "))
	opt("Cache to", strings.Join(s.CacheTo, " "))
	var refs []string
	for _, r := range s.Secrets {
		refs = append(refs, r.ID+"="+cmp.Or(r.File, "env:"+r.Env)) // references only, never values
	}
	opt("Secrets", strings.Join(refs, " "))
	refs = refs[:0]
	for _, r := range s.SSH {
		refs = append(refs, strings.Join(append([]string{r.ID}, r.Paths...), "="))
	}
	opt("SSH", strings.Join(refs, " "))
	opt("Provenance", s.Provenance)
	opt("SBOM", s.SBOM)
	opt("Context digest", s.ContextDigest)
	if s.Follows() {
		_, ref, _ := api.SplitGitContext(s.Context)
		opt("Follows", fmt.Sprintf("branch %s, resolved every %s (uc refresh builds %s: now)", cmp.Or(ref, "HEAD"), s.Follow, s.Name))
	}
	opt("Git credential", s.GitCredential)
	opt("Push to", strings.Join(s.Push, " "))
	opt("Push credential", s.PushCredential)
}
