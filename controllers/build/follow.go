package build

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
)

// Base images that move (x-uc-rebuild-on-base): the owner of a finished
// build that follows its bases resolves them once per interval, through
// its BuildKit as a build does, and rebuilds when one moved. The new
// digest then rebuilds the build's descendants through the graph. Bases
// a build does not follow are checked too, less often, and a move is only
// recorded in its status ("base debian:12 moved" in uc describe build).

// baseChecks remembers when each followed build's bases were last
// resolved, so that the events that reconcile a build between two checks
// cost nothing.
type baseChecks struct {
	at map[string]time.Time
}

// due reports whether a build's bases are due to be checked, and counts
// them checked if so. A build not seen since this node started counts as
// checked when its status was last written, so that a restarted ucd does
// not resolve every base of every build at once.
func (c *baseChecks) due(name string, every time.Duration, now, written time.Time) bool {
	if c.at == nil {
		c.at = map[string]time.Time{}
	}
	last, ok := c.at[name]
	if !ok {
		last = written
	}
	if now.Sub(last) < every {
		return false
	}
	c.at[name] = now
	return true
}

// baseInterval is how often a build's bases are checked: its
// x-uc-rebuild-on-base, else the node's BaseWatch (0: never).
func (r *Reconciler) baseInterval(spec api.BuildSpec) time.Duration {
	if every := spec.BaseFollowInterval(); every > 0 {
		return every
	}
	if r.cfg.BaseWatch < 0 {
		return 0
	}
	return cmp.Or(r.cfg.BaseWatch, DefaultBaseWatch)
}

// followBases rebuilds the build when a base it follows moved, and records
// the move in its status when it does not follow them; moved is false when
// there is nothing to write.
func (r *Reconciler) followBases(ctx context.Context, rec state.BuildRecord, inputs map[string]string) (st *api.BuildStatus, moved bool, err error) {
	every := r.baseInterval(rec.Spec)
	cur, ok := rec.Current()
	if every == 0 || !ok || cur.Phase != api.BuildSucceeded || len(cur.Detail.Bases) == 0 {
		return nil, false, nil
	}
	r.mu.Lock()
	due := r.followed.due(rec.Spec.Name, every, r.now(), cur.UpdatedAt)
	r.mu.Unlock()
	if !due {
		return nil, false, nil
	}
	bases, known := r.resolveBases(ctx, rec.Spec)
	changed := movedBases(cur.Detail.Bases, bases)
	if !known {
		return nil, false, nil
	}
	if rec.Spec.BaseFollowInterval() == 0 {
		return noteMovedBases(cur, changed, bases, r.now())
	}
	if len(changed) == 0 {
		return nil, false, nil
	}
	r.log.Info("A base image moved; rebuilding.", "build", rec.Spec.Name, "bases", changed)
	// Resolve bases in the solve too, not from what BuildKit cached.
	rec.Spec.Pull = true
	why := "base " + strings.Join(changed, ", ") + " moved to a new digest"
	st, err = r.build(ctx, rec, inputs, why+": rebuilding")
	if st != nil && st.Phase == api.BuildSucceeded {
		st.Message += "; " + why
	}
	return st, true, err
}

// noteMovedBases records the bases that moved under a build that does not
// follow them (and forgets ones that moved back); nothing when the status
// already says so.
func noteMovedBases(cur api.BuildStatus, changed []string, now map[string]string, at time.Time) (*api.BuildStatus, bool, error) {
	var moved map[string]string // nil when none moved: the row then has no field
	if len(changed) > 0 {
		moved = map[string]string{}
	}
	for _, name := range changed {
		moved[name] = now[name]
	}
	if maps.Equal(moved, cur.Detail.MovedBases) {
		return nil, false, nil
	}
	st := cur
	st.Detail.MovedBases, st.UpdatedAt = moved, at
	return &st, true, nil
}

// movedBases names the bases whose digest differs from the one built on.
func movedBases(built, now map[string]string) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(now)) {
		if was, ok := built[name]; ok && was != now[name] {
			out = append(out, name)
		}
	}
	return out
}
