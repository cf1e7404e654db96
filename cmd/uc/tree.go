package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ucplane/uc/state"
)

// treeNode is one build in `uc get builds --tree -o json|yaml`: the graph
// as data, each build with the builds it needs.
type treeNode struct {
	Name      string   `json:"name" yaml:"name"`
	Phase     string   `json:"phase" yaml:"phase"`
	Digest    string   `json:"digest,omitempty" yaml:"digest,omitempty"`
	Node      string   `json:"node,omitempty" yaml:"node,omitempty"`
	DependsOn []string `json:"depends_on,omitempty" yaml:"depends_on,omitempty"`
}

// buildGraph is the builds with their phases and edges, in name order.
func buildGraph(builds []state.BuildRecord) []treeNode {
	out := make([]treeNode, 0, len(builds))
	for _, b := range builds {
		n := treeNode{Name: b.Spec.Name, Phase: "pending", DependsOn: b.Spec.DependsOn()}
		if st, ok := b.Current(); ok {
			n.Phase, n.Digest, n.Node = st.Phase, st.Digest, st.Node
			if st.ObservedGeneration < b.Meta.Generation {
				n.Phase += fmt.Sprintf(" (gen %d)", st.ObservedGeneration)
			}
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b treeNode) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// treeTable draws the graph: each build under the first build it needs
// (its other parents named), roots first, as `tree` draws directories.
func treeTable(w io.Writer, graph []treeNode) {
	byName := map[string]treeNode{}
	children := map[string][]string{}
	for _, n := range graph {
		byName[n.Name] = n
	}
	var roots []string
	for _, n := range graph {
		parents := slices.DeleteFunc(slices.Clone(n.DependsOn), func(p string) bool { _, ok := byName[p]; return !ok })
		if len(parents) == 0 {
			roots = append(roots, n.Name)
			continue
		}
		children[parents[0]] = append(children[parents[0]], n.Name)
	}
	fmt.Fprintln(w, "NAME\tPHASE\tDIGEST\tBUILT ON\tALSO NEEDS")
	var draw func(name, indent, branch string)
	draw = func(name, indent, branch string) {
		n := byName[name]
		also := "-"
		if len(n.DependsOn) > 1 {
			also = strings.Join(n.DependsOn[1:], ",")
		}
		fmt.Fprintf(w, "%s%s%s\t%s\t%s\t%s\t%s\n", indent, branch, name, n.Phase, shortDigest(n.Digest), orDash(n.Node), also)
		next := indent
		switch branch {
		case "├─ ":
			next += "│  "
		case "└─ ":
			next += "   "
		}
		kids := children[name]
		for i, c := range kids {
			draw(c, next, map[bool]string{true: "└─ ", false: "├─ "}[i == len(kids)-1])
		}
	}
	for _, r := range roots {
		draw(r, "", "")
	}
}
