package state

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state/corrosion"
)

const nodeColumns = "name, labels, state, version, started_at, heartbeat_at, capacity"

// RegisterNode writes a node's own row. It skips the write when nothing
// but the heartbeat would change, so a restart with the same labels is quiet.
func (s *Store) RegisterNode(ctx context.Context, n api.Node) error {
	labels, err := json.Marshal(nonNil(n.Labels))
	if err != nil {
		return err
	}
	capacity, err := json.Marshal(n.Capacity)
	if err != nil {
		return err
	}
	_, err = s.c.Exec(ctx, corrosion.Stmt(`INSERT INTO nodes (`+nodeColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET labels = excluded.labels, state = excluded.state, version = excluded.version,
  started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, capacity = excluded.capacity
WHERE (nodes.labels, nodes.state, nodes.version, nodes.started_at, nodes.capacity)
  IS NOT (excluded.labels, excluded.state, excluded.version, excluded.started_at, excluded.capacity)`,
		n.Name, string(labels), n.State, n.Version, n.StartedAt.UnixMilli(), n.HeartbeatAt.UnixMilli(), string(capacity)))
	if err != nil {
		return fmt.Errorf("register node %s: %w", n.Name, err)
	}
	return nil
}

// Heartbeat records that the node is alive at t.
func (s *Store) Heartbeat(ctx context.Context, name string, t time.Time) error {
	_, err := s.c.Exec(ctx, corrosion.Stmt("UPDATE nodes SET heartbeat_at = ? WHERE name = ? AND heartbeat_at < ?",
		t.UnixMilli(), name, t.UnixMilli()))
	if err != nil {
		return fmt.Errorf("heartbeat node %s: %w", name, err)
	}
	return nil
}

// MarkNodeGone records a clean shutdown.
func (s *Store) MarkNodeGone(ctx context.Context, name string) error {
	_, err := s.c.Exec(ctx, corrosion.Stmt("UPDATE nodes SET state = ? WHERE name = ? AND state IS NOT ?",
		api.NodeGone, name, api.NodeGone))
	if err != nil {
		return fmt.Errorf("mark node %s gone: %w", name, err)
	}
	return nil
}

func fromMillis(v any) time.Time {
	ms := corrosion.AsInt(v)
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// PutNodeDetail records what a node reports about its upkeep; only that
// node writes it.
func (s *Store) PutNodeDetail(ctx context.Context, name string, d api.NodeDetail) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = s.c.Exec(ctx, corrosion.Stmt("UPDATE nodes SET detail = ? WHERE name = ? AND detail IS NOT ?", string(b), name, string(b)))
	if err != nil {
		return fmt.Errorf("write detail of node %s: %w", name, err)
	}
	return nil
}
