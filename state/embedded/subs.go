package embedded

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ucplane/uc/state/corrosion"
)

// SubOptions are the retention limits of subscriptions. Zero values take
// Corrosion's own numbers.
type SubOptions struct {
	Retain       int           // change rows kept after a purge (500)
	PurgeEvery   time.Duration // how often old change rows are purged (300 s)
	IdleTimeout  time.Duration // a subscription with no listener is deleted after this (10 min)
	ListenBuffer int           // events a slow listener may lag before it is dropped (10240)
}

func (o SubOptions) withDefaults() SubOptions {
	if o.Retain <= 0 {
		o.Retain = 500
	}
	if o.PurgeEvery <= 0 {
		o.PurgeEvery = 300 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 10 * time.Minute
	}
	if o.ListenBuffer <= 0 {
		o.ListenBuffer = 10240
	}
	return o
}

// subManager owns every subscription: it deduplicates them by expanded SQL,
// re-matches them after each commit that touched their tables, and keeps
// their change logs for resumption.
type subManager struct {
	db   *DB
	opts SubOptions
	log  *slog.Logger

	mu      sync.Mutex
	byKey   map[string]*subscription
	byID    map[string]*subscription
	pending map[string]bool // tables changed since the matcher last ran
	wake    chan struct{}
	closed  bool // set when the server stops
}

func newSubManager(db *DB, opts SubOptions, log *slog.Logger) *subManager {
	m := &subManager{
		db: db, opts: opts.withDefaults(), log: log,
		byKey: map[string]*subscription{}, byID: map[string]*subscription{},
		pending: map[string]bool{}, wake: make(chan struct{}, 1),
	}
	db.onCommit = m.changed
	return m
}

// changed is called after each commit; the matcher picks the tables up.
func (m *subManager) changed(tables []string) {
	m.mu.Lock()
	for _, t := range tables {
		m.pending[strings.ToLower(t)] = true
	}
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// run matches changes and enforces retention until ctx is done.
func (m *subManager) run(ctx context.Context) {
	purge := time.NewTicker(m.opts.PurgeEvery)
	defer purge.Stop()
	idle := time.NewTicker(max(min(m.opts.IdleTimeout/2, 30*time.Second), time.Millisecond))
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			m.closeAll()
			return
		case <-m.wake:
			m.matchPending(ctx)
		case <-purge.C:
			m.purge()
		case <-idle.C:
			m.dropIdle(time.Now())
		}
	}
}

func (m *subManager) matchPending(ctx context.Context) {
	m.mu.Lock()
	tables := m.pending
	m.pending = map[string]bool{}
	var subs []*subscription
	for _, s := range m.byID {
		if s.touches(tables) {
			subs = append(subs, s)
		}
	}
	m.mu.Unlock()
	for _, s := range subs {
		if err := s.rematch(ctx, m.db); err != nil {
			m.log.Error("Subscription query failed while matching changes.", "sub_id", s.id, "err", err)
		}
	}
}

// errShuttingDown refuses new subscriptions once the server is stopping.
var errShuttingDown = errors.New("server is shutting down")

// subscribe returns the subscription for stmt, creating it unless
// mustExist (a POST with `from` may only attach). As in Corrosion, a query
// the matcher refuses is reported before a missing subscription.
func (m *subManager) subscribe(ctx context.Context, stmt corrosion.Statement, mustExist bool) (*subscription, error) {
	key, err := expandSQL(stmt)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errShuttingDown
	}
	if s, ok := m.byKey[key]; ok {
		return s, nil
	}
	plan, err := planSubscription(key, func(t string) ([]string, error) { return m.db.primaryKey(ctx, t) })
	if err != nil {
		return nil, err
	}
	if mustExist {
		return nil, errors.New("a `from` query param was supplied, but no existing subscription found")
	}
	s := newSubscription(key, plan, m.opts)
	if err := s.initialMatch(ctx, m.db); err != nil {
		return nil, err
	}
	m.byKey[key], m.byID[s.id] = s, s
	m.log.Debug("Subscription created.", "sub_id", s.id, "sql", key)
	return s, nil
}

func (m *subManager) get(id string) *subscription {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byID[id]
}

func (m *subManager) purge() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.byID {
		s.purge(m.opts.Retain)
	}
}

func (m *subManager) dropIdle(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, s := range m.byID {
		if s.idleFor(now) > m.opts.IdleTimeout {
			delete(m.byID, id)
			delete(m.byKey, s.key)
			m.log.Debug("Idle subscription deleted.", "sub_id", id)
		}
	}
}

func (m *subManager) closeAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for _, s := range m.byID {
		s.closeListeners()
	}
}

// matRow is a row of a subscription's materialized result.
type matRow struct {
	rowid  int64
	values []any
}

type subscription struct {
	id, hash, key string
	plan          *matchQuery
	tables        map[string]bool
	buffer        int

	mu        sync.Mutex
	columns   []string
	rows      map[string]*matRow // by primary-key identity
	nextRowID int64
	changes   []corrosion.Event // retained change log, ascending ids
	last      uint64            // last change id issued
	listeners map[*listener]struct{}
	idleSince time.Time
	closed    bool // no more live events: the server is stopping
}

// listener is one open stream of a subscription.
type listener struct{ ch chan corrosion.Event }

func newSubscription(key string, plan *matchQuery, opts SubOptions) *subscription {
	s := &subscription{
		id: newUUID(), key: key, plan: plan, hash: queryHash(key),
		tables: map[string]bool{}, buffer: opts.ListenBuffer,
		rows: map[string]*matRow{}, listeners: map[*listener]struct{}{},
		idleSince: time.Now(),
	}
	for _, t := range plan.tables {
		s.tables[strings.ToLower(t.name)] = true
	}
	return s
}

func queryHash(sql string) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seahash([]byte(sql)))
	return hex.EncodeToString(b[:])
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (s *subscription) touches(tables map[string]bool) bool {
	for t := range s.tables {
		if tables[t] {
			return true
		}
	}
	return false
}

// result runs the matching query: identities in result order and the
// values the client selected.
func (s *subscription) result(ctx context.Context, db *DB) ([]string, map[string][]any, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second) // Corrosion interrupts at 15 s
	defer cancel()
	cols, rows, err := db.queryAll(ctx, s.plan.sql)
	if err != nil {
		return nil, nil, err
	}
	n := s.plan.npk
	s.columns = cols[n:]
	order := make([]string, 0, len(rows))
	byID := make(map[string][]any, len(rows))
	for _, r := range rows {
		id := identity(r[:n])
		if _, dup := byID[id]; !dup {
			order = append(order, id)
		}
		byID[id] = r[n:]
	}
	return order, byID, nil
}

func identity(pk []any) string {
	var b strings.Builder
	for _, v := range pk {
		fmt.Fprintf(&b, "%T:%v\x00", v, v)
	}
	return b.String()
}

func (s *subscription) initialMatch(ctx context.Context, db *DB) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	order, vals, err := s.result(ctx, db)
	if err != nil {
		return err
	}
	for _, id := range order {
		s.nextRowID++
		s.rows[id] = &matRow{rowid: s.nextRowID, values: vals[id]}
	}
	return nil
}

// rematch diffs the current result against the materialized one and emits
// insert, update and delete changes with contiguous ids.
func (s *subscription) rematch(ctx context.Context, db *DB) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	order, vals, err := s.result(ctx, db)
	if err != nil {
		return err
	}
	for _, id := range order {
		row, ok := s.rows[id]
		switch {
		case !ok:
			s.nextRowID++
			row = &matRow{rowid: s.nextRowID, values: vals[id]}
			s.rows[id] = row
			s.emit(corrosion.ChangeInsert, row)
		case !sameValues(row.values, vals[id]):
			row.values = vals[id]
			s.emit(corrosion.ChangeUpdate, row)
		}
	}
	s.emitDeletes(vals)
	return nil
}

// sameValues compares rows as Corrosion's `IS NOT` does: NULL equals NULL,
// and an INTEGER equals a REAL of the same value.
func sameValues(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameValue(a[i], b[i]) {
			return false
		}
	}
	return true
}

func sameValue(a, b any) bool {
	switch x := a.(type) {
	case int64:
		if y, ok := b.(float64); ok {
			return float64(x) == y
		}
	case float64:
		if y, ok := b.(int64); ok {
			return x == float64(y)
		}
	}
	return reflect.DeepEqual(a, b)
}

func (s *subscription) emitDeletes(current map[string][]any) {
	var gone []string
	for id := range s.rows {
		if _, ok := current[id]; !ok {
			gone = append(gone, id)
		}
	}
	slices.SortFunc(gone, func(a, b string) int { return int(s.rows[a].rowid - s.rows[b].rowid) })
	for _, id := range gone {
		s.emit(corrosion.ChangeDelete, s.rows[id])
		delete(s.rows, id)
	}
}

func (s *subscription) emit(kind corrosion.ChangeType, row *matRow) {
	s.last++
	ev := corrosion.Event{Kind: corrosion.EventChange, Change: kind, RowID: row.rowid,
		Values: row.values, ChangeID: s.last, HasChangeID: true}
	s.changes = append(s.changes, ev)
	for l := range s.listeners {
		select {
		case l.ch <- ev:
		default: // too slow: drop it; its stream ends and the client resumes
			close(l.ch)
			delete(s.listeners, l)
		}
	}
}

// ErrPurged is a resume from a change id that is no longer retained.
var ErrPurged = errors.New("subscription already deleted older changes")

// attach registers a listener and returns the events that precede live
// ones: a snapshot, or the retained changes after from.
func (s *subscription) attach(from uint64, skipRows bool) ([]corrosion.Event, *listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first []corrosion.Event
	if from > 0 {
		if minID := s.minChangeID(); from+1 < minID {
			return nil, nil, fmt.Errorf("%w, min change id: %d", ErrPurged, minID)
		}
		for _, ev := range s.changes {
			if ev.ChangeID > from {
				first = append(first, ev)
			}
		}
	} else if !skipRows {
		first = s.snapshot()
	}
	l := &listener{ch: make(chan corrosion.Event, s.buffer)}
	if s.closed {
		close(l.ch) // the stream ends after the replay; the client resumes elsewhere
		return first, l, nil
	}
	s.listeners[l] = struct{}{}
	return first, l, nil
}

func (s *subscription) minChangeID() uint64 {
	if len(s.changes) == 0 {
		return s.last + 1
	}
	return s.changes[0].ChangeID
}

func (s *subscription) snapshot() []corrosion.Event {
	rows := make([]*matRow, 0, len(s.rows))
	for _, r := range s.rows {
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b *matRow) int { return int(a.rowid - b.rowid) })
	out := make([]corrosion.Event, 0, len(rows)+2)
	out = append(out, corrosion.Event{Kind: corrosion.EventColumns, Columns: s.columns})
	for _, r := range rows {
		out = append(out, corrosion.Event{Kind: corrosion.EventRow, RowID: r.rowid, Values: r.values})
	}
	return append(out, corrosion.Event{Kind: corrosion.EventEOQ, ChangeID: s.last, HasChangeID: true})
}

func (s *subscription) detach(l *listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.listeners[l]; ok {
		delete(s.listeners, l)
		close(l.ch)
	}
	if len(s.listeners) == 0 {
		s.idleSince = time.Now()
	}
}

func (s *subscription) idleFor(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.listeners) > 0 {
		return 0
	}
	return now.Sub(s.idleSince)
}

// purge deletes change rows with id < last-retain, as Corrosion does.
func (s *subscription) purge(retain int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cut := 0
	for cut < len(s.changes) && s.changes[cut].ChangeID+uint64(retain) < s.last {
		cut++
	}
	s.changes = slices.Clone(s.changes[cut:])
}

func (s *subscription) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for l := range s.listeners {
		close(l.ch)
		delete(s.listeners, l)
	}
}
