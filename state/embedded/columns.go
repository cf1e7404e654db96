package embedded

import "context"

// SchemaTables checks a schema script against Corrosion's rules and returns
// each table's columns in declaration order. ucd uses it to say which tables
// or columns a real Corrosion agent is missing.
func SchemaTables(ctx context.Context, script string) (map[string][]string, error) {
	plan, err := planSchema(ctx, script)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(plan.tables))
	for _, t := range plan.tables {
		for _, c := range t.columns {
			out[t.name] = append(out[t.name], c.name)
		}
	}
	return out, nil
}
