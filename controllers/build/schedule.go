package build

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/state"
)

// Scheduling: which node builds, how many at once, and cancelling a build
// whose spec moved on.

// runningBuild is a solve in progress, cancellable when its spec moves on.
type runningBuild struct {
	uid        string
	generation int64
	cancel     context.CancelCauseFunc
}

// errSuperseded cancels a build whose spec changed while it ran.
var errSuperseded = errors.New("superseded by a newer generation of the spec")

// cancelSuperseded cancels a running build when its spec changes or goes
// away; the key is then reconciled again and builds the new generation.
func (r *Reconciler) cancelSuperseded(specs reconcile.Source) reconcile.Source {
	return func(ctx context.Context, enqueue func(string)) error {
		return specs(ctx, func(name string) {
			r.mu.Lock()
			rb, ok := r.running[name]
			r.mu.Unlock()
			if ok {
				rec, err := r.read.GetBuild(ctx, name)
				if errors.Is(err, state.ErrNotFound) || (err == nil && (rec.Meta.UID != rb.uid || rec.Meta.Generation > rb.generation)) {
					rb.cancel(errSuperseded)
				}
			}
			enqueue(name)
		})
	}
}

// pickBuilder owns a build on a builder that matches its x-uc-builder
// selector, builds its platforms and allows its entitlements, preferring
// one that builds them all natively over one that emulates. When none
// does, one node still owns it to record why (refusal), so that the
// failure is visible instead of nobody acting: a builder, or, when no live
// node builds at all, any live node (every node runs this controller).
func pickBuilder(name string, nodes []api.Node, now time.Time, spec api.BuildSpec) (node string, refusal error, ok bool) {
	need := RequiredEntitlements(spec)
	matching := func(n api.Node) bool { return n.CanBuild() && spec.Builder.Matches(n) }
	building := func(n api.Node) bool { return matching(n) && n.BuildsFor(spec.Platforms) }
	eligible := func(n api.Node) bool { return building(n) && n.Allows(need) }
	native := func(n api.Node) bool { return eligible(n) && n.BuildsNatively(spec.Platforms) }
	if node, ok = api.PickOwner(name, nodes, now, native); ok {
		return node, nil, true
	}
	if node, ok = api.PickOwner(name, nodes, now, eligible); ok {
		return node, nil, true
	}
	if node, ok = api.PickOwner(name, nodes, now, api.Node.CanBuild); !ok {
		if node, ok = api.PickOwner(name, nodes, now, nil); !ok {
			return "", nil, false // no live node at all: nobody can say anything
		}
		return node, fmt.Errorf("no live node runs a builder (%s); start ucd run with --buildkit-addr, or --build-driver docker, on a node",
			offers(nodes, now, nil)), true
	}
	if _, any := api.PickOwner(name, nodes, now, matching); !any {
		return node, fmt.Errorf("no live builder node matches x-uc-builder %q (%s)", spec.Builder.String(),
			offers(nodes, now, api.Node.CanBuild)), true
	}
	if _, any := api.PickOwner(name, nodes, now, building); !any {
		hint := ""
		if len(spec.Platforms) > 1 {
			hint = "; a multi-platform build needs the buildkit driver"
		}
		return node, fmt.Errorf("no live builder node builds platforms %s (%s%s)", strings.Join(spec.Platforms, ","),
			offers(nodes, now, matching), hint), true
	}
	return node, fmt.Errorf("no live builder node allows entitlement %s (%s); start ucd on a builder with --allow-entitlement %s",
		strings.Join(need, ", "), offers(nodes, now, building), strings.Join(need, ",")), true
}

// offers says what each candidate node (every node, when candidate is
// nil) offers, for a refusal: "node2: docker driver, linux/amd64, labels
// zone=b, allows network.host"; an unready node says only that.
func offers(nodes []api.Node, now time.Time, candidate func(api.Node) bool) string {
	var out []string
	for _, n := range nodes {
		switch {
		case candidate != nil && !candidate(n):
		case !n.Live(now, api.LiveTimeout):
			out = append(out, n.Name+": "+n.Status(now, api.LiveTimeout))
		case !n.CanBuild():
			out = append(out, n.Name+": no builder")
		default:
			out = append(out, n.Name+": "+builderOffer(n))
		}
	}
	return cmp.Or(strings.Join(out, "; "), "no node")
}

func builderOffer(n api.Node) string {
	parts := []string{strings.Join(n.Capacity.Builders, ",") + " driver", cmp.Or(n.Capacity.PlatformList(), "platforms unknown")}
	if len(n.Labels) > 0 {
		var labels []string
		for _, k := range slices.Sorted(maps.Keys(n.Labels)) {
			labels = append(labels, k+"="+n.Labels[k])
		}
		parts = append(parts, "labels "+strings.Join(labels, ","))
	}
	parts = append(parts, "allows "+cmp.Or(strings.Join(n.Capacity.Entitlements, ","), "no entitlements"))
	return strings.Join(parts, ", ")
}

// acquireSlot waits for one of the node's build slots, recording "queued"
// while it waits so that a person sees why nothing happens.
func (r *Reconciler) acquireSlot(ctx context.Context, st api.BuildStatus) (func(), error) {
	release := func() { <-r.slots }
	select {
	case r.slots <- struct{}{}:
		return release, nil
	default:
	}
	queued := st
	queued.Phase = api.BuildQueued
	queued.Message = fmt.Sprintf("queued: %s runs %d builds at once", r.cfg.Node, cap(r.slots))
	r.progress(ctx, queued)
	select {
	case r.slots <- struct{}{}:
		return release, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *Reconciler) track(rec state.BuildRecord, cancel context.CancelCauseFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running[rec.Spec.Name] = runningBuild{uid: rec.Meta.UID, generation: rec.Meta.Generation, cancel: cancel}
}

func (r *Reconciler) untrack(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.running, name)
}
