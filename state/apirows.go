package state

import (
	"context"
	"fmt"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state/corrosion"
)

// apiRows reads rows from the state API: one request per call.
type apiRows struct{ c *corrosion.Client }

// queryRows runs a select, narrowed to rows whose key column equals key
// when key is set, ordered by order, and decodes every row.
func queryRows[T any](ctx context.Context, c *corrosion.Client, what, query, keyColumn, key, order string, decode func(row) (T, error)) ([]T, error) {
	stmt := corrosion.Stmt(query + " ORDER BY " + order)
	if key != "" {
		stmt = corrosion.Stmt(query+" WHERE "+keyColumn+" = ? ORDER BY "+order, key)
	}
	_, rows, err := c.QueryAll(ctx, stmt)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	out := make([]T, 0, len(rows))
	for _, r := range rows {
		v, err := decode(r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (a apiRows) buildSpecs(ctx context.Context, name string) ([]BuildRecord, error) {
	return queryRows(ctx, a.c, "build specs", fmt.Sprintf(specSelect, "build_specs"), "name", name, "name", decodeBuildSpec)
}

func (a apiRows) imageSpecs(ctx context.Context, name string) ([]ImageRecord, error) {
	return queryRows(ctx, a.c, "image specs", fmt.Sprintf(specSelect, "image_specs"), "name", name, "name", decodeImageSpec)
}

func (a apiRows) buildStatuses(ctx context.Context, name string) ([]api.BuildStatus, error) {
	return queryRows(ctx, a.c, "build status", buildStatusSelect, "name", name, "name, node", decodeBuildStatus)
}

func (a apiRows) presences(ctx context.Context, image string) ([]api.ImagePresence, error) {
	return queryRows(ctx, a.c, "image presence", presenceSelect, "image", image, "image, node", decodePresence)
}

func (a apiRows) resolutions(ctx context.Context, image string) ([]api.ImageResolution, error) {
	return queryRows(ctx, a.c, "image resolutions", resolutionSelect, "image", image, "image, node", decodeResolution)
}

func (a apiRows) nodes(ctx context.Context, name string) ([]api.Node, error) {
	return queryRows(ctx, a.c, "nodes", nodeSelect, "name", name, "name", decodeNode)
}

func (a apiRows) registryStatuses(ctx context.Context) ([]api.RegistryStatus, error) {
	return queryRows(ctx, a.c, "registry status", registryStatusSelect, "", "", "node", decodeRegistryStatus)
}

func (a apiRows) registrySpec(ctx context.Context) (RegistrySpecRow, bool, error) {
	rows, err := queryRows(ctx, a.c, "registry spec", registrySpecSelect, "name", registrySpecName, "name", decodeRegistrySpec)
	if err != nil || len(rows) == 0 {
		return RegistrySpecRow{}, false, err
	}
	return rows[0], true, nil
}

func (a apiRows) registryCredential(ctx context.Context) (api.Credential, bool, error) {
	rows, err := queryRows(ctx, a.c, "registry credential", registryCredentialSelect, "name", registrySpecName, "name", decodeCredential)
	if err != nil || len(rows) == 0 {
		return api.Credential{}, false, err
	}
	return rows[0].Credential, true, nil
}
