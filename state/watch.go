package state

import (
	"context"
	"log/slog"

	"github.com/ucplane/uc/state/corrosion"
)

// KeySource returns a watch for the reconcile runtime: it follows a
// subscription and enqueues the key of every row that appears, changes or
// disappears. It never passes row contents on: controllers read what they
// need when they reconcile (level-triggered). After a re-list it also
// enqueues keys that vanished while the stream was down, so a delete that
// happened during a gap is not missed.
//
// The key is taken from the first selected column.
func (s *Store) KeySource(query corrosion.Statement, log *slog.Logger) func(ctx context.Context, enqueue func(string)) error {
	return func(ctx context.Context, enqueue func(string)) error {
		known := map[int64]string{}
		return s.c.Watch(ctx, query, corrosion.WatchOptions{Logger: log}, func(ev corrosion.WatchEvent) error {
			if ev.Snapshot {
				known = relist(known, ev.Rows, enqueue)
				return nil
			}
			key := corrosion.AsString(ev.Change.Values[0])
			if ev.Change.Change == corrosion.ChangeDelete {
				delete(known, ev.Change.RowID)
			} else {
				known[ev.Change.RowID] = key
			}
			enqueue(key)
			return nil
		})
	}
}

func relist(old map[int64]string, rows []corrosion.Row, enqueue func(string)) map[int64]string {
	seen := make(map[string]bool, len(rows))
	next := make(map[int64]string, len(rows))
	for _, r := range rows {
		key := corrosion.AsString(r.Values[0])
		next[r.RowID] = key
		seen[key] = true
		enqueue(key)
	}
	for _, key := range old {
		if !seen[key] {
			enqueue(key)
		}
	}
	return next
}
