package state

import (
	"encoding/json"
	"fmt"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state/corrosion"
)

// The column lists below are the one place that names each table's
// columns for reading: the store's queries and the cache's subscriptions
// select exactly these, and the decoders read them in this order.
const (
	nodeSelect = "SELECT name, labels, state, version, started_at, heartbeat_at, capacity, detail FROM nodes"
	// Spec tables share one shape; %s is the table.
	specSelect               = "SELECT name, project, uid, generation, spec, updated_at, origin FROM %s"
	buildStatusSelect        = "SELECT name, node, spec_uid, observed_generation, phase, digest, message, conditions, updated_at, detail FROM build_status"
	presenceSelect           = "SELECT image, node, spec_uid, observed_generation, state, digest, error, updated_at, detail FROM image_presence"
	resolutionSelect         = "SELECT image, node, spec_uid, observed_generation, ref, digest, error, updated_at FROM image_resolution"
	registrySpecSelect       = "SELECT name, generation, spec FROM registry_spec"
	registryStatusSelect     = "SELECT node, observed_generation, address, conditions, updated_at, detail FROM registry_status"
	registryCredentialSelect = "SELECT name, username, password FROM registry_credentials"
)

// row is one result row of a select above.
type row = []any

func str(v any) string { return corrosion.AsString(v) }

func unmarshalColumn(v any, out any, what string) error {
	if err := json.Unmarshal([]byte(str(v)), out); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func decodeNode(r row) (api.Node, error) {
	n := api.Node{Name: str(r[0]), State: str(r[2]), Version: str(r[3]), StartedAt: fromMillis(r[4]), HeartbeatAt: fromMillis(r[5])}
	for _, c := range []struct {
		v    any
		out  any
		what string
	}{{r[1], &n.Labels, "labels"}, {r[6], &n.Capacity, "capacity"}, {r[7], &n.Detail, "detail"}} {
		if err := unmarshalColumn(c.v, c.out, "node "+n.Name+": "+c.what); err != nil {
			return n, err
		}
	}
	return n, nil
}

// SpecRow is one row of a spec table before its body is decoded.
type SpecRow struct {
	Name    string
	Project string
	Origin  string
	Meta    SpecMeta
	Body    string
}

func decodeSpecRow(r row) (SpecRow, error) {
	return SpecRow{Name: str(r[0]), Project: str(r[1]), Body: str(r[4]), Origin: str(r[6]),
		Meta: SpecMeta{UID: str(r[2]), Generation: corrosion.AsInt(r[3]), UpdatedAt: fromMillis(r[5])}}, nil
}

func decodeBuildSpec(r row) (BuildRecord, error) {
	s, _ := decodeSpecRow(r)
	rec := BuildRecord{Meta: s.Meta}
	err := unmarshalColumn(s.Body, &rec.Spec, "build "+s.Name+": decode spec")
	rec.Spec.Name = s.Name // the key, even in a body not yet replicated
	return rec, err
}

func decodeImageSpec(r row) (ImageRecord, error) {
	s, _ := decodeSpecRow(r)
	rec := ImageRecord{Meta: s.Meta}
	err := unmarshalColumn(s.Body, &rec.Spec, "image "+s.Name+": decode spec")
	rec.Spec.Name = s.Name
	return rec, err
}

func decodeBuildStatus(r row) (api.BuildStatus, error) {
	st := api.BuildStatus{Name: str(r[0]), Node: str(r[1]), SpecUID: str(r[2]), ObservedGeneration: corrosion.AsInt(r[3]),
		Phase: str(r[4]), Digest: str(r[5]), Message: str(r[6]), UpdatedAt: fromMillis(r[8])}
	what := "build status " + st.Name + " on " + st.Node
	if err := unmarshalColumn(r[7], &st.Conditions, what+": conditions"); err != nil {
		return st, err
	}
	return st, unmarshalColumn(r[9], &st.Detail, what+": detail")
}

func decodePresence(r row) (api.ImagePresence, error) {
	p := api.ImagePresence{Image: str(r[0]), Node: str(r[1]), SpecUID: str(r[2]), ObservedGeneration: corrosion.AsInt(r[3]),
		State: str(r[4]), Digest: str(r[5]), Error: str(r[6]), UpdatedAt: fromMillis(r[7])}
	return p, unmarshalColumn(r[8], &p.Detail, "presence of "+p.Image+" on "+p.Node+": detail")
}

func decodeResolution(r row) (api.ImageResolution, error) {
	return api.ImageResolution{Image: str(r[0]), Node: str(r[1]), SpecUID: str(r[2]), ObservedGeneration: corrosion.AsInt(r[3]),
		Ref: str(r[4]), Digest: str(r[5]), Error: str(r[6]), UpdatedAt: fromMillis(r[7])}, nil
}

// RegistrySpecRow is the desired registry with its generation.
type RegistrySpecRow struct {
	Name       string
	Spec       api.RegistrySpec
	Generation int64
}

func decodeRegistrySpec(r row) (RegistrySpecRow, error) {
	out := RegistrySpecRow{Name: str(r[0]), Generation: corrosion.AsInt(r[1])}
	return out, unmarshalColumn(r[2], &out.Spec, "registry spec")
}

func decodeRegistryStatus(r row) (api.RegistryStatus, error) {
	st := api.RegistryStatus{Node: str(r[0]), ObservedGeneration: corrosion.AsInt(r[1]), Address: str(r[2]), UpdatedAt: fromMillis(r[4])}
	what := "registry status of " + st.Node
	if err := unmarshalColumn(r[3], &st.Conditions, what+": conditions"); err != nil {
		return st, err
	}
	return st, unmarshalColumn(r[5], &st.Detail, what+": detail")
}

// credentialRow is the registry's generated credential, by row name.
type credentialRow struct {
	Name string
	api.Credential
}

func decodeCredential(r row) (credentialRow, error) {
	return credentialRow{Name: str(r[0]), Credential: api.Credential{Username: str(r[1]), Password: str(r[2])}}, nil
}
