package corrosion

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Row is one row of a subscription, identified by its subscription rowid.
type Row struct {
	RowID  int64
	Values []any
}

// WatchEvent is what Watch hands to its handler: either a full listing
// (Snapshot) or one change. After a Snapshot the handler must forget rowids
// it knew before: a new subscription numbers rows afresh.
type WatchEvent struct {
	Snapshot bool
	Columns  []string
	Rows     []Row
	Change   Event
}

// WatchOptions tune Watch. The zero value is ready to use.
type WatchOptions struct {
	Logger *slog.Logger
	// MaxBackoff caps the wait between reconnects (default 5 s).
	MaxBackoff time.Duration
}

// Watch follows a subscription until ctx is done or the handler fails. It
// never loses an event: a silent end of stream, a decode error, an error line
// or a gap in change ids resumes from the last change id; a purged `from`
// re-lists the same subscription; a 404 starts a fresh one and re-lists.
func (c *Client) Watch(ctx context.Context, stmt Statement, opts WatchOptions, handle func(WatchEvent) error) error {
	w := &watcher{c: c, stmt: stmt, handle: handle, log: opts.Logger}
	if w.log == nil {
		w.log = slog.Default()
	}
	maxWait := opts.MaxBackoff
	if maxWait <= 0 {
		maxWait = 5 * time.Second
	}
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(maxWait),
		backoff.WithMaxElapsedTime(0),
	)
	for {
		progressed, err := w.attach(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var perm *backoff.PermanentError
		if errors.As(err, &perm) {
			return perm.Err
		}
		if progressed {
			bo.Reset()
		}
		w.log.Debug("Subscription stream ended; resuming.", "sub_id", w.id, "from", w.last, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(bo.NextBackOff()):
		}
	}
}

type watcher struct {
	c      *Client
	stmt   Statement
	handle func(WatchEvent) error
	log    *slog.Logger

	id      string // subscription id, empty until the first POST
	last    uint64 // last change id applied
	relist  bool   // next attach must re-list rather than replay
	columns []string
}

// attach opens one stream and consumes it until it ends. progressed says
// whether any event was applied, so the caller can reset its backoff.
func (w *watcher) attach(ctx context.Context) (progressed bool, err error) {
	s, err := w.open(ctx)
	if err != nil {
		return false, err
	}
	defer s.Close()
	if w.needsSnapshot() {
		if err := w.readSnapshot(s); err != nil {
			return false, err
		}
		progressed = true
	}
	for {
		ev, err := s.Next()
		if err != nil {
			if IsPurged(err) {
				w.relist = true
			}
			return progressed, err
		}
		if err := w.applyChange(ev); err != nil {
			return progressed, err
		}
		progressed = true
	}
}

func (w *watcher) needsSnapshot() bool { return w.relist || w.last == 0 }

// open resumes when it can and re-subscribes when the server lost the id.
func (w *watcher) open(ctx context.Context) (*Stream, error) {
	if w.id != "" {
		from := w.last
		if w.relist {
			from = 0
		}
		s, err := w.c.Resubscribe(ctx, w.id, SubscribeOptions{From: from})
		if !errors.Is(err, ErrSubscriptionNotFound) {
			return s, classify(err)
		}
		w.log.Info("Subscription is gone; subscribing again and re-listing.", "sub_id", w.id)
	}
	s, err := w.c.Subscribe(ctx, w.stmt, SubscribeOptions{})
	if err != nil {
		return nil, classify(err)
	}
	w.id, w.last, w.relist = s.ID, 0, true
	return s, nil
}

// classify marks client errors (bad SQL, auth) as permanent: retrying them
// cannot help.
func classify(err error) error {
	var api *APIError
	if errors.As(err, &api) && api.Status >= 400 && api.Status < 500 &&
		api.Status != http.StatusNotFound && api.Status != http.StatusTooManyRequests {
		return backoff.Permanent(err)
	}
	return err
}

func (w *watcher) readSnapshot(s *Stream) error {
	snap := WatchEvent{Snapshot: true, Columns: w.columns}
	for {
		ev, err := s.Next()
		if err != nil {
			return streamErr(err)
		}
		switch ev.Kind {
		case EventColumns:
			w.columns, snap.Columns = ev.Columns, ev.Columns
		case EventRow:
			snap.Rows = append(snap.Rows, Row{RowID: ev.RowID, Values: ev.Values})
		case EventEOQ:
			if err := w.handle(snap); err != nil {
				return backoff.Permanent(err)
			}
			w.last, w.relist = ev.ChangeID, false
			return nil
		default:
			return fmt.Errorf("subscription snapshot: unexpected event %d", ev.Kind)
		}
	}
}

func (w *watcher) applyChange(ev Event) error {
	if ev.Kind != EventChange {
		return fmt.Errorf("subscription: unexpected event %d after eoq", ev.Kind)
	}
	if ev.ChangeID != w.last+1 {
		return fmt.Errorf("%w: got change id %d after %d", ErrMissedChange, ev.ChangeID, w.last)
	}
	if err := w.handle(WatchEvent{Columns: w.columns, Change: ev}); err != nil {
		return backoff.Permanent(err)
	}
	w.last = ev.ChangeID
	return nil
}
