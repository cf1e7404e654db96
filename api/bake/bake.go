// Package bake reads Docker Bake files (HCL or JSON) into uc specs. The
// HCL is evaluated by Bake's own engine (buildx's bake/hclparser:
// variables overridable from the environment, the standard functions,
// user function blocks, matrix and name templates), so a file means what
// `docker buildx bake` makes of it. Targets, groups and inherits are
// resolved here, and each target becomes one build, translated through
// the Compose path (api/compose) so that both inputs share every check:
// references, contexts, the build graph, names.
package bake

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/docker/buildx/bake/hclparser"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// DefaultFiles are the files Bake reads when none is named, in its order:
// later files override earlier ones.
var DefaultFiles = []string{"docker-bake.json", "docker-bake.hcl", "docker-bake.override.json", "docker-bake.override.hcl"}

// Found lists the default Bake files present in dir.
func Found(dir string) []string {
	var out []string
	for _, f := range DefaultFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			out = append(out, filepath.Join(dir, f))
		}
	}
	return out
}

// IsBakeFile reports whether a file named on the command line is a Bake
// file rather than a Compose file: .hcl, or a JSON file named like Bake's.
func IsBakeFile(name string) bool {
	base := filepath.Base(name)
	return strings.HasSuffix(base, ".hcl") || strings.HasPrefix(base, "docker-bake") && strings.HasSuffix(base, ".json")
}

// config is what a Bake file declares.
type config struct {
	Groups  []*group  `hcl:"group,block" cty:"group"`
	Targets []*target `hcl:"target,block" cty:"target"`
}

type group struct {
	Name        string   `hcl:"name,label" cty:"name"`
	Description string   `hcl:"description,optional" cty:"description"`
	Targets     []string `hcl:"targets" cty:"targets"`
}

// target holds the attributes uc reads. Pointers and nil maps tell an
// attribute that is unset (inherited) from one set empty.
type target struct {
	Name             string             `hcl:"name,label" cty:"name"`
	Description      string             `hcl:"description,optional" cty:"description"`
	Inherits         []string           `hcl:"inherits,optional" cty:"inherits"`
	Context          *string            `hcl:"context,optional" cty:"context"`
	Contexts         map[string]string  `hcl:"contexts,optional" cty:"contexts"`
	Dockerfile       *string            `hcl:"dockerfile,optional" cty:"dockerfile"`
	DockerfileInline *string            `hcl:"dockerfile-inline,optional" cty:"dockerfile-inline"`
	Args             map[string]*string `hcl:"args,optional" cty:"args"`
	Labels           map[string]*string `hcl:"labels,optional" cty:"labels"`
	Tags             []string           `hcl:"tags,optional" cty:"tags"`
	CacheFrom        []string           `hcl:"cache-from,optional" cty:"cache-from"`
	CacheTo          []string           `hcl:"cache-to,optional" cty:"cache-to"`
	Target           *string            `hcl:"target,optional" cty:"target"`
	Secrets          []string           `hcl:"secret,optional" cty:"secret"`
	SSH              []string           `hcl:"ssh,optional" cty:"ssh"`
	Platforms        []string           `hcl:"platforms,optional" cty:"platforms"`
	Outputs          []string           `hcl:"output,optional" cty:"output"`
	Pull             *bool              `hcl:"pull,optional" cty:"pull"`
	NoCache          *bool              `hcl:"no-cache,optional" cty:"no-cache"`
	NoCacheFilter    []string           `hcl:"no-cache-filter,optional" cty:"no-cache-filter"`
	Network          *string            `hcl:"network,optional" cty:"network"`
	ShmSize          *string            `hcl:"shm-size,optional" cty:"shm-size"`
	Ulimits          []string           `hcl:"ulimits,optional" cty:"ulimits"`
	ExtraHosts       map[string]*string `hcl:"extra-hosts,optional" cty:"extra-hosts"`
	Annotations      []string           `hcl:"annotations,optional" cty:"annotations"`
	Attest           []string           `hcl:"attest,optional" cty:"attest"`
	Entitlements     []string           `hcl:"entitlements,optional" cty:"entitlements"`
}

// maxMatrix bounds one target's variants: each is a build on the cluster.
const maxMatrix = 1000

// GetEvalContexts expands a target's matrix: one evaluation context per
// combination of its values, each variable bound to one value.
func (t *target) GetEvalContexts(base *hcl.EvalContext, block *hcl.Block, loadDeps func(hcl.Expression) hcl.Diagnostics) ([]*hcl.EvalContext, error) {
	attr, err := blockAttr(block, "matrix")
	if err != nil || attr == nil {
		return []*hcl.EvalContext{base}, err
	}
	if diags := loadDeps(attr.Expr); diags.HasErrors() {
		return nil, diags
	}
	value, diags := attr.Expr.Value(base)
	if diags.HasErrors() {
		return nil, diags
	}
	if !value.Type().IsMapType() && !value.Type().IsObjectType() {
		return nil, fmt.Errorf("target %q: matrix must be a map of lists", block.Labels[0])
	}
	combos := []map[string]cty.Value{{}}
	for _, key := range slices.Sorted(maps.Keys(value.AsValueMap())) {
		values := value.AsValueMap()[key]
		if !values.CanIterateElements() {
			return nil, fmt.Errorf("target %q: matrix.%s must be a list", block.Labels[0], key)
		}
		if n := len(combos) * values.LengthInt(); n > maxMatrix {
			return nil, fmt.Errorf("target %q: a matrix of %d or more variants; uc builds at most %d per target", block.Labels[0], n, maxMatrix)
		}
		var next []map[string]cty.Value
		for _, combo := range combos {
			for _, v := range values.AsValueSlice() {
				c := maps.Clone(combo)
				c[key] = v
				next = append(next, c)
			}
		}
		combos = next
	}
	out := make([]*hcl.EvalContext, len(combos))
	for i, combo := range combos {
		out[i] = base.NewChild()
		out[i].Variables = combo
	}
	return out, nil
}

// GetName is a target's label, or, with a matrix, its name template
// evaluated for one combination.
func (t *target) GetName(ectx *hcl.EvalContext, block *hcl.Block, loadDeps func(hcl.Expression) hcl.Diagnostics) (string, error) {
	attr, err := blockAttr(block, "name")
	if err != nil || attr == nil {
		return block.Labels[0], err
	}
	if matrix, _ := blockAttr(block, "matrix"); matrix == nil {
		return "", fmt.Errorf("target %q: name needs a matrix", block.Labels[0])
	}
	if diags := loadDeps(attr.Expr); diags.HasErrors() {
		return "", diags
	}
	value, diags := attr.Expr.Value(ectx)
	if diags.HasErrors() {
		return "", diags
	}
	value, err = convert.Convert(value, cty.String)
	if err != nil {
		return "", fmt.Errorf("target %q: name: %w", block.Labels[0], err)
	}
	return value.AsString(), nil
}

// GetEvalContexts refuses a matrix on a group, as Bake does.
func (g *group) GetEvalContexts(base *hcl.EvalContext, block *hcl.Block, _ func(hcl.Expression) hcl.Diagnostics) ([]*hcl.EvalContext, error) {
	if attr, err := blockAttr(block, "matrix"); err != nil || attr != nil {
		return nil, fmt.Errorf("group %q: a matrix is for targets only", block.Labels[0])
	}
	return []*hcl.EvalContext{base}, nil
}

func blockAttr(block *hcl.Block, name string) (*hcl.Attribute, error) {
	content, _, diags := block.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: name}}})
	if diags.HasErrors() {
		return nil, diags
	}
	return content.Attributes[name], nil
}

// parse evaluates the files as one, later files overriding earlier ones.
// Variables come from lookup (the environment) over their defaults.
func parse(files []string, lookup func(string) (string, bool)) (*config, error) {
	var parsed []*hcl.File
	p := hclparse.NewParser()
	for _, name := range files {
		body, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		var f *hcl.File
		var diags hcl.Diagnostics
		if strings.HasSuffix(name, ".json") {
			f, diags = p.ParseJSON(body, name)
		} else {
			f, diags = p.ParseHCL(body, name)
		}
		if diags.HasErrors() {
			return nil, diags
		}
		parsed = append(parsed, f)
	}
	var c config
	meta, diags := hclparser.Parse(hclparser.MergeFiles(parsed), hclparser.Opt{LookupVar: lookup, ValidateLabel: validName}, &c)
	if diags.HasErrors() {
		return nil, diags
	}
	// A matrix target's own name selects all of its variants, as in Bake.
	for old, names := range meta.Renamed["target"] {
		if len(names) != 1 || names[0] != old {
			c.Groups = append(c.Groups, &group{Name: old, Targets: slices.Compact(slices.Sorted(slices.Values(names)))})
		}
	}
	return &c, nil
}

// validName accepts Bake's target names: letters, digits, '_' and '-'.
func validName(name string) error {
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("%q: only letters, digits, '_' and '-' are allowed", name)
		}
	}
	return nil
}
