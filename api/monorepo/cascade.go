package monorepo

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ucplane/uc/api"
)

// Bump is one context whose patch version a cascade raises.
type Bump struct {
	Context Context
	To      string
	// Because names the changed ancestor it descends from.
	Because string
}

func (b Bump) String() string {
	return fmt.Sprintf("%s: %s → %s (descends from %s, which changed)", b.Context.Base(), b.Context.Version, b.To, b.Because)
}

// Cascade plans the version bumps after some contexts changed: every
// descendant of a changed context (through FROM edges) whose version is
// still the one last applied gets its patch version raised. current is
// the monorepo as it is now (Load); applied maps each build's name to its
// spec as last applied. A context whose files differ from what was
// applied, or that was never applied, has changed.
func Cascade(current *api.Project, contexts []Context, applied map[string]api.BuildSpec) []Bump {
	byBuild := map[string]Context{}
	for _, c := range contexts {
		byBuild[current.Name+"/"+c.Name] = c
	}
	children := map[string][]string{}
	changed := map[string]bool{}
	for _, b := range current.Builds {
		for _, dep := range b.DependsOn() {
			children[dep] = append(children[dep], b.Name)
		}
		if old, ok := applied[b.Name]; !ok || old.ContextDigest != b.ContextDigest {
			changed[b.Name] = true
		}
	}
	var bumps []Bump
	seen := map[string]bool{}
	var visit func(name, because string)
	visit = func(name, because string) {
		for _, child := range children[name] {
			if seen[child] {
				continue
			}
			seen[child] = true
			c := byBuild[child]
			if old, ok := applied[child]; ok && versionOf(old.Image) == c.Version {
				bumps = append(bumps, Bump{Context: c, To: nextPatch(c.Version), Because: byBuild[because].Base()})
			}
			visit(child, because)
		}
	}
	for _, c := range contexts { // in prefix order, so a bump names the nearest changed ancestor first
		if name := current.Name + "/" + c.Name; changed[name] {
			visit(name, name)
		}
	}
	slices.SortFunc(bumps, func(a, b Bump) int { return strings.Compare(a.Context.Base(), b.Context.Base()) })
	return bumps
}

func versionOf(image string) string {
	_, v, _ := strings.Cut(image, ":")
	return v
}

func nextPatch(v string) string {
	parts := strings.Split(v, ".")
	n, _ := strconv.Atoi(parts[2])
	return parts[0] + "." + parts[1] + "." + strconv.Itoa(n+1)
}

var versionEntry = regexp.MustCompile(`(:version\s*")([0-9]+\.[0-9]+\.[0-9]+)(")`)

// Write raises the version in the context's info.edn, leaving the rest of
// the file as it is.
func (b Bump) Write() error {
	path := filepath.Join(b.Context.Dir, "info.edn")
	body, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	m := versionEntry.FindSubmatchIndex(body)
	if m == nil || string(body[m[4]:m[5]]) != b.Context.Version {
		return fmt.Errorf("%s: :version is no longer %q; not changed", path, b.Context.Version)
	}
	out := append(append(append([]byte{}, body[:m[4]]...), b.To...), body[m[5]:]...)
	return os.WriteFile(path, out, 0o644)
}
