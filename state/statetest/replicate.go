package statetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ucplane/uc/state/corrosion"
)

// StartPair serves two embedded states that replicate to each other, as
// two Corrosion agents of one cluster do: a change committed on one is
// applied on the other lag later. Each node of a test talks to its own.
//
// Replication follows every table by subscription and writes what changed
// into the peer. Rows carry a Lamport version, as Corrosion's cells carry a
// col_version: the higher version wins, a tie goes to the larger side name,
// so concurrent writes converge. A row written by replication is recognised
// when its own subscription reports it back, and is not sent again.
func StartPair(t testing.TB, lag time.Duration) (a, b *Server) {
	t.Helper()
	a, b = Start(t), Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := &replicator{ctx: ctx, lag: lag}
	sa, sb := r.side(t, "a", a.Addr), r.side(t, "b", b.Addr)
	tables, err := userTables(ctx, sa.client)
	if err != nil {
		cancel()
		t.Fatalf("replication: %v", err)
	}
	sa.peer, sb.peer = sb, sa
	for _, s := range []*side{sa, sb} {
		r.wg.Add(1)
		go func() { defer r.wg.Done(); s.deliver() }()
		for _, tbl := range tables {
			r.wg.Add(1)
			go func() { defer r.wg.Done(); s.follow(tbl) }()
		}
	}
	t.Cleanup(func() {
		cancel()
		r.wg.Wait()
		if err := r.firstErr(); err != nil {
			t.Errorf("replication: %v", err)
		}
	})
	return a, b
}

type replicator struct {
	ctx  context.Context
	lag  time.Duration
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

func (r *replicator) fail(err error) {
	if r.ctx.Err() != nil {
		return // the test is over: the servers are going away
	}
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

func (r *replicator) firstErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(r.errs...)
}

// table is a replicated table: its name and primary-key columns.
type table struct {
	name string
	pk   []string
}

// userTables lists the schema's tables (not Corrosion's or SQLite's own)
// with their primary keys.
func userTables(ctx context.Context, c *corrosion.Client) ([]table, error) {
	_, rows, err := c.QueryAll(ctx, corrosion.Stmt(`SELECT name FROM sqlite_master WHERE type = 'table'
		AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '__corro_%' AND name NOT LIKE 'crsql_%' ORDER BY name`))
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var out []table
	for _, row := range rows {
		tbl := table{name: corrosion.AsString(row[0])}
		_, keys, err := c.QueryAll(ctx, corrosion.Stmt("SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk", tbl.name))
		if err != nil {
			return nil, fmt.Errorf("primary key of %s: %w", tbl.name, err)
		}
		for _, k := range keys {
			tbl.pk = append(tbl.pk, corrosion.AsString(k[0]))
		}
		out = append(out, tbl)
	}
	return out, nil
}

// side is one state server of the pair and what replication knows of it.
type side struct {
	r      *replicator
	name   string
	client *corrosion.Client
	peer   *side
	inbox  chan message

	mu   sync.Mutex
	rows map[string]*rowState // by table and primary key
}

// rowState is a row as this side holds it.
type rowState struct {
	values  string // JSON of the row's values; "" once deleted
	ver     uint64
	origin  string   // the side whose write made ver
	pending []string // values replication wrote here, not yet reported back
}

// message is one row change on its way to the peer.
type message struct {
	due     time.Time
	tbl     table
	key     string
	cols    []string
	values  []any // nil for a delete
	encoded string
	ver     uint64
	origin  string
}

func (r *replicator) side(t testing.TB, name, addr string) *side {
	t.Helper()
	c, err := corrosion.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	return &side{r: r, name: name, client: c, inbox: make(chan message, 4096), rows: map[string]*rowState{}}
}

// follow subscribes to one table and hands each row that changed here to
// observe. A re-list is compared with what the side held before.
func (s *side) follow(tbl table) {
	known := map[string]bool{}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	err := s.client.Watch(s.r.ctx, corrosion.Stmt("SELECT * FROM "+tbl.name), corrosion.WatchOptions{Logger: quiet, MaxBackoff: 200 * time.Millisecond},
		func(ev corrosion.WatchEvent) error {
			if !ev.Snapshot {
				del := ev.Change.Change == corrosion.ChangeDelete
				key := s.observe(tbl, ev.Columns, ev.Change.Values, del)
				known[key] = !del
				return nil
			}
			listed := map[string]bool{}
			for _, row := range ev.Rows {
				listed[s.observe(tbl, ev.Columns, row.Values, false)] = true
			}
			for key, live := range known {
				if live && !listed[key] {
					s.observeDelete(tbl, key)
				}
			}
			known = listed
			return nil
		})
	if !errors.Is(err, context.Canceled) {
		s.r.fail(fmt.Errorf("follow %s on %s: %w", tbl.name, s.name, err))
	}
}

// observe notes a row this side's subscription reported. A row that
// replication wrote here is not sent back; anything else is a local write,
// which gets the next version and goes to the peer.
func (s *side) observe(tbl table, cols []string, values []any, deleted bool) string {
	key := tbl.name + "\x00" + rowKey(tbl, cols, values)
	if deleted {
		s.observeDelete(tbl, key)
		return key
	}
	s.noteLocal(message{tbl: tbl, key: key, cols: cols, values: values, encoded: encode(values)})
	return key
}

func (s *side) observeDelete(tbl table, key string) {
	s.noteLocal(message{tbl: tbl, key: key})
}

func (s *side) noteLocal(m message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state(m.key)
	for i, p := range st.pending {
		if p == m.encoded {
			st.pending = st.pending[i+1:] // an echo, and later ones supersede the earlier
			return
		}
	}
	if st.values == m.encoded {
		return // re-listed, unchanged
	}
	st.values, st.ver, st.origin = m.encoded, st.ver+1, s.name
	m.ver, m.origin, m.due = st.ver, s.name, time.Now().Add(s.r.lag)
	select {
	case s.peer.inbox <- m:
	case <-s.r.ctx.Done():
	}
}

func (s *side) state(key string) *rowState {
	st := s.rows[key]
	if st == nil {
		st = &rowState{}
		s.rows[key] = st
	}
	return st
}

// deliver applies the peer's changes here, each once its lag has passed.
func (s *side) deliver() {
	for {
		select {
		case <-s.r.ctx.Done():
			return
		case m := <-s.inbox:
			select {
			case <-s.r.ctx.Done():
				return
			case <-time.After(time.Until(m.due)):
			}
			if err := s.apply(m); err != nil {
				s.r.fail(fmt.Errorf("apply %s %s on %s: %w", m.tbl.name, m.key, s.name, err))
			}
		}
	}
}

// apply writes a replicated change unless this side holds a newer version
// of the row (whose own change is on its way to the peer).
func (s *side) apply(m message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state(m.key)
	if m.ver < st.ver || m.ver == st.ver && m.origin <= st.origin {
		return nil
	}
	st.ver, st.origin = m.ver, m.origin
	if st.values == m.encoded {
		return nil
	}
	st.values = m.encoded
	st.pending = append(st.pending, m.encoded)
	_, err := s.client.Exec(s.r.ctx, writeRow(m))
	return err
}

// writeRow is the upsert, or the delete, that makes the row what m says.
func writeRow(m message) corrosion.Statement {
	var where []string
	for _, k := range m.tbl.pk {
		where = append(where, k+" = ?")
	}
	if m.values == nil {
		return corrosion.Stmt("DELETE FROM "+m.tbl.name+" WHERE "+strings.Join(where, " AND "), keyValues(m.key)...)
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(m.cols)), ", ")
	var set []string
	for _, c := range m.cols {
		set = append(set, c+" = excluded."+c)
	}
	q := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) DO UPDATE SET %s",
		m.tbl.name, strings.Join(m.cols, ", "), marks, strings.Join(m.tbl.pk, ", "), strings.Join(set, ", "))
	return corrosion.Stmt(q, m.values...)
}

// rowKey is the JSON of a row's primary-key values.
func rowKey(tbl table, cols []string, values []any) string {
	var pk []any
	for _, k := range tbl.pk {
		for i, c := range cols {
			if c == k && i < len(values) {
				pk = append(pk, values[i])
			}
		}
	}
	return encode(pk)
}

// keyValues reads the primary-key values back from a key.
func keyValues(key string) []any {
	_, js, _ := strings.Cut(key, "\x00")
	var raw []json.RawMessage
	_ = json.Unmarshal([]byte(js), &raw)
	out := make([]any, len(raw))
	for i, r := range raw {
		out[i] = corrosion.DecodeParam(r)
	}
	return out
}

func encode(values []any) string {
	b, _ := json.Marshal(values)
	return string(b)
}
