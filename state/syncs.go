package state

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state/corrosion"
)

// GitOps syncs (uc sync add): a spec per sync, written by users, and a
// status row per node that handled it.

const (
	syncSpecSelect   = "SELECT name, uid, generation, spec, updated_at FROM sync_specs"
	syncStatusSelect = "SELECT name, node, status FROM sync_status"
)

// SyncRecord is a sync spec with every node's status row for it.
type SyncRecord struct {
	Spec   api.SyncSpec     `json:"spec" yaml:"spec"`
	Meta   SpecMeta         `json:"meta" yaml:"meta"`
	Status []api.SyncStatus `json:"status" yaml:"status"`
}

// Current is the newest status row of this incarnation of the spec.
func (r SyncRecord) Current() (st api.SyncStatus, ok bool) {
	for _, s := range r.Status {
		if s.SpecUID == r.Meta.UID && (!ok || s.UpdatedAt.After(st.UpdatedAt)) {
			st, ok = s, true
		}
	}
	return st, ok
}

func decodeSyncSpec(r row) (SyncRecord, error) {
	rec := SyncRecord{Meta: SpecMeta{UID: str(r[1]), Generation: corrosion.AsInt(r[2]), UpdatedAt: fromMillis(r[4])}}
	err := unmarshalColumn(r[3], &rec.Spec, "sync "+str(r[0]))
	rec.Spec.Name = str(r[0])
	return rec, err
}

func decodeSyncStatus(r row) (api.SyncStatus, error) {
	var st api.SyncStatus
	err := unmarshalColumn(r[2], &st, "sync status of "+str(r[0])+" on "+str(r[1]))
	st.Name, st.Node = str(r[0]), str(r[1])
	return st, err
}

// PutSync records a sync; an unchanged spec writes nothing, a changed one
// moves the generation.
func (s *Store) PutSync(ctx context.Context, spec api.SyncSpec) error {
	body, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	_, err = s.c.Exec(ctx, corrosion.Stmt(`INSERT INTO sync_specs (name, uid, generation, spec, updated_at) VALUES (?, ?, 1, ?, ?)
ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, generation = sync_specs.generation + 1, updated_at = excluded.updated_at
WHERE sync_specs.spec IS NOT excluded.spec`, spec.Name, newUID(), string(body), time.Now().UnixMilli()))
	if err != nil {
		return fmt.Errorf("write sync %s: %w", spec.Name, err)
	}
	return nil
}

// DeleteSync deletes a sync; ErrNotFound if absent. What it applied stays:
// delete the project to remove that.
func (s *Store) DeleteSync(ctx context.Context, name string) error {
	res, err := s.c.Exec(ctx, corrosion.Stmt("DELETE FROM sync_specs WHERE name = ?", name))
	if err != nil {
		return fmt.Errorf("delete sync %s: %w", name, err)
	}
	if res.Results[0].RowsAffected == 0 {
		return fmt.Errorf("sync %s: %w", name, ErrNotFound)
	}
	return nil
}

// ListSyncs returns every sync (or the one named) with its status rows.
func (s *Store) ListSyncs(ctx context.Context, name string) ([]SyncRecord, error) {
	recs, err := queryRows(ctx, s.c, "syncs", syncSpecSelect, "name", name, "name", decodeSyncSpec)
	if err != nil {
		return nil, err
	}
	rows, err := queryRows(ctx, s.c, "sync status", syncStatusSelect, "name", name, "name, node", decodeSyncStatus)
	if err != nil {
		return nil, err
	}
	for i := range recs {
		for _, st := range rows {
			if st.Name == recs[i].Spec.Name {
				recs[i].Status = append(recs[i].Status, st)
			}
		}
	}
	return recs, nil
}

// GetSync returns one sync; ErrNotFound if absent.
func (s *Store) GetSync(ctx context.Context, name string) (SyncRecord, error) {
	recs, err := s.ListSyncs(ctx, name)
	if err != nil {
		return SyncRecord{}, err
	}
	if len(recs) == 0 {
		return SyncRecord{}, fmt.Errorf("sync %s: %w", name, ErrNotFound)
	}
	return recs[0], nil
}

// PutSyncStatus writes a node's status of a sync.
func (s *Store) PutSyncStatus(ctx context.Context, st api.SyncStatus) error {
	st.UpdatedAt = time.UnixMilli(stamp(st.UpdatedAt))
	body, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = s.c.Exec(ctx, corrosion.Stmt(`INSERT INTO sync_status (name, node, status, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (name, node) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at`,
		st.Name, st.Node, string(body), st.UpdatedAt.UnixMilli()))
	if err != nil {
		return fmt.Errorf("write sync status of %s on %s: %w", st.Name, st.Node, err)
	}
	return nil
}

// DeleteSyncStatus removes a node's own status row of a deleted sync.
func (s *Store) DeleteSyncStatus(ctx context.Context, name, node string) error {
	_, err := s.c.Exec(ctx, corrosion.Stmt("DELETE FROM sync_status WHERE name = ? AND node = ?", name, node))
	return err
}

// RefreshSyncs asks the named syncs' refs to be resolved now: a new
// generation, without a spec change.
func (s *Store) RefreshSyncs(ctx context.Context, names []string) error {
	if err := s.bumpGenerations(ctx, "sync_specs", names); err != nil {
		return fmt.Errorf("refresh syncs: %w", err)
	}
	return nil
}
