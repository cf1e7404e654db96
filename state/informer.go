package state

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/ucplane/uc/state/corrosion"
)

// EventType says what happened to a cached row.
type EventType int

const (
	EventAdded EventType = iota
	EventUpdated
	EventDeleted
)

// Event is one change to a cached row: Old is the zero value for Added,
// New is the zero value for Deleted.
type Event[T any] struct {
	Type EventType
	Key  string
	Old  T
	New  T
}

// Object is the row an event is about: New, or Old once deleted.
func (e Event[T]) Object() T {
	if e.Type == EventDeleted {
		return e.Old
	}
	return e.New
}

// Informer keeps a copy of one table, fed by one subscription that
// resumes by change id after a cut (corrosion.Client.Watch), and tells its
// handlers about every change, like client-go's shared informer. Values
// handed out are shared with the cache: callers must not modify them.
type Informer[T any] struct {
	table  string
	query  string
	key    func(T) string
	group  func(T) string // the spec a status row belongs to, or nil
	decode func(row) (T, error)

	mu      sync.RWMutex
	items   map[string]T
	byGroup map[string]map[string]struct{}
	synced  chan struct{}

	// deliver serialises events to handlers, so that a handler added late
	// sees every row once (as Added) and then every change in order.
	deliver  sync.Mutex
	handlers map[int]func(Event[T])
	nextID   int
}

func newInformer[T any](table, query string, key, group func(T) string, decode func(row) (T, error)) *Informer[T] {
	return &Informer[T]{table: table, query: query, key: key, group: group, decode: decode,
		items: map[string]T{}, byGroup: map[string]map[string]struct{}{}, synced: make(chan struct{}),
		handlers: map[int]func(Event[T]){}}
}

// run follows the table until ctx ends.
func (i *Informer[T]) run(ctx context.Context, c *corrosion.Client, log *slog.Logger) error {
	return c.Watch(ctx, corrosion.Stmt(i.query), corrosion.WatchOptions{Logger: log}, func(ev corrosion.WatchEvent) error {
		if ev.Snapshot {
			i.replace(ev.Rows, log)
			return nil
		}
		v, err := i.decode(ev.Change.Values)
		if err != nil {
			// A row that cannot be decoded (e.g. half replicated) is left
			// out until a later change makes it whole.
			log.Warn("Skipping a row that cannot be decoded.", "table", i.table, "err", err)
			return nil
		}
		if ev.Change.Change != corrosion.ChangeDelete {
			i.apply([]Event[T]{i.put(v)})
		} else if del, ok := i.remove(i.key(v)); ok {
			i.apply([]Event[T]{del})
		}
		return nil
	})
}

// replace takes a full listing (first sync, or a re-list after the
// subscription was lost) and raises an event for every difference, so a
// delete that happened during a gap is not missed.
func (i *Informer[T]) replace(rows []corrosion.Row, log *slog.Logger) {
	seen := make(map[string]bool, len(rows))
	var events []Event[T]
	for _, r := range rows {
		v, err := i.decode(r.Values)
		if err != nil {
			log.Warn("Skipping a row that cannot be decoded.", "table", i.table, "err", err)
			continue
		}
		seen[i.key(v)] = true
		events = append(events, i.put(v))
	}
	i.mu.RLock()
	var gone []string
	for k := range i.items {
		if !seen[k] {
			gone = append(gone, k)
		}
	}
	i.mu.RUnlock()
	for _, k := range gone {
		if del, ok := i.remove(k); ok {
			events = append(events, del)
		}
	}
	i.apply(events)
	select {
	case <-i.synced:
	default:
		close(i.synced)
	}
}

func (i *Informer[T]) put(v T) Event[T] {
	k := i.key(v)
	i.mu.Lock()
	defer i.mu.Unlock()
	old, had := i.items[k]
	i.items[k] = v
	if i.group != nil {
		g := i.group(v)
		if i.byGroup[g] == nil {
			i.byGroup[g] = map[string]struct{}{}
		}
		i.byGroup[g][k] = struct{}{}
	}
	if had {
		return Event[T]{Type: EventUpdated, Key: k, Old: old, New: v}
	}
	return Event[T]{Type: EventAdded, Key: k, New: v}
}

func (i *Informer[T]) remove(k string) (Event[T], bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	old, had := i.items[k]
	if !had {
		return Event[T]{}, false
	}
	delete(i.items, k)
	if i.group != nil {
		g := i.group(old)
		delete(i.byGroup[g], k)
		if len(i.byGroup[g]) == 0 {
			delete(i.byGroup, g)
		}
	}
	return Event[T]{Type: EventDeleted, Key: k, Old: old}, true
}

func (i *Informer[T]) apply(events []Event[T]) {
	i.deliver.Lock()
	defer i.deliver.Unlock()
	for _, ev := range events {
		for _, h := range i.handlers {
			h(ev)
		}
	}
}

// AddHandler calls h for every cached row (as Added) and then for every
// change, until the returned function removes it. h runs on the
// informer's goroutine: it must be quick (enqueue a key) and must not add
// or remove handlers.
func (i *Informer[T]) AddHandler(h func(Event[T])) (remove func()) {
	i.deliver.Lock()
	defer i.deliver.Unlock()
	for _, v := range i.List() {
		h(Event[T]{Type: EventAdded, Key: i.key(v), New: v})
	}
	id := i.nextID
	i.nextID++
	i.handlers[id] = h
	return func() {
		i.deliver.Lock()
		defer i.deliver.Unlock()
		delete(i.handlers, id)
	}
}

// Source adapts the informer to a reconcile source: keys maps each event
// to the keys to enqueue (none to ignore it).
func (i *Informer[T]) Source(keys func(Event[T]) []string) func(ctx context.Context, enqueue func(string)) error {
	return func(ctx context.Context, enqueue func(string)) error {
		remove := i.AddHandler(func(ev Event[T]) {
			for _, k := range keys(ev) {
				enqueue(k)
			}
		})
		defer remove()
		<-ctx.Done()
		return ctx.Err()
	}
}

// Synced is closed once the first full listing is in.
func (i *Informer[T]) Synced() <-chan struct{} { return i.synced }

// Get returns the row with this key.
func (i *Informer[T]) Get(key string) (T, bool) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	v, ok := i.items[key]
	return v, ok
}

// List returns every row, sorted by key.
func (i *Informer[T]) List() []T {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.sorted(slices.Sorted(maps.Keys(i.items)))
}

// ListGroup returns the rows of one group (the status rows of one spec),
// sorted by key.
func (i *Informer[T]) ListGroup(group string) []T {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.sorted(slices.Sorted(maps.Keys(i.byGroup[group])))
}

// sorted collects the items of sorted keys; callers hold mu.
func (i *Informer[T]) sorted(ks []string) []T {
	out := make([]T, len(ks))
	for n, k := range ks {
		out[n] = i.items[k]
	}
	return out
}

// Len is the number of cached rows.
func (i *Informer[T]) Len() int {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return len(i.items)
}
