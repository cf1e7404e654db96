package api

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/distribution/reference"
)

// separatorRun is a run of the characters a Compose service name may hold
// besides letters and digits.
var separatorRun = regexp.MustCompile(`[._-]+`)

// validSeparator is what a repository path component allows between
// letters and digits (distribution's reference grammar).
var validSeparator = regexp.MustCompile(`^(?:[._]|__|-+)$`)

// RepositoryComponent maps a Compose project or service name onto a
// repository path component, which the registry requires to be lower-case
// letters and digits joined by ".", "_", "__" or dashes. The mapping is
// deterministic and documented in the README: letters are lower-cased, a
// run of separators the registry refuses ("..", "._") becomes one "-", and
// separators at either end are dropped. "Web" becomes "web", "api..v2"
// becomes "api-v2".
func RepositoryComponent(name string) string {
	lower := strings.Trim(strings.ToLower(name), "._-")
	return separatorRun.ReplaceAllStringFunc(lower, func(sep string) string {
		if validSeparator.MatchString(sep) {
			return sep
		}
		return "-"
	})
}

// DefaultImage is the repository a build of project/service is stored
// under when the service names no image.
func DefaultImage(project, service string) string {
	return RepositoryComponent(project) + "/" + RepositoryComponent(service)
}

// ContextRepository is where uc apply ships the build's local contexts in
// the internal registry.
func (b BuildSpec) ContextRepository() string {
	return "uc-contexts/" + DefaultImage(b.Project, b.Service)
}

// RegistryHost is the registry host a reference names explicitly
// (ghcr.io/me/app:v1, localhost:5000/app), with docker's rule: a first
// path component with a dot or a port, or localhost. "" for a name
// without one (me/app:v1), which uc stores in its internal registry.
func RegistryHost(ref string) string {
	first, _, ok := strings.Cut(ref, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first
	}
	return ""
}

// CheckInternalTag refuses an extra tag that names another registry:
// uc would store it in its internal registry under the name's path, and
// the image would silently not be where the tag says.
func CheckInternalTag(tag string) error {
	host := RegistryHost(tag)
	if host == "" {
		return nil
	}
	named, err := reference.ParseNormalizedNamed(tag)
	if err != nil {
		return err
	}
	return fmt.Errorf("%s names the registry %s: tags name the image in uc's internal registry (use %s), and x-uc-push: [%s] publishes it to %s",
		tag, host, strings.TrimPrefix(reference.FamiliarString(named), host+"/"), tag, host)
}

// CheckReference refuses what the registry or the engine would refuse, in
// distribution's grammar, with a hint for the usual cause of an empty tag:
// an unset variable.
func CheckReference(ref string) error {
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		hint := ""
		if strings.HasSuffix(ref, ":") || strings.HasSuffix(ref, "@") || strings.Contains(ref, "/:") || strings.HasPrefix(ref, ":") {
			hint = " (an empty tag or name: is a variable unset?)"
		}
		if strings.TrimSpace(ref) != ref || strings.ContainsAny(ref, " \t") {
			hint = " (it holds whitespace)"
		}
		return fmt.Errorf("%q is not a valid image reference: %v%s", ref, err, hint)
	}
	return nil
}

// InternalName is the name an image gets in the internal registry, where
// the domain is dropped: path and tag ("latest" when none).
func InternalName(image string) (string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", fmt.Errorf("image name %q: %w", image, err)
	}
	tag := "latest"
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	return reference.Path(named) + ":" + tag, nil
}

// InternalRef names image in the internal registry at registry.
func InternalRef(registry, image string) (string, error) {
	name, err := InternalName(image)
	if err != nil {
		return "", err
	}
	return registry + "/" + name, nil
}

// DefaultCacheRef is the registry cache a build of image reads and
// writes unless it names its own: kept apart from images, per image.
func DefaultCacheRef(registry, image string) (string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", fmt.Errorf("image name %q: %w", image, err)
	}
	return registry + "/uc-cache/" + reference.Path(named) + ":buildcache", nil
}

// CacheRefs are every registry cache reference the build reads or writes
// in the internal registry at registry: the default one and its
// cache_from and cache_to. The build controller uses them; GC keeps them.
func (b BuildSpec) CacheRefs(registry string) ([]string, error) {
	def, err := DefaultCacheRef(registry, b.Image)
	if err != nil {
		return nil, err
	}
	out := []string{def}
	if scoped, ok := b.ScopedCacheRef(def); ok {
		out = append(out, scoped)
	}
	for _, name := range append(slices.Clone(b.CacheFrom), b.CacheTo...) {
		ref, err := InternalRef(registry, name)
		if err != nil {
			return nil, err
		}
		out = append(out, ref)
	}
	return out, nil
}

// Makes reports whether image, as a Dockerfile's FROM or COPY --from names
// it, is an image this build makes: its image: or one of its tags, by
// repository and tag ("latest" when none), named either as the Compose
// file names it or through a loopback registry (the stable address every
// node reaches the internal registry at). A name pinned by digest is not.
func (b BuildSpec) Makes(image string) bool {
	want, ok := FromImage(image)
	return ok && b.Products().Include(want)
}

// FromImage parses an image as a FROM line names it; ok is false when no
// build can make it: unparseable, or pinned by digest (a digest names one
// image for good, not a build's next one).
func FromImage(image string) (reference.Named, bool) {
	want, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return nil, false
	}
	_, pinned := want.(reference.Digested)
	return want, !pinned
}

// Products are the names a build makes, its image: and tags, parsed once
// so that many FROM lines can be matched against many builds.
type Products []reference.Named

func (b BuildSpec) Products() Products {
	var out Products
	for _, name := range append([]string{b.Image}, b.Tags...) {
		if have, err := reference.ParseNormalizedNamed(name); err == nil {
			out = append(out, have)
		}
	}
	return out
}

// Include reports whether want (see FromImage) is one of the products.
func (p Products) Include(want reference.Named) bool {
	return slices.ContainsFunc(p, func(have reference.Named) bool { return sameImage(want, have) })
}

func sameImage(ref, made reference.Named) bool {
	if tagOf(ref) != tagOf(made) {
		return false
	}
	if reference.Domain(ref) == reference.Domain(made) {
		return reference.Path(ref) == reference.Path(made)
	}
	// Through a loopback registry, "jq" is named as written: 127.0.0.1:5454/jq,
	// not …/library/jq.
	familiar := strings.TrimPrefix(reference.Path(made), "library/")
	if reference.Domain(made) != "docker.io" {
		familiar = reference.Path(made)
	}
	return isLoopbackHost(reference.Domain(ref)) && (reference.Path(ref) == reference.Path(made) || reference.Path(ref) == familiar)
}

func tagOf(n reference.Named) string {
	if t, ok := n.(reference.Tagged); ok {
		return t.Tag()
	}
	return "latest"
}

func isLoopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// Repositories are the internal registry repositories the build writes:
// its image's and its tags' (their caches live under the same names).
func (b BuildSpec) Repositories() []string {
	var out []string
	for _, name := range append([]string{b.Image}, b.Tags...) {
		if n, err := InternalName(name); err == nil {
			repo, _, _ := strings.Cut(n, ":")
			if !slices.Contains(out, repo) {
				out = append(out, repo)
			}
		}
	}
	return out
}

var notTagChar = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// ScopedCacheRef is the default cache ref of the build's cache scope, a
// tag beside the shared one (def); ok is false without a scope.
func (b BuildSpec) ScopedCacheRef(def string) (string, bool) {
	if b.CacheScope == "" {
		return "", false
	}
	tag := "buildcache-" + strings.Trim(notTagChar.ReplaceAllString(b.CacheScope, "-"), "-")
	return strings.TrimSuffix(def, ":buildcache") + ":" + tag[:min(len(tag), 128)], true
}

// CacheMountNamespace keeps an untrusted scope's RUN --mount=type=cache
// mounts apart from everyone else's (BuildKit's BUILDKIT_CACHE_MOUNT_NS);
// "" leaves them shared.
func (b BuildSpec) CacheMountNamespace() string {
	if b.CacheScope == "" || b.CacheScopeTrusted {
		return ""
	}
	return "uc/" + b.Project + "/" + b.CacheScope
}

// DockerfilePath is where the build's Dockerfile is on the applying
// machine: absolute as given, else under the context ("Dockerfile" when
// unset). It means nothing for a git context or an inline Dockerfile.
func (b BuildSpec) DockerfilePath() string {
	path := b.Dockerfile
	if path == "" {
		path = "Dockerfile"
	}
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(b.Context, path)
}
