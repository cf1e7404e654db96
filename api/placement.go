package api

import (
	"fmt"
	"slices"
	"strings"
)

// Constraint keys and operators; the subset of Swarm's syntax that makes
// sense for nodes that only pull images.
const (
	KeyHostname    = "node.hostname"
	KeyLabelPrefix = "node.labels."
	OpEq           = "=="
	OpNe           = "!="
)

// ParseConstraint parses a Swarm-style constraint such as
// "node.labels.zone==eu" or "node.hostname != node3".
func ParseConstraint(expr string) (Constraint, error) {
	for _, op := range []string{OpEq, OpNe} {
		k, v, ok := strings.Cut(expr, op)
		if !ok {
			continue
		}
		c := Constraint{Key: strings.TrimSpace(k), Op: op, Value: strings.TrimSpace(v)}
		if c.Validate() == nil {
			return c, nil
		}
		break
	}
	return Constraint{}, fmt.Errorf("unsupported constraint %q (want node.hostname or node.labels.<name> with == or !=)", expr)
}

// Validate checks the key, operator and value. An empty value is refused
// because Swarm rejects it too, so such a file would not deploy anyway.
func (c Constraint) Validate() error {
	label, isLabel := strings.CutPrefix(c.Key, KeyLabelPrefix)
	switch {
	case c.Key != KeyHostname && (!isLabel || label == ""):
		return fmt.Errorf("constraint key %q: want node.hostname or node.labels.<name>", c.Key)
	case c.Op != OpEq && c.Op != OpNe:
		return fmt.Errorf("constraint %q: operator %q: want == or !=", c.Key, c.Op)
	case c.Value == "" || strings.ContainsAny(c.Value, "=!"):
		return fmt.Errorf("constraint %q: invalid value %q", c.Key, c.Value)
	}
	return nil
}

// String renders the constraint in Swarm syntax.
func (c Constraint) String() string { return c.Key + " " + c.Op + " " + c.Value }

// Matches reports whether a constraint holds on n. Invalid constraints never
// hold, so a bad spec selects no node rather than every node.
func (c Constraint) Matches(n Node) bool {
	var actual string
	switch label, ok := strings.CutPrefix(c.Key, KeyLabelPrefix); {
	case c.Key == KeyHostname:
		actual = n.Name
	case ok && label != "":
		actual = n.Labels[label] // a missing label reads as ""
	default:
		return false
	}
	switch c.Op {
	case OpEq:
		return actual == c.Value
	case OpNe:
		return actual != c.Value
	}
	return false
}

// Validate checks every constraint and that named nodes are non-empty.
func (p Placement) Validate() error {
	for _, n := range p.Nodes {
		if strings.TrimSpace(n) == "" {
			return fmt.Errorf("placement: empty node name")
		}
	}
	for _, c := range p.Constraints {
		if err := c.Validate(); err != nil {
			return fmt.Errorf("placement: %w", err)
		}
	}
	return nil
}

// Matches reports whether n is selected: it must be listed in Nodes (when
// Nodes is non-empty) and satisfy every constraint.
func (p Placement) Matches(n Node) bool {
	if len(p.Nodes) > 0 && !slices.Contains(p.Nodes, n.Name) {
		return false
	}
	for _, c := range p.Constraints {
		if !c.Matches(n) {
			return false
		}
	}
	return true
}

// NodeNames lists the nodes the placement names explicitly (Nodes and
// `node.hostname ==` values), without duplicates, so callers can warn about
// typos or nodes that never joined.
func (p Placement) NodeNames() []string {
	var names []string
	add := func(n string) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, n := range p.Nodes {
		add(n)
	}
	for _, c := range p.Constraints {
		if c.Key == KeyHostname && c.Op == OpEq {
			add(c.Value)
		}
	}
	return names
}
