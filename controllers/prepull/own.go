package prepull

import (
	"context"
	"sync"
	"time"

	"github.com/ucplane/uc/api"
)

// ownWriteTTL is how long this node trusts its memory of a row it wrote
// over the cache. Its own writes come back through its subscription within
// milliseconds; the bound only keeps a row someone else removed from being
// remembered for ever.
const ownWriteTTL = 30 * time.Second

// ownWrites remembers this node's latest write of each of its presence
// rows. The node is the rows' only writer, so that write is never older
// than the cache's copy; a reconcile that ran on the lagging copy (its
// own "present" not back yet) would pull again and show the image as
// pulling for a moment after it was present.
type ownWrites struct {
	mu   sync.Mutex
	rows map[string]ownWrite // by image
}

type ownWrite struct {
	row     api.ImagePresence
	deleted bool
	at      time.Time
}

func (w *ownWrites) remember(image string, row api.ImagePresence, deleted bool, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rows == nil {
		w.rows = map[string]ownWrite{}
	}
	w.rows[image] = ownWrite{row: row, deleted: deleted, at: now}
}

// recall returns the write remembered for image, if it is recent.
func (w *ownWrites) recall(image string, now time.Time) (ownWrite, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ow, ok := w.rows[image]
	if ok && now.Sub(ow.at) > ownWriteTTL {
		delete(w.rows, image)
		return ownWrite{}, false
	}
	return ow, ok
}

// putRow writes this node's row and remembers it.
func (r *Reconciler) putRow(ctx context.Context, row api.ImagePresence) error {
	if err := r.store.PutPresence(ctx, row); err != nil {
		return err
	}
	r.own.remember(row.Image, row, false, r.now())
	return nil
}

// deleteRow deletes this node's row and remembers that it is gone.
func (r *Reconciler) deleteRow(ctx context.Context, image string) error {
	if err := r.store.DeletePresence(ctx, image, r.cfg.Node); err != nil {
		return err
	}
	r.own.remember(image, api.ImagePresence{}, true, r.now())
	return nil
}
