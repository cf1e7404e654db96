// Package api holds uc's spec and status types and the pure rules over
// them: names, validation, placement, need, ownership (rendezvous hashing)
// and node liveness. The CLI and the controllers share these rules. It
// does no I/O: translating Compose files into specs is package
// api/compose, and reading build contexts is package api/buildcontext.
//
// Specs are written by users (uc apply, GitOps jobs); status is written by
// exactly one node per row. Both are stored as JSON in TEXT columns of the
// state schema (see state/schema.sql).
package api

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/containerd/platforms"
)

// BuildSpec is the desired build of one Compose service, named
// "<project>/<service>".
type BuildSpec struct {
	Name    string `json:"name" yaml:"name"`
	Project string `json:"project" yaml:"project"`
	Service string `json:"service" yaml:"service"`
	// Image is the repository the result is stored under in the internal
	// registry, e.g. "hello/web". It comes from the service's `image:` when set.
	Image string `json:"image" yaml:"image"`
	// Context is an absolute local directory or a git URL.
	Context string `json:"context" yaml:"context"`
	// ContextRef is where `uc apply` shipped the local context in the
	// internal registry (registry/repo@sha256:…); builders fetch it from
	// there instead of reading Context.
	ContextRef string `json:"context_ref,omitempty" yaml:"context_ref,omitempty"`
	// ContextDigest hashes a local context's files (see ContextDigest), so
	// that editing a source file changes the spec and rebuilds it.
	ContextDigest string            `json:"context_digest,omitempty" yaml:"context_digest,omitempty"`
	Dockerfile    string            `json:"dockerfile,omitempty" yaml:"dockerfile,omitempty"`
	Args          map[string]string `json:"args,omitempty" yaml:"args,omitempty"`
	Target        string            `json:"target,omitempty" yaml:"target,omitempty"`
	Labels        map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	// DockerfileInline is the Dockerfile itself; it wins over Dockerfile.
	DockerfileInline string `json:"dockerfile_inline,omitempty" yaml:"dockerfile_inline,omitempty"`
	// Tags are extra names for the image in the internal registry.
	Tags []string `json:"tags,omitempty" yaml:"tags,omitempty"`
	// NoCache ignores the build cache for all stages, NoCacheFilter for the
	// named ones only.
	NoCache       bool     `json:"no_cache,omitempty" yaml:"no_cache,omitempty"`
	NoCacheFilter []string `json:"no_cache_filter,omitempty" yaml:"no_cache_filter,omitempty"`
	// Pull always resolves base images from their registry.
	Pull bool `json:"pull,omitempty" yaml:"pull,omitempty"`
	// ExtraHosts are "host=ip" entries for RUN steps' /etc/hosts, sorted.
	ExtraHosts []string `json:"extra_hosts,omitempty" yaml:"extra_hosts,omitempty"`
	// ShmSize is /dev/shm's size for RUN steps, in bytes.
	ShmSize int64 `json:"shm_size,omitempty" yaml:"shm_size,omitempty"`
	// Ulimits are "name=soft:hard" entries for RUN steps, sorted.
	Ulimits []string `json:"ulimits,omitempty" yaml:"ulimits,omitempty"`
	// Network is the RUN steps' network: "" (default), "host" or "none".
	Network   string   `json:"network,omitempty" yaml:"network,omitempty"`
	Platforms []string `json:"platforms,omitempty" yaml:"platforms,omitempty"`
	// Entitlements the build needs (network.host, security.insecure); a
	// node grants only those its configuration allows.
	Entitlements []string `json:"entitlements,omitempty" yaml:"entitlements,omitempty"`
	// CacheFrom and CacheTo are image names in the internal registry used
	// as registry cache, besides the cluster-wide default cache.
	CacheFrom []string `json:"cache_from,omitempty" yaml:"cache_from,omitempty"`
	CacheTo   []string `json:"cache_to,omitempty" yaml:"cache_to,omitempty"`
	// CacheToAttrs are the export options a cache_to entry set, by its
	// name (mode=min, compression=zstd, …); uc exports mode=max otherwise.
	CacheToAttrs map[string]map[string]string `json:"cache_to_attrs,omitempty" yaml:"cache_to_attrs,omitempty"`
	// Secrets are references, resolved on the builder node; their values
	// are never stored.
	Secrets []SecretRef `json:"secrets,omitempty" yaml:"secrets,omitempty"`
	SSH     []SSHRef    `json:"ssh,omitempty" yaml:"ssh,omitempty"`
	// Provenance and SBOM are attestation settings: "" (off), "true", or
	// BuildKit's options such as "mode=max".
	Provenance string `json:"provenance,omitempty" yaml:"provenance,omitempty"`
	SBOM       string `json:"sbom,omitempty" yaml:"sbom,omitempty"`
	// AdditionalContexts are named build contexts: an absolute local path,
	// "docker-image://REF", or "service:NAME", which is the result of the
	// BuildSpec NAME ("<project>/<service>"), fed in by digest.
	AdditionalContexts map[string]string `json:"additional_contexts,omitempty" yaml:"additional_contexts,omitempty"`
	// Builder narrows which nodes may build it (x-uc-builder).
	Builder BuilderSelector `json:"builder,omitzero" yaml:"builder,omitempty"`
	// KeepBuilds is how many of the last successful builds' images the
	// registry's GC keeps (x-uc-keep-builds); 0 means DefaultKeepBuilds.
	KeepBuilds int `json:"keep_builds,omitempty" yaml:"keep_builds,omitempty"`
	// RebuildOnBase, a duration (x-uc-rebuild-on-base), has the build's
	// owner resolve its external base images that often and rebuild when
	// one moved to a new digest, as kpack and OpenShift's image-change
	// triggers do. Internal bases always follow, through the graph.
	RebuildOnBase string `json:"rebuild_on_base,omitempty" yaml:"rebuild_on_base,omitempty"`
	// AllowWriters are the other projects that may build into this
	// build's repositories (x-uc-allow-writers, at the top of the file).
	AllowWriters []string `json:"allow_writers,omitempty" yaml:"allow_writers,omitempty"`
	// CacheScope (x-uc-cache-scope, e.g. "repo/branch") keeps the build's
	// registry cache and cache mounts apart: it reads the shared cache and
	// its own, and writes only its own, unless CacheScopeTrusted (the scope
	// is in x-uc-trusted-cache-scopes), when it writes the shared cache.
	CacheScope        string `json:"cache_scope,omitempty" yaml:"cache_scope,omitempty"`
	CacheScopeTrusted bool   `json:"cache_scope_trusted,omitempty" yaml:"cache_scope_trusted,omitempty"`
	// Follow, a duration (x-uc-follow), has the build's owner resolve its
	// git context's branch that often and build every new commit, as
	// Flux's GitRepository does. Context then keeps the branch, not a
	// commit; the status records the commit built (Detail.Commit).
	Follow string `json:"follow,omitempty" yaml:"follow,omitempty"`
	// GitCredential is a reference to the credential of a private git
	// context (x-uc-git-credential): env:VAR (a token) or ssh:AGENT-OR-KEY,
	// read on the builder node; never its value.
	GitCredential string `json:"git_credential,omitempty" yaml:"git_credential,omitempty"`
	// Push are external references the image is copied to, by digest,
	// after each successful build (x-uc-push).
	Push []string `json:"push,omitempty" yaml:"push,omitempty"`
	// PushCredential is a reference to the external registries'
	// credential (x-uc-push-credential): env:VAR or docker-config:PATH.
	PushCredential string `json:"push_credential,omitempty" yaml:"push_credential,omitempty"`
	// BuildType is how the Dockerfile came to be (x-uc-build-type): ""
	// or "dockerfile" (the context's), or "static" (generated from Static
	// into DockerfileInline, shown in full by describe and --dry-run).
	BuildType string `json:"build_type,omitempty" yaml:"build_type,omitempty"`
	// BuildOn is where the image is built (x-uc-build, uc apply --build):
	// "" (the cluster's builders) or BuildOnLocal (uc build, off the
	// cluster; the cluster only waits for its result and pre-pulls it).
	BuildOn string       `json:"build_on,omitempty" yaml:"build_on,omitempty"`
	Static  *StaticBuild `json:"static,omitempty" yaml:"static,omitempty"`
}

// BuildOnLocal marks a build made off the cluster by uc build.
const BuildOnLocal = "local"

// LocalBuilderPrefix starts the node name that uc build records its
// builds' status rows under ("local:laptop"): rows no cluster node owns.
const LocalBuilderPrefix = "local:"

// StaticBuild is a static site's build (x-uc-build-type: static): a
// builder image runs Command over the context, and a server image serves
// the Output directory it made from Root.
type StaticBuild struct {
	Builder string `json:"builder" yaml:"builder"`
	Command string `json:"command" yaml:"command"`
	Output  string `json:"output" yaml:"output"`
	Server  string `json:"server" yaml:"server"`
	Root    string `json:"root" yaml:"root"`
}

// BuilderSelector picks builder nodes by name or by labels; empty means
// any eligible node.
type BuilderSelector struct {
	Node   string            `json:"node,omitempty" yaml:"node,omitempty"`
	Labels map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
}

// Matches reports whether node n may build under this selector.
func (s BuilderSelector) Matches(n Node) bool {
	if s.Node != "" && s.Node != n.Name {
		return false
	}
	for k, v := range s.Labels {
		if n.Labels[k] != v {
			return false
		}
	}
	return true
}

// String is the selector as x-uc-builder spells it.
func (s BuilderSelector) String() string {
	if s.Node != "" {
		return s.Node
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
		parts = append(parts, k+"="+s.Labels[k])
	}
	return strings.Join(parts, ",")
}

// ServiceContextPrefix marks an additional context that is another build.
const ServiceContextPrefix = "service:"

// ShippedContextPrefix marks an additional context that uc apply shipped to
// the internal registry: "uc-context://registry/repo@sha256:…".
const ShippedContextPrefix = "uc-context://"

// ShippedContexts are the registry references (registry/repo@sha256:…) of
// the contexts uc apply shipped for the build: its context, if shipped,
// and its shipped additional contexts.
func (b BuildSpec) ShippedContexts() []string {
	var refs []string
	if b.ContextRef != "" {
		refs = append(refs, b.ContextRef)
	}
	for _, v := range b.AdditionalContexts {
		if ref, ok := strings.CutPrefix(v, ShippedContextPrefix); ok {
			refs = append(refs, ref)
		}
	}
	return refs
}

// IsLocalContextPath reports whether an additional context is a path on
// the machine that ran uc apply.
func IsLocalContextPath(v string) bool {
	return !strings.HasPrefix(v, ServiceContextPrefix) && !strings.Contains(v, "://")
}

// DependsOn lists the BuildSpecs whose results this build reads.
func (b BuildSpec) DependsOn() []string {
	var out []string
	for _, v := range b.AdditionalContexts {
		if name, ok := strings.CutPrefix(v, ServiceContextPrefix); ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// SecretRef names a build secret and where the builder node reads it: a
// file path or an environment variable of the ucd process.
type SecretRef struct {
	ID   string `json:"id" yaml:"id"`
	File string `json:"file,omitempty" yaml:"file,omitempty"`
	Env  string `json:"env,omitempty" yaml:"env,omitempty"`
}

// SSHRef forwards an SSH agent socket or keys of the builder node; no
// paths means the ucd process's SSH_AUTH_SOCK.
type SSHRef struct {
	ID    string   `json:"id" yaml:"id"`
	Paths []string `json:"paths,omitempty" yaml:"paths,omitempty"`
}

// ImageSpec says which image is needed on which nodes. It names either an
// external image (Image) or the output of a BuildSpec (Build).
type ImageSpec struct {
	Name      string    `json:"name" yaml:"name"`
	Project   string    `json:"project" yaml:"project"`
	Service   string    `json:"service" yaml:"service"`
	Image     string    `json:"image,omitempty" yaml:"image,omitempty"`
	Build     string    `json:"build,omitempty" yaml:"build,omitempty"`
	Placement Placement `json:"placement" yaml:"placement"`
	// PullCredential references the credential for a private registry,
	// resolved on each node, never a secret itself: "env:VAR" (VAR holds
	// user:password) or "docker-config:PATH" (a Docker config.json).
	PullCredential string `json:"pull_credential,omitempty" yaml:"pull_credential,omitempty"`
	// RefreshEvery, a Go duration such as "15m", has the image's owner
	// resolve its tag again that often; a new digest rolls to every node.
	// Empty: resolved once per generation (and by `uc refresh images`).
	RefreshEvery string `json:"refresh_every,omitempty" yaml:"refresh_every,omitempty"`
	// Platform is the service's platform: (e.g. linux/arm64), which nodes
	// pull; empty means the engine's own.
	Platform string `json:"platform,omitempty" yaml:"platform,omitempty"`
}

// MinRefreshEvery keeps a periodic refresh from hammering a registry.
const MinRefreshEvery = 10 * time.Second

// RefreshInterval is RefreshEvery parsed; zero when unset or invalid
// (apply refuses invalid values).
func (s ImageSpec) RefreshInterval() time.Duration {
	d, err := time.ParseDuration(s.RefreshEvery)
	if err != nil || d < MinRefreshEvery {
		return 0
	}
	return d
}

// BaseFollowInterval is RebuildOnBase parsed; zero when unset or invalid
// (apply refuses invalid values).
func (b BuildSpec) BaseFollowInterval() time.Duration {
	d, err := time.ParseDuration(b.RebuildOnBase)
	if err != nil || d < MinRefreshEvery {
		return 0
	}
	return d
}

// FollowInterval is Follow parsed; zero when unset or invalid (apply
// refuses invalid values).
func (b BuildSpec) FollowInterval() time.Duration {
	d, err := time.ParseDuration(b.Follow)
	if err != nil || d < MinRefreshEvery {
		return 0
	}
	return d
}

// Follows reports whether the build follows a git branch.
func (b BuildSpec) Follows() bool { return b.FollowInterval() > 0 && IsGitContext(b.Context) }

// Pull credential reference schemes.
const (
	CredentialEnv          = "env:"
	CredentialDockerConfig = "docker-config:"
)

// CheckCredentialRef refuses anything but a reference, so that a secret
// pasted into a Compose file never reaches state.
func CheckCredentialRef(ref string) error {
	for _, scheme := range []string{CredentialEnv, CredentialDockerConfig} {
		if rest, ok := strings.CutPrefix(ref, scheme); ok {
			if rest == "" {
				return fmt.Errorf("%q names no %s", ref, strings.TrimSuffix(scheme, ":"))
			}
			return nil
		}
	}
	return fmt.Errorf("%q is not a credential reference: want env:VAR or docker-config:PATH (the secret stays on the nodes)", ref)
}

// Placement selects nodes. Nodes and Constraints are ANDed; an empty
// placement means every node.
type Placement struct {
	Nodes       []string     `json:"nodes,omitempty" yaml:"nodes,omitempty"`
	Constraints []Constraint `json:"constraints,omitempty" yaml:"constraints,omitempty"`
}

// Constraint is one Swarm-style placement constraint, e.g.
// `node.labels.zone == eu` or `node.hostname != node3`.
type Constraint struct {
	// Key is "node.hostname" or "node.labels.<name>".
	Key   string `json:"key" yaml:"key"`
	Op    string `json:"op" yaml:"op"` // "==" or "!="
	Value string `json:"value" yaml:"value"`
}

// Node states as a node reports them about itself.
const (
	NodeReady = "ready"
	NodeGone  = "gone" // shut down cleanly
)

// Node is a ucd daemon's view of itself, written only by that daemon.
type Node struct {
	Name        string            `json:"name" yaml:"name"`
	Labels      map[string]string `json:"labels" yaml:"labels"`
	State       string            `json:"state" yaml:"state"`
	Version     string            `json:"version" yaml:"version"`
	Capacity    NodeCapacity      `json:"capacity" yaml:"capacity"`
	Detail      NodeDetail        `json:"detail" yaml:"detail"`
	StartedAt   time.Time         `json:"started_at" yaml:"started_at"`
	HeartbeatAt time.Time         `json:"heartbeat_at" yaml:"heartbeat_at"`
}

// NodeDetail is what a node reports about its own upkeep.
type NodeDetail struct {
	// LastPrune is the node's last removal of images nothing places on
	// it any more (ucd --prune-after).
	LastPrune *PruneReport `json:"last_prune,omitempty" yaml:"last_prune,omitempty"`
}

// PruneReport lists what one prune removed, and what it kept because a
// container uses it.
type PruneReport struct {
	At      time.Time `json:"at" yaml:"at"`
	Removed []string  `json:"removed,omitempty" yaml:"removed,omitempty"`
	InUse   []string  `json:"in_use,omitempty" yaml:"in_use,omitempty"`
	Errors  []string  `json:"errors,omitempty" yaml:"errors,omitempty"`
}

// NodeCapacity is what a node offers to the cluster's controllers.
type NodeCapacity struct {
	// Builders lists the builder drivers the node runs, e.g. "buildkit".
	Builders []string `json:"builders,omitempty" yaml:"builders,omitempty"`
	// Platforms lists what the node's builder builds for, e.g. linux/amd64.
	Platforms []string `json:"platforms,omitempty" yaml:"platforms,omitempty"`
	// Emulated lists the platforms among Platforms that the builder runs
	// under emulation (QEMU through binfmt_misc), slower than natively.
	Emulated []string `json:"emulated,omitempty" yaml:"emulated,omitempty"`
	// Entitlements lists the build entitlements the node allows.
	Entitlements []string `json:"entitlements,omitempty" yaml:"entitlements,omitempty"`
	// Address is the IP other nodes reach this node at; services the node
	// runs on host networking (the registry) listen there.
	Address string `json:"address,omitempty" yaml:"address,omitempty"`
	// Engine says the node has a Docker Engine: it pre-pulls and may run
	// the registry container.
	Engine bool `json:"engine,omitempty" yaml:"engine,omitempty"`
	// API is the node's own HTTP address (build logs), e.g. 127.0.0.1:41234.
	API string `json:"api,omitempty" yaml:"api,omitempty"`
}

// PlatformList joins the platforms, marking emulated ones:
// "linux/amd64,linux/arm64(emulated)".
func (c NodeCapacity) PlatformList() string {
	out := make([]string, len(c.Platforms))
	for i, p := range c.Platforms {
		out[i] = p
		if slices.Contains(c.Emulated, p) {
			out[i] += "(emulated)"
		}
	}
	return strings.Join(out, ",")
}

// DefaultKeepBuilds is how many successful builds' images GC keeps per spec.
const DefaultKeepBuilds = 3

// Keep is how many successful builds' images GC keeps for this spec.
func (b BuildSpec) Keep() int {
	if b.KeepBuilds > 0 {
		return b.KeepBuilds
	}
	return DefaultKeepBuilds
}

// Allows reports whether the node grants every entitlement in want.
func (n Node) Allows(want []string) bool {
	for _, e := range want {
		if !slices.Contains(n.Capacity.Entitlements, e) {
			return false
		}
	}
	return true
}

// BuildsFor reports whether the node's builder builds every platform in
// want. A multi-platform build also needs a driver that exports one image
// for several platforms: buildkit.
func (n Node) BuildsFor(want []string) bool {
	if len(want) > 1 && !slices.Contains(n.Capacity.Builders, "buildkit") {
		return false
	}
	for _, p := range want {
		normal, err := NormalPlatform(p)
		if err != nil || !slices.Contains(n.Capacity.Platforms, normal) {
			return false
		}
	}
	return true
}

// BuildsNatively reports whether the node builds every platform in want
// without emulation.
func (n Node) BuildsNatively(want []string) bool {
	if !n.BuildsFor(want) {
		return false
	}
	for _, p := range want {
		if normal, _ := NormalPlatform(p); slices.Contains(n.Capacity.Emulated, normal) {
			return false
		}
	}
	return true
}

// NormalPlatform is a platform in the form nodes advertise it
// ("linux/arm64" for "arm64" or "linux/aarch64").
func NormalPlatform(p string) (string, error) {
	parsed, err := platforms.Parse(p)
	if err != nil {
		return "", err
	}
	return platforms.Format(platforms.Normalize(parsed)), nil
}

// CanBuild reports whether the node runs any builder.
func (n Node) CanBuild() bool { return len(n.Capacity.Builders) > 0 }

// Live reports whether the node is ready and heartbeated within timeout.
func (n Node) Live(now time.Time, timeout time.Duration) bool {
	return n.State == NodeReady && now.Sub(n.HeartbeatAt) <= timeout
}

// Condition follows the Kubernetes convention: Type is Ready, Reconciling or
// Stalled; Status is "True", "False" or "Unknown".
type Condition struct {
	Type               string    `json:"type" yaml:"type"`
	Status             string    `json:"status" yaml:"status"`
	Reason             string    `json:"reason,omitempty" yaml:"reason,omitempty"`
	Message            string    `json:"message,omitempty" yaml:"message,omitempty"`
	LastTransitionTime time.Time `json:"last_transition_time" yaml:"last_transition_time"`
}

// Build phases.
const (
	BuildPending   = "pending"
	BuildQueued    = "queued"
	BuildBuilding  = "building"
	BuildSucceeded = "succeeded"
	BuildFailed    = "failed"
)

// BuildStatus is one builder node's record of a BuildSpec.
type BuildStatus struct {
	Name               string      `json:"name" yaml:"name"`
	Node               string      `json:"node" yaml:"node"`
	SpecUID            string      `json:"spec_uid" yaml:"spec_uid"`
	ObservedGeneration int64       `json:"observed_generation" yaml:"observed_generation"`
	Phase              string      `json:"phase" yaml:"phase"`
	Digest             string      `json:"digest,omitempty" yaml:"digest,omitempty"`
	Conditions         []Condition `json:"conditions,omitempty" yaml:"conditions,omitempty"`
	Message            string      `json:"message,omitempty" yaml:"message,omitempty"`
	Detail             BuildDetail `json:"detail" yaml:"detail"`
	UpdatedAt          time.Time   `json:"updated_at" yaml:"updated_at"`
}

// BuildDetail is what a person reads in `uc describe build`.
type BuildDetail struct {
	// Generation is the spec generation this row's build ran for; it runs
	// ahead of ObservedGeneration while a build is in progress.
	Generation int64     `json:"generation,omitempty" yaml:"generation,omitempty"`
	Ref        string    `json:"ref,omitempty" yaml:"ref,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero" yaml:"started_at,omitempty"`
	FinishedAt time.Time `json:"finished_at,omitzero" yaml:"finished_at,omitempty"`
	// Steps counts solver steps done (cached ones included) of those seen.
	StepsDone int `json:"steps_done,omitempty" yaml:"steps_done,omitempty"`
	// StepsCached of StepsTotal came from the build cache.
	StepsCached int      `json:"steps_cached,omitempty" yaml:"steps_cached,omitempty"`
	StepsTotal  int      `json:"steps_total,omitempty" yaml:"steps_total,omitempty"`
	LogTail     []string `json:"log_tail,omitempty" yaml:"log_tail,omitempty"`
	// Key is the build key (see the build controller's BuildKey).
	Key string `json:"key,omitempty" yaml:"key,omitempty"`
	// Reused says the image stored for Key was reused without a solve.
	Reused bool `json:"reused,omitempty" yaml:"reused,omitempty"`
	// Inputs are the digests of the builds this one read (service:
	// contexts), by build name; a change in one rebuilds this build.
	Inputs map[string]string `json:"inputs,omitempty" yaml:"inputs,omitempty"`
	// Bases are the digests the build's base images resolved to, by name.
	Bases map[string]string `json:"bases,omitempty" yaml:"bases,omitempty"`
	// MovedBases are the bases that resolve to another digest than the
	// build's now, by name; set only for bases the build does not follow
	// (x-uc-rebuild-on-base), which a move rebuilds instead.
	MovedBases map[string]string `json:"moved_bases,omitempty" yaml:"moved_bases,omitempty"`
	// History lists the digests of the last successful builds, newest
	// first, up to the spec's KeepBuilds; the registry's GC keeps them.
	History []string `json:"history,omitempty" yaml:"history,omitempty"`
	// RestoredFrom says where an image the registry lost was copied from,
	// when it was not rebuilt.
	RestoredFrom string `json:"restored_from,omitempty" yaml:"restored_from,omitempty"`
	// Driver is the builder driver that ran the build: buildkit or docker.
	Driver string `json:"driver,omitempty" yaml:"driver,omitempty"`
	// Part marks a row that built some platforms of a multi-platform build
	// natively for the owner, which merges the parts ("linux/arm64"). Such
	// a row is never the build's result.
	Part string `json:"part,omitempty" yaml:"part,omitempty"`
	// Parts says which node built each part of a merged result.
	Parts map[string]string `json:"parts,omitempty" yaml:"parts,omitempty"`
	// Commit is the git commit a followed branch resolved to, which this
	// row built (x-uc-follow).
	Commit string `json:"commit,omitempty" yaml:"commit,omitempty"`
	// Pushed is each x-uc-push target's state, by reference.
	Pushed map[string]PushState `json:"pushed,omitempty" yaml:"pushed,omitempty"`
}

// Push states of an x-uc-push target.
const (
	PushPushed   = "pushed"
	PushRetrying = "retrying" // may pass: retried with backoff
	PushFailed   = "failed"   // the registry refused the credential
)

// PushState is one x-uc-push target's last copy.
type PushState struct {
	State  string    `json:"state" yaml:"state"`
	Digest string    `json:"digest,omitempty" yaml:"digest,omitempty"`
	Error  string    `json:"error,omitempty" yaml:"error,omitempty"`
	At     time.Time `json:"at,omitzero" yaml:"at,omitempty"`
}

// Presence states of an image on a node.
const (
	PresencePending = "pending"
	PresencePulling = "pulling"
	PresencePresent = "present"
	PresenceFailed  = "failed" // terminal: a retry cannot help
	// PresenceRetrying is a failure that may pass (a registry that is
	// down): the node retries with backoff, and Error says what failed.
	PresenceRetrying = "retrying"
)

// ImagePresence is one node's record of one ImageSpec: key (image, node).
type ImagePresence struct {
	Image              string         `json:"image" yaml:"image"`
	Node               string         `json:"node" yaml:"node"`
	SpecUID            string         `json:"spec_uid" yaml:"spec_uid"`
	ObservedGeneration int64          `json:"observed_generation" yaml:"observed_generation"`
	State              string         `json:"state" yaml:"state"`
	Digest             string         `json:"digest,omitempty" yaml:"digest,omitempty"`
	Error              string         `json:"error,omitempty" yaml:"error,omitempty"`
	Detail             PresenceDetail `json:"detail" yaml:"detail"`
	UpdatedAt          time.Time      `json:"updated_at" yaml:"updated_at"`
}

// PresenceDetail is a pull's progress and history on one node.
type PresenceDetail struct {
	// Ref is what the node pulls, by digest.
	Ref string `json:"ref,omitempty" yaml:"ref,omitempty"`
	// Attempts counts pulls of Ref, failed ones included.
	Attempts int `json:"attempts,omitempty" yaml:"attempts,omitempty"`
	// LayersDone of LayersTotal, and the bytes of the layers downloaded so
	// far of those the engine reported (layers it already had count done).
	LayersDone  int           `json:"layers_done,omitempty" yaml:"layers_done,omitempty"`
	LayersTotal int           `json:"layers_total,omitempty" yaml:"layers_total,omitempty"`
	Bytes       int64         `json:"bytes,omitempty" yaml:"bytes,omitempty"`
	BytesTotal  int64         `json:"bytes_total,omitempty" yaml:"bytes_total,omitempty"`
	StartedAt   time.Time     `json:"started_at,omitzero" yaml:"started_at,omitempty"`
	Duration    time.Duration `json:"duration,omitempty" yaml:"duration,omitempty"`
}

// ImageResolution is one node's resolution of an external image's tag to a
// digest, done once per spec generation so that every node pulls the same.
type ImageResolution struct {
	Image              string    `json:"image" yaml:"image"`
	Node               string    `json:"node" yaml:"node"`
	SpecUID            string    `json:"spec_uid" yaml:"spec_uid"`
	ObservedGeneration int64     `json:"observed_generation" yaml:"observed_generation"`
	Ref                string    `json:"ref" yaml:"ref"`       // what was resolved, e.g. nginx:1.27
	Digest             string    `json:"digest" yaml:"digest"` // empty when Error says why
	Error              string    `json:"error,omitempty" yaml:"error,omitempty"`
	UpdatedAt          time.Time `json:"updated_at" yaml:"updated_at"`
}

// RegistrySpec is the desired internal registry (a single row, "default").
type RegistrySpec struct {
	// Node pins the registry to one node; Selector picks among labelled
	// nodes; neither means any live node by deterministic hashing.
	Node     string            `json:"node,omitempty" yaml:"node,omitempty"`
	Selector map[string]string `json:"selector,omitempty" yaml:"selector,omitempty"`
	// Port is where the registry listens on its node's address; 0 means
	// DefaultRegistryPort.
	Port int `json:"port,omitempty" yaml:"port,omitempty"`
	// Image replaces uc's own registry image (made from ucd) with a
	// distribution-compatible one, run with its stock settings.
	Image string `json:"image,omitempty" yaml:"image,omitempty"`
	// Auth requires basic auth with a generated credential, which every
	// node's ucd reads from state.
	Auth bool `json:"auth,omitempty" yaml:"auth,omitempty"`
}

// CredentialSource returns the internal registry's credential; ok is
// false when the registry has no auth.
type CredentialSource func(ctx context.Context) (cred Credential, ok bool)

// Credential is a registry user and password.
type Credential struct {
	Username string `json:"username" yaml:"username"`
	Password string `json:"-" yaml:"-"` // never printed
}

// DefaultRegistryPort is the managed registry's port.
const DefaultRegistryPort = 5000

// Eligible reports whether node n may run the registry: it has an engine
// and matches the pinned node and the selector.
func (s RegistrySpec) Eligible(n Node) bool {
	if !n.Capacity.Engine || (s.Node != "" && n.Name != s.Node) {
		return false
	}
	for k, v := range s.Selector {
		if n.Labels[k] != v {
			return false
		}
	}
	return true
}

// RegistryStatus is written by a node that runs (or ran) the registry.
type RegistryStatus struct {
	Node               string         `json:"node" yaml:"node"`
	ObservedGeneration int64          `json:"observed_generation" yaml:"observed_generation"`
	Address            string         `json:"address" yaml:"address"`
	Conditions         []Condition    `json:"conditions,omitempty" yaml:"conditions,omitempty"`
	Detail             RegistryDetail `json:"detail" yaml:"detail"`
	UpdatedAt          time.Time      `json:"updated_at" yaml:"updated_at"`
}

// RegistryDetail is what a person reads about a registry's upkeep.
type RegistryDetail struct {
	// GC is the last garbage collection that ran.
	GC *RegistryGC `json:"gc,omitempty" yaml:"gc,omitempty"`
}

// RegistryGC summarises one garbage collection of the registry.
type RegistryGC struct {
	Trigger          string        `json:"trigger" yaml:"trigger"` // schedule, disk or request
	StartedAt        time.Time     `json:"started_at" yaml:"started_at"`
	Duration         time.Duration `json:"duration" yaml:"duration"`
	ManifestsRemoved int           `json:"manifests_removed" yaml:"manifests_removed"`
	BlobsRemoved     int           `json:"blobs_removed" yaml:"blobs_removed"`
	BytesFreed       int64         `json:"bytes_freed" yaml:"bytes_freed"`
	Error            string        `json:"error,omitempty" yaml:"error,omitempty"`
	// What could not be freed, and why: needed by specs, builds or nodes,
	// or younger than the grace the collection ran with (it shrinks under
	// disk pressure). UploadsPurged counts abandoned partial uploads.
	Grace               time.Duration `json:"grace,omitempty" yaml:"grace,omitempty"`
	KeptReferencedBytes int64         `json:"kept_referenced_bytes,omitempty" yaml:"kept_referenced_bytes,omitempty"`
	KeptYoungBytes      int64         `json:"kept_young_bytes,omitempty" yaml:"kept_young_bytes,omitempty"`
	UploadsPurged       int           `json:"uploads_purged,omitempty" yaml:"uploads_purged,omitempty"`
	UploadBytesFreed    int64         `json:"upload_bytes_freed,omitempty" yaml:"upload_bytes_freed,omitempty"`
}

// Condition types.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
)

// IsTrue reports whether the condition of type t has status "True".
func IsTrue(conds []Condition, t string) bool {
	for _, c := range conds {
		if c.Type == t {
			return c.Status == "True"
		}
	}
	return false
}

// SetConditions is the one way a controller writes conditions: it returns
// next, each with the LastTransitionTime of the same type in prev when its
// status did not change, else now. A condition not in next is dropped, so
// a status says only what holds now.
func SetConditions(prev []Condition, now time.Time, next ...Condition) []Condition {
	out := make([]Condition, len(next))
	for i, c := range next {
		c.LastTransitionTime = now
		for _, old := range prev {
			if old.Type == c.Type && old.Status == c.Status && !old.LastTransitionTime.IsZero() {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		out[i] = c
	}
	return out
}

// SplitImageRef splits a reference like "127.0.0.1:5000/team/web:v1" into
// its registry host, repository path and tag ("" when it has none).
func SplitImageRef(ref string) (registry, repo, tag string) {
	registry, rest, _ := strings.Cut(ref, "/")
	if i := strings.LastIndex(rest, ":"); i >= 0 {
		return registry, rest[:i], rest[i+1:]
	}
	return registry, rest, ""
}

// SyncSpec has its owner node follow a git repository and apply a file
// from it on every new commit (uc sync add), as Flux's GitRepository and
// Kustomization pair does: the GitOps loop with no CI runner.
type SyncSpec struct {
	Name string `json:"name" yaml:"name"`
	Repo string `json:"repo" yaml:"repo"`
	// Ref is the branch or tag followed; "" is the remote's HEAD.
	Ref string `json:"ref,omitempty" yaml:"ref,omitempty"`
	// Path is the Compose file, Bake file or monorepo contexts directory
	// inside the repository.
	Path string `json:"path" yaml:"path"`
	// Interval is how often the ref is resolved (a duration, at least
	// MinRefreshEvery); push webhooks resolve it at once.
	Interval string `json:"interval" yaml:"interval"`
	// Credential is a git credential reference (env:VAR, ssh:…), read on
	// the owner.
	Credential string `json:"credential,omitempty" yaml:"credential,omitempty"`
}

// IntervalDuration is Interval parsed; zero when invalid (uc sync add
// refuses that).
func (s SyncSpec) IntervalDuration() time.Duration {
	d, err := time.ParseDuration(s.Interval)
	if err != nil || d < MinRefreshEvery {
		return 0
	}
	return d
}

// Sync phases.
const (
	SyncApplied = "applied"
	SyncFailed  = "failed" // the file at this commit is invalid: nothing changed
	SyncPending = "pending"
)

// SyncStatus is one node's record of a sync: key (name, node).
type SyncStatus struct {
	Name               string `json:"name" yaml:"name"`
	Node               string `json:"node" yaml:"node"`
	SpecUID            string `json:"spec_uid" yaml:"spec_uid"`
	ObservedGeneration int64  `json:"observed_generation" yaml:"observed_generation"`
	Phase              string `json:"phase" yaml:"phase"`
	// Commit is the commit this row is about: applied, or refused.
	Commit  string `json:"commit,omitempty" yaml:"commit,omitempty"`
	Message string `json:"message,omitempty" yaml:"message,omitempty"`
	// Applied is the last commit applied successfully, kept when a later
	// one fails.
	Applied   string    `json:"applied,omitempty" yaml:"applied,omitempty"`
	Project   string    `json:"project,omitempty" yaml:"project,omitempty"`
	Changes   []string  `json:"changes,omitempty" yaml:"changes,omitempty"`
	AppliedAt time.Time `json:"applied_at,omitzero" yaml:"applied_at,omitempty"`
	UpdatedAt time.Time `json:"updated_at" yaml:"updated_at"`
}
