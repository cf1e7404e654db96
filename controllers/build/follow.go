package build

import (
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
// digest then rebuilds the build's descendants through the graph.

// baseChecks remembers when each followed build's bases were last
// resolved, so that the events that reconcile a build between two checks
// cost nothing.
type baseChecks struct {
	at map[string]time.Time
}

func (c *baseChecks) due(name string, every time.Duration, now time.Time) bool {
	if c.at == nil {
		c.at = map[string]time.Time{}
	}
	if last, ok := c.at[name]; ok && now.Sub(last) < every {
		return false
	}
	c.at[name] = now
	return true
}

// followBases rebuilds the build when a base it follows moved; moved is
// false when nothing was started.
func (r *Reconciler) followBases(ctx context.Context, rec state.BuildRecord, inputs map[string]string) (st *api.BuildStatus, moved bool, err error) {
	every := rec.Spec.BaseFollowInterval()
	cur, ok := rec.Current()
	if every == 0 || !ok || cur.Phase != api.BuildSucceeded {
		return nil, false, nil
	}
	r.mu.Lock()
	due := r.followed.due(rec.Spec.Name, every, r.now())
	r.mu.Unlock()
	if !due {
		return nil, false, nil
	}
	bases, known := r.resolveBases(ctx, rec.Spec)
	changed := movedBases(cur.Detail.Bases, bases)
	if !known || len(changed) == 0 {
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
