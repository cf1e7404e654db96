package compose

import (
	"fmt"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/ucplane/uc/api"
)

// mapReferences maps what a build refers to outside its context: cache
// images, secrets and SSH keys. Secrets become references only: a value
// that would have to be stored (inline content) is refused.
func mapReferences(b *api.BuildSpec, c *types.BuildConfig, secrets types.Secrets, file, field string) error {
	var err error
	if b.CacheFrom, _, err = cacheRefs(c.CacheFrom, file, field+".cache_from"); err != nil {
		return err
	}
	if b.CacheTo, b.CacheToAttrs, err = cacheRefs(c.CacheTo, file, field+".cache_to"); err != nil {
		return err
	}
	if b.Secrets, err = secretRefs(c.Secrets, secrets, file, field+".secrets"); err != nil {
		return err
	}
	for _, k := range c.SSH {
		ref := api.SSHRef{ID: k.ID}
		if k.Path != "" {
			ref.Paths = []string{k.Path}
		}
		b.SSH = append(b.SSH, ref)
	}
	// compose-go may hand these over in map order; a stable order keeps an
	// unchanged file from looking changed.
	slices.SortFunc(b.SSH, func(a, b api.SSHRef) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(b.Secrets, func(a, b api.SecretRef) int { return strings.Compare(a.ID, b.ID) })
	b.Provenance, b.SBOM = c.Provenance, c.SBOM
	return nil
}

// cacheRefs accepts a bare image name or `type=registry,ref=NAME[,…]`;
// both name a cache image in the internal registry. The export options of
// cache_to entries are kept by name.
func cacheRefs(entries []string, file, field string) ([]string, map[string]map[string]string, error) {
	var out []string
	var attrs map[string]map[string]string
	for i, e := range entries {
		ref, opts, err := cacheRef(e)
		if err == nil {
			err = api.CheckReference(ref)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %s[%d]: %v", file, field, i, err)
		}
		out = append(out, ref)
		if len(opts) > 0 {
			if attrs == nil {
				attrs = map[string]map[string]string{}
			}
			attrs[ref] = opts
		}
	}
	return out, attrs, nil
}

// cacheExportAttrs are the registry cache exporter's options that uc passes
// on; type and ref are uc's own business.
var cacheExportAttrs = []string{"mode", "compression", "compression-level", "force-compression", "oci-mediatypes", "image-manifest", "ignore-error"}

func cacheRef(entry string) (string, map[string]string, error) {
	if !strings.Contains(entry, "=") {
		return entry, nil, nil
	}
	attrs := map[string]string{}
	for _, kv := range strings.Split(entry, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		attrs[k] = v
	}
	if t := attrs["type"]; t != "" && t != "registry" {
		return "", nil, fmt.Errorf("cache type %q is not supported: uc keeps build cache in its internal registry (use a name or type=registry,ref=NAME)", t)
	}
	ref := attrs["ref"]
	if ref == "" {
		return "", nil, fmt.Errorf("%q has no ref", entry)
	}
	if m := attrs["mode"]; m != "" && m != "min" && m != "max" {
		return "", nil, fmt.Errorf("mode=%s: want mode=min or mode=max", m)
	}
	opts := map[string]string{}
	for _, k := range cacheExportAttrs {
		if v, ok := attrs[k]; ok {
			opts[k] = v
		}
	}
	return ref, opts, nil
}

// checkTags validates each extra name a build pushes.
func checkTags(tags []string, file, field string) error {
	for i, t := range tags {
		if err := api.CheckReference(t); err != nil {
			return fmt.Errorf("%s: %s[%d]: %v", file, field, i, err)
		}
		if err := api.CheckInternalTag(t); err != nil {
			return fmt.Errorf("%s: %s[%d]: %v", file, field, i, err)
		}
	}
	return nil
}

func secretRefs(uses []types.ServiceSecretConfig, secrets types.Secrets, file, field string) ([]api.SecretRef, error) {
	var out []api.SecretRef
	for i, use := range uses {
		def, ok := secrets[use.Source]
		if !ok {
			return nil, fmt.Errorf("%s: %s[%d]: secret %q is not defined under top-level secrets", file, field, i, use.Source)
		}
		ref := api.SecretRef{ID: use.Source, File: def.File, Env: def.Environment}
		if use.Target != "" {
			ref.ID = use.Target
		}
		if ref.File == "" && ref.Env == "" {
			return nil, fmt.Errorf("%s: secrets.%s: only file and environment secrets can be used by builds: their values stay on the builder node, never in state", file, use.Source)
		}
		out = append(out, ref)
	}
	return out, nil
}
