package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state/corrosion"
)

// ErrNoRegistry means no live node serves the internal registry.
var ErrNoRegistry = errors.New("no node serves the internal registry")

// NoRegistryError says why no live node serves the internal registry,
// e.g. that its node stopped heartbeating; it matches ErrNoRegistry.
type NoRegistryError struct{ Reason string }

func (e *NoRegistryError) Error() string        { return e.Reason }
func (e *NoRegistryError) Is(target error) bool { return target == ErrNoRegistry }

// PutRegistryStatus writes a node's record of the registry it serves,
// skipping no-op writes.
func (s *Store) PutRegistryStatus(ctx context.Context, st api.RegistryStatus) error {
	conds, err := json.Marshal(nonNilSlice(st.Conditions))
	if err != nil {
		return err
	}
	detail, err := json.Marshal(st.Detail)
	if err != nil {
		return err
	}
	_, err = s.c.Exec(ctx, corrosion.Stmt(`INSERT INTO registry_status
  (node, observed_generation, address, conditions, detail, updated_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (node) DO UPDATE SET observed_generation = excluded.observed_generation,
  address = excluded.address, conditions = excluded.conditions, detail = excluded.detail,
  updated_at = excluded.updated_at
WHERE (registry_status.observed_generation, registry_status.address, registry_status.conditions, registry_status.detail)
  IS NOT (excluded.observed_generation, excluded.address, excluded.conditions, excluded.detail)`,
		st.Node, st.ObservedGeneration, st.Address, string(conds), string(detail), stamp(st.UpdatedAt)))
	if err != nil {
		return fmt.Errorf("write registry status of %s: %w", st.Node, err)
	}
	return nil
}

// noRegistry names the real cause when no registry is usable: the node
// of the registry that served last stopped heartbeating, or no registry
// is ready, or none ever ran.
func noRegistry(statuses []api.RegistryStatus, nodes map[string]api.Node, now time.Time, liveTimeout time.Duration) error {
	var last api.RegistryStatus // the newest that was serving, else the newest
	for _, st := range statuses {
		ready, lastReady := api.IsTrue(st.Conditions, api.ConditionReady), api.IsTrue(last.Conditions, api.ConditionReady)
		if ready && !lastReady || ready == lastReady && st.UpdatedAt.After(last.UpdatedAt) {
			last = st
		}
	}
	n, known := nodes[last.Node]
	switch {
	case last.Node == "":
		return &NoRegistryError{"no node serves the internal registry yet (none has started it; see `uc registry status`)"}
	case !known:
		return &NoRegistryError{fmt.Sprintf("the internal registry's node %s is not a registered node", last.Node)}
	case !n.Live(now, liveTimeout):
		return &NoRegistryError{fmt.Sprintf("the internal registry's node %s", n.Unready(now, liveTimeout))}
	}
	why := "no Ready condition"
	for _, c := range last.Conditions {
		if c.Type == api.ConditionReady {
			why = strings.TrimSpace(c.Reason + ": " + c.Message)
		}
	}
	return &NoRegistryError{fmt.Sprintf("the internal registry on %s (%s) is not ready: %s", last.Node, last.Address, why)}
}

// registrySpecName is the one row of registry_spec.
const registrySpecName = "default"

// PutRegistrySpec sets the desired registry; an unchanged spec writes
// nothing, a changed one bumps the generation. A spec with Auth gets a
// generated credential in the same transaction, unless one exists.
func (s *Store) PutRegistrySpec(ctx context.Context, spec api.RegistrySpec) error {
	body, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	stmts := []corrosion.Statement{corrosion.Stmt(`INSERT INTO registry_spec (name, uid, generation, spec, updated_at) VALUES (?, ?, 1, ?, ?)
ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, generation = registry_spec.generation + 1,
  updated_at = excluded.updated_at
WHERE registry_spec.spec IS NOT excluded.spec`, registrySpecName, newUID(), string(body), now)}
	if spec.Auth {
		stmts = append(stmts, corrosion.Stmt(`INSERT INTO registry_credentials (name, username, password, updated_at)
VALUES (?, 'uc', ?, ?) ON CONFLICT (name) DO NOTHING`, registrySpecName, newUID()+newUID(), now))
	}
	if _, err := s.c.Exec(ctx, stmts...); err != nil {
		return fmt.Errorf("write registry spec: %w", err)
	}
	return nil
}

// DeleteRegistrySpec stops wanting a managed registry.
func (s *Store) DeleteRegistrySpec(ctx context.Context) error {
	_, err := s.c.Exec(ctx, corrosion.Stmt("DELETE FROM registry_spec WHERE name = ?", registrySpecName))
	return err
}

// CredentialSource reads the registry credential at most once per ttl. A
// failed read keeps the last value: a credential does not change often,
// and an unreadable state should not turn every request anonymous.
func (s *Store) CredentialSource(ttl time.Duration) api.CredentialSource {
	var mu sync.Mutex
	var cred api.Credential
	var ok bool
	var read time.Time
	return func(ctx context.Context) (api.Credential, bool) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(read) >= ttl {
			if c, found, err := s.RegistryCredential(ctx); err == nil {
				cred, ok, read = c, found, time.Now()
			}
		}
		return cred, ok
	}
}
