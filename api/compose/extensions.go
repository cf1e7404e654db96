package compose

import (
	"fmt"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// serviceKeys are the extension keys uc reads on a service.
var serviceKeys = []string{machinesKey, pullCredentialKey, refreshKey, builderKey, keepBuildsKey, rebuildOnBaseKey, cacheScopeKey, followKey, gitCredentialKey, pushKey, pushCredentialKey, buildTypeKey, staticKey, buildOnKey}

// ucPrefix marks extension keys that belong to uc: an unknown one is a
// typo that would otherwise be ignored in silence.
const ucPrefix = "x-uc-"

// checkServiceExtensions refuses unknown x-uc-* keys, on the service and
// under its build:, with the closest known key.
func checkServiceExtensions(s types.ServiceConfig, file, field string) error {
	for _, key := range sortedKeys(s.Extensions) {
		if strings.HasPrefix(key, ucPrefix) && !slices.Contains(serviceKeys, key) {
			return fmt.Errorf("%s: %s.%s: unknown uc key%s", file, field, key, didYouMean(key))
		}
	}
	if s.Build == nil {
		return nil
	}
	for _, key := range sortedKeys(s.Build.Extensions) {
		if !strings.HasPrefix(key, ucPrefix) {
			continue
		}
		if slices.Contains(serviceKeys, key) {
			return fmt.Errorf("%s: %s.build.%s: uc reads %s on the service, not under build: (move it to %s.%s)", file, field, key, key, field, key)
		}
		return fmt.Errorf("%s: %s.build.%s: unknown uc key%s", file, field, key, didYouMean(key))
	}
	return nil
}

// extensionWarnings names x-* keys that are one or two typos away from a
// key uc reads: Compose allows any x-* key, so these are warnings only.
func extensionWarnings(s types.ServiceConfig, file, field string) []string {
	var out []string
	for _, key := range sortedKeys(s.Extensions) {
		if strings.HasPrefix(key, ucPrefix) || slices.Contains(serviceKeys, key) {
			continue
		}
		if hint := didYouMean(key); hint != "" {
			out = append(out, fmt.Sprintf("%s: %s.%s: uc ignores this key%s", file, field, key, hint))
		}
	}
	return out
}

// Keys uc reads at the top of the file.
const (
	// allowWritersKey lets other projects build into this project's
	// repositories.
	allowWritersKey = "x-uc-allow-writers"
	// trustedScopesKey names the cache scopes that write the shared cache.
	trustedScopesKey = "x-uc-trusted-cache-scopes"
)

// topLevel is what uc reads at the top of the file.
type topLevel struct {
	allowWriters  []string
	trustedScopes []string // default: main
}

// checkTopLevelExtensions refuses x-uc-* keys at the top of the file that
// uc does not read, and returns those it does.
func checkTopLevelExtensions(ext types.Extensions, file string) (topLevel, error) {
	top := topLevel{trustedScopes: []string{"main"}}
	for _, key := range sortedKeys(ext) {
		var err error
		switch {
		case key == allowWritersKey:
			top.allowWriters, err = nameList(ext[key])
		case key == trustedScopesKey:
			top.trustedScopes, err = nameList(ext[key])
		case strings.HasPrefix(key, ucPrefix):
			return top, fmt.Errorf("%s: %s: unknown uc key (uc reads %s and %s at the top and %s on services)", file, key, allowWritersKey, trustedScopesKey, strings.Join(serviceKeys, ", "))
		}
		if err != nil {
			return top, fmt.Errorf("%s: %s: %v", file, key, err)
		}
	}
	return top, nil
}

// nameList reads a list of non-empty names, sorted and without repeats.
func nameList(raw any) ([]string, error) {
	list, ok := raw.([]any)
	var out []string
	for _, v := range list {
		name, isString := v.(string)
		if !isString || name == "" {
			ok = false
			break
		}
		out = append(out, name)
	}
	if !ok {
		return nil, fmt.Errorf("want a list of names (got %v)", raw)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// didYouMean names the known key closest to key, if it is close enough to
// be a typo (at most a third of its letters differ).
func didYouMean(key string) string {
	best, bestDist := "", len(key)/3+1
	for _, k := range serviceKeys {
		if d := editDistance(key, k); d < bestDist && d > 0 {
			best, bestDist = k, d
		}
	}
	if best == "" {
		if strings.HasPrefix(key, ucPrefix) {
			return " (uc reads " + strings.Join(serviceKeys, ", ") + ")"
		}
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
