package api

import (
	"fmt"
	"slices"
	"time"
)

// Node readiness as people read it (uc get nodes).
const (
	StatusReady    = "Ready"
	StatusNotReady = "NotReady"
	StatusGone     = "Gone"
)

// Status is the node's readiness: Gone after a clean shutdown, NotReady
// when its heartbeat is older than timeout, else Ready.
func (n Node) Status(now time.Time, timeout time.Duration) string {
	switch {
	case n.State == NodeGone:
		return StatusGone
	case n.Live(now, timeout):
		return StatusReady
	}
	return StatusNotReady
}

// Unready says why a node is not live and since when, e.g. "node3 is
// NotReady since 17:02:11 (last heartbeat 40s ago)"; "" when it is live.
func (n Node) Unready(now time.Time, timeout time.Duration) string {
	last := "never heartbeated"
	if !n.HeartbeatAt.IsZero() {
		last = "last heartbeat " + now.Sub(n.HeartbeatAt).Round(time.Second).String() + " ago"
	}
	switch n.Status(now, timeout) {
	case StatusGone:
		return fmt.Sprintf("%s is Gone: it shut down (%s)", n.Name, last)
	case StatusNotReady:
		return fmt.Sprintf("%s is NotReady since %s (%s)", n.Name, clock(n.HeartbeatAt.Add(timeout), now), last)
	}
	return ""
}

// clock prints t as a time of day, with the date when it is not today's.
func clock(t, now time.Time) string {
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format(time.TimeOnly)
	}
	return t.Format(time.DateTime)
}

// NeedOptions say how ImageSpec.Need treats nodes that are not live.
type NeedOptions struct {
	Now         time.Time
	LiveTimeout time.Duration
	// SkipUnready leaves out unready nodes that the spec names explicitly
	// too; unready nodes it selects only by labels or "all nodes" are
	// always left out.
	SkipUnready bool
}

// NodeNeed is whether one node the image is placed on must hold it.
type NodeNeed struct {
	Node string `json:"node" yaml:"node"`
	// Wait says the node must hold the image before it counts as present.
	Wait bool `json:"wait" yaml:"wait"`
	// State is the node's readiness (StatusReady, …), StatusNoEngine, or
	// StatusUnknown for a named node that never joined.
	State string `json:"state" yaml:"state"`
	// Note says why a node is left out, or why a waited-for node may not
	// come ("node3 is NotReady since …"); "" for a live node with an engine.
	Note string `json:"note,omitempty" yaml:"note,omitempty"`
}

// More node states, for NodeNeed only.
const (
	StatusNoEngine = "NoEngine"
	StatusUnknown  = "Unknown"
)

// Need lists, for every node the image is placed on, whether it must
// hold the image. It is the one rule for "which nodes need this image":
// the pre-pull controllers, `uc get`, `uc describe` and `uc wait` all use
// it (a node deciding for itself uses Places, the same rule without
// liveness). A node without an engine never pulls, so it is never waited
// for. An unready node is waited for only when the spec names it
// (x-machines, node.hostname ==) and SkipUnready is off: a node chosen by
// name is the point of the spec, one chosen by labels could not run the
// image anyway.
func (s ImageSpec) Need(nodes []Node, o NeedOptions) []NodeNeed {
	named := s.Placement.NodeNames()
	var out []NodeNeed
	for _, n := range nodes {
		if !s.Placement.Matches(n) {
			continue
		}
		nn := NodeNeed{Node: n.Name, State: n.Status(o.Now, o.LiveTimeout)}
		explicit := slices.Contains(named, n.Name)
		switch {
		case !s.Places(n):
			nn.State, nn.Note = StatusNoEngine, n.Name+" has no Docker Engine to pull with: not waited for"
		case nn.State == StatusReady:
			nn.Wait = true
		case explicit && !o.SkipUnready:
			nn.Wait, nn.Note = true, n.Unready(o.Now, o.LiveTimeout)+": waiting for it (--skip-unready leaves it out)"
		default:
			nn.Note = n.Unready(o.Now, o.LiveTimeout) + ": not waited for"
		}
		out = append(out, nn)
	}
	for _, name := range named {
		if slices.ContainsFunc(nodes, func(n Node) bool { return n.Name == name }) || !s.Placement.admitsName(name) {
			continue
		}
		nn := NodeNeed{Node: name, State: StatusUnknown, Wait: !o.SkipUnready, Note: name + " has never joined the cluster: not waited for"}
		if nn.Wait {
			nn.Note = name + " has never joined the cluster: waiting for it (--skip-unready leaves it out)"
		}
		out = append(out, nn)
	}
	return out
}

// admitsName reports whether a node of this name may match, whatever its
// labels: for a named node that never joined, whose labels are unknown.
func (p Placement) admitsName(name string) bool {
	if len(p.Nodes) > 0 && !slices.Contains(p.Nodes, name) {
		return false
	}
	for _, c := range p.Constraints {
		if c.Key == KeyHostname && !c.Matches(Node{Name: name}) {
			return false
		}
	}
	return true
}

// Places reports whether node n pulls the image: it has an engine and the
// placement selects it. A node asks this about itself; Need asks it about
// every node and adds liveness.
func (s ImageSpec) Places(n Node) bool {
	return n.Capacity.Engine && s.Placement.Matches(n)
}

// Waited lists the nodes that must hold the image.
func Waited(need []NodeNeed) []string {
	var out []string
	for _, n := range need {
		if n.Wait {
			out = append(out, n.Node)
		}
	}
	return out
}
