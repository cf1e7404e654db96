package managedregistry

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	dockerclient "github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/registry"
	"github.com/ucplane/uc/registry/regclient"
	"github.com/ucplane/uc/state"
)

// The managed registry: when registry_spec exists, one eligible node runs
// the registry as a container on its engine, with host networking and a
// data volume, and publishes its address. The node keeps it while it is
// live; when it stops heartbeating for FailoverAfter, another eligible
// node starts one.

// ContainerName is the registry container's name on every engine.
const ContainerName = "uc-registry"

// ManagedConfig says how this node may run the managed registry.
type ManagedConfig struct {
	Config
	// Address is this node's advertised IP; the registry listens there.
	Address string
	// Binary is the static ucd the registry image is made from.
	Binary string
	// FailoverAfter is how long the registry's node may be silent before
	// another node takes over; default DefaultFailoverAfter.
	FailoverAfter time.Duration
	// Credentials are the registry's generated credential (spec Auth).
	Credentials api.CredentialSource
}

// DefaultFailoverAfter bounds how long the cluster is without a registry
// when its node dies.
const DefaultFailoverAfter = 30 * time.Second

// managed reconciles the registry container on this node.
type managed struct {
	store  *state.Store // writes, and the fresh reads of GC's keep set
	read   state.Reader // the cache
	engine Engine
	cfg    ManagedConfig
	log    *slog.Logger
	http   *http.Client
	gc     *gcKeeper
	image  string // loaded image ref, once known
	// outageAt is when this node last could not read the state, or saw
	// its own heartbeat as stale: the holder's silence then is likely the
	// same outage, not the holder's death.
	outageAt time.Time
}

// Engine is what the managed registry needs of the node's Docker Engine;
// *client.Client is one. It is the controller's edge: tests give a fake.
type Engine interface {
	ContainerInspect(ctx context.Context, name string) (container.InspectResponse, error)
	ContainerCreate(ctx context.Context, cfg *container.Config, host *container.HostConfig, net *network.NetworkingConfig,
		platform *ocispec.Platform, name string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, name string, opts container.StartOptions) error
	ContainerRemove(ctx context.Context, name string, opts container.RemoveOptions) error
	ImageInspect(ctx context.Context, ref string, opts ...dockerclient.ImageInspectOption) (image.InspectResponse, error)
	ImageLoad(ctx context.Context, archive io.Reader, opts ...dockerclient.ImageLoadOption) (image.LoadResponse, error)
	ImagePull(ctx context.Context, ref string, opts image.PullOptions) (io.ReadCloser, error)
	Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error)
}

// NewManaged returns the managed-registry controller for this node.
func NewManaged(cache *state.Cache, engine Engine, cfg ManagedConfig, log *slog.Logger) *reconcile.Controller {
	if cfg.FailoverAfter <= 0 {
		cfg.FailoverAfter = DefaultFailoverAfter
	}
	log = log.With("controller", "registry")
	m := &managed{store: cache.Store(), read: cache.Reader, engine: engine, cfg: cfg, log: log, http: &http.Client{Timeout: 5 * time.Second}}
	// Nothing is polled: the spec, the registry's status and node changes
	// (not heartbeats) come from watches, the container's fate from the
	// engine's events, and a holder's silence from a timer set to when it
	// would time out.
	sources := []reconcile.Source{
		cache.RegistrySpec.Source(func(state.Event[state.RegistrySpecRow]) []string { return theRegistry }),
		cache.RegistryStatus.Source(func(ev state.Event[api.RegistryStatus]) []string {
			o, n := ev.Old, ev.New
			if ev.Type == state.EventUpdated && o.ObservedGeneration == n.ObservedGeneration && o.Address == n.Address &&
				reflect.DeepEqual(o.Conditions, n.Conditions) {
				return nil // only GC's report or the time moved
			}
			return theRegistry
		}),
		cache.Nodes.Source(func(ev state.Event[api.Node]) []string {
			o, n := ev.Old, ev.New
			if ev.Type == state.EventUpdated && o.State == n.State && o.StartedAt.Equal(n.StartedAt) &&
				maps.Equal(o.Labels, n.Labels) && reflect.DeepEqual(o.Capacity, n.Capacity) {
				return nil // a heartbeat
			}
			return theRegistry
		}),
		func(ctx context.Context, enqueue func(string)) error {
			return m.containerEvents(ctx, func(string) { enqueue("default") })
		},
	}
	return reconcile.New(reconcile.Options{
		Name: "registry", Logger: log, Resync: resyncEvery, Timeout: 10 * time.Minute,
		Lister: func(context.Context) ([]string, error) { return []string{"default"}, nil },
	}, m, sources...)
}

// theRegistry is the controller's one key.
var theRegistry = []string{"default"}

const (
	// checkEvery is how often the holder checks its registry answers
	// (loopback HTTP) and whether GC is due.
	checkEvery = 5 * time.Second
	// resyncEvery only backs up the watches and events.
	resyncEvery = 10 * time.Minute
)

// containerEvents wakes the controller whenever the registry container on
// this engine changes (dies, stops, is removed), so that the holder starts
// it again at once.
func (m *managed) containerEvents(ctx context.Context, enqueue func(string)) error {
	msgs, errs := m.engine.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)), filters.Arg("container", ContainerName))})
	for {
		select {
		case <-msgs:
			enqueue("default")
		case err := <-errs:
			return fmt.Errorf("engine events for %s: %w", ContainerName, err)
		}
	}
}

// Reconcile runs or removes this node's registry container.
func (m *managed) Reconcile(ctx context.Context, _ string) (reconcile.Result, error) {
	spec, gen, err := m.read.GetRegistrySpec(ctx)
	if errors.Is(err, state.ErrNotFound) {
		return reconcile.Result{}, m.stop(ctx, "no managed registry is wanted")
	}
	if err != nil {
		m.outageAt = time.Now()
		return reconcile.Result{}, err
	}
	holder, recheck, err := m.holder(ctx, spec)
	if err != nil {
		return reconcile.Result{}, err
	}
	if holder != m.cfg.Node {
		return reconcile.Result{RequeueAfter: recheck}, m.stop(ctx, "the registry runs on "+holder)
	}
	addr := net.JoinHostPort(m.cfg.Address, strconv.Itoa(cmp.Or(spec.Port, api.DefaultRegistryPort)))
	again := reconcile.Result{RequeueAfter: checkEvery}
	// A container that is starting answers within a second or two: look
	// again soon rather than at the healthy pace.
	soon := reconcile.Result{RequeueAfter: 500 * time.Millisecond}
	if err := m.ensureRunning(ctx, spec, addr); err != nil {
		return soon, m.publish(ctx, gen, addr, "False", "ContainerFailed", err.Error())
	}
	if err := healthy(ctx, m.http, addr); err != nil {
		return soon, m.publish(ctx, gen, addr, "False", "Unhealthy", err.Error())
	}
	if spec.Image == "" { // a stock registry has no GC endpoint
		if m.gc == nil {
			client := &http.Client{Timeout: 30 * time.Minute, Transport: regclient.BasicAuth(nil, m.cfg.Credentials)}
			m.gc = newGCKeeper(m.store, m.cfg.Config, m.log, overHTTP{client: client, addr: addr})
		}
		m.gc.tick(ctx)
	}
	return again, m.publish(ctx, gen, addr, "True", "Serving", "serving on "+addr+" in container "+ContainerName)
}

// holder is the node that runs the registry: the node already serving it
// while it stays live and eligible (no move back and forth), else the
// eligible live node that rendezvous hashing picks. recheck is when the
// holder would time out if it stays silent: no watch reports silence.
func (m *managed) holder(ctx context.Context, spec api.RegistrySpec) (name string, recheck time.Duration, err error) {
	nodes, err := m.read.ListNodes(ctx)
	if err == nil {
		var statuses []api.RegistryStatus
		if statuses, err = m.read.ListRegistryStatus(ctx); err == nil {
			return m.pickHolder(spec, nodes, statuses, time.Now())
		}
	}
	m.outageAt = time.Now()
	return "", 0, err
}

// pickHolder is holder's rule over what the state says. After this node
// was cut off from the state (or its own heartbeats were late), the
// serving node keeps the registry for FailoverAfter more although it
// looks silent: its heartbeats were cut off too. Moving the registry
// would start it empty, and every image would be restored by rebuilding
// (found by make chaos: the state API unreachable for 30 s).
func (m *managed) pickHolder(spec api.RegistrySpec, nodes []api.Node, statuses []api.RegistryStatus, now time.Time) (string, time.Duration, error) {
	if i := slices.IndexFunc(nodes, func(n api.Node) bool { return n.Name == m.cfg.Node }); i >= 0 && !nodes[i].Live(now, m.cfg.FailoverAfter) {
		m.outageAt = now
	}
	recovering := now.Sub(m.outageAt) < m.cfg.FailoverAfter
	for _, st := range statuses {
		i := slices.IndexFunc(nodes, func(n api.Node) bool { return n.Name == st.Node })
		if i < 0 || !api.IsTrue(st.Conditions, api.ConditionReady) || !spec.Eligible(nodes[i]) {
			continue
		}
		if nodes[i].Live(now, m.cfg.FailoverAfter) {
			return st.Node, m.timesOut(nodes[i], now), nil
		}
		if recovering {
			return st.Node, m.outageAt.Add(m.cfg.FailoverAfter).Sub(now) + 100*time.Millisecond, nil
		}
	}
	// A silent node drops out after FailoverAfter, even when that is
	// shorter than the owners' usual liveness bound.
	candidate := func(n api.Node) bool { return spec.Eligible(n) && n.Live(now, m.cfg.FailoverAfter) }
	name, ok := api.PickOwner("registry", nodes, now, candidate)
	if !ok {
		return "", 0, reconcile.Terminal(errors.New("no live node may run the registry: it needs an engine and must match the registry spec's node and selector"))
	}
	i := slices.IndexFunc(nodes, func(n api.Node) bool { return n.Name == name })
	return name, m.timesOut(nodes[i], now), nil
}

// timesOut is how long until n counts as silent, unless it heartbeats.
func (m *managed) timesOut(n api.Node, now time.Time) time.Duration {
	d := n.HeartbeatAt.Add(m.cfg.FailoverAfter).Sub(now) + 100*time.Millisecond
	return min(max(d, 500*time.Millisecond), m.cfg.FailoverAfter)
}

// ensureRunning loads the image if needed and runs the container with
// this spec, replacing one that runs another configuration.
func (m *managed) ensureRunning(ctx context.Context, spec api.RegistrySpec, addr string) error {
	image, err := m.ensureImage(ctx, spec)
	if err != nil {
		return err
	}
	if spec.Auth {
		if err := m.writeHTPasswd(ctx); err != nil {
			return err
		}
	}
	cfg, host := m.containerConfig(spec, image, addr)
	want := configHash(cfg, host)
	cur, err := m.engine.ContainerInspect(ctx, ContainerName)
	switch {
	case dockerclient.IsErrNotFound(err):
	case err != nil:
		return fmt.Errorf("inspect %s: %w", ContainerName, err)
	case cur.Config.Labels[labelConfig] == want && cur.State.Running:
		return nil
	case cur.Config.Labels[labelConfig] == want:
		m.log.Info("Registry container is not running; starting it.", "status", cur.State.Status)
		return m.engine.ContainerStart(ctx, ContainerName, container.StartOptions{})
	default:
		if err := m.remove(ctx); err != nil {
			return err
		}
	}
	cfg.Labels[labelConfig] = want
	if _, err := m.engine.ContainerCreate(ctx, cfg, host, nil, nil, ContainerName); err != nil {
		return fmt.Errorf("create %s: %w", ContainerName, err)
	}
	m.log.Info("Starting the registry container.", "image", image, "addr", addr)
	return m.engine.ContainerStart(ctx, ContainerName, container.StartOptions{})
}

// labelConfig marks the configuration a container was created with.
const labelConfig = "uc.registry.config"

func (m *managed) containerConfig(spec api.RegistrySpec, image, addr string) (*container.Config, *container.HostConfig) {
	data := m.volume()
	cfg := &container.Config{Image: image, Labels: map[string]string{"uc.role": "registry"}}
	host := &container.HostConfig{NetworkMode: "host", RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyAlways}}
	if spec.Image != "" { // distribution's stock image and settings
		cfg.Env = []string{"REGISTRY_HTTP_ADDR=" + addr, "REGISTRY_STORAGE_DELETE_ENABLED=true"}
		if spec.Auth {
			cfg.Env = append(cfg.Env, "REGISTRY_AUTH=htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM=uc",
				"REGISTRY_AUTH_HTPASSWD_PATH=/var/lib/registry/"+htpasswdFile)
		}
		host.Binds = []string{data + ":/var/lib/registry"}
		return cfg, host
	}
	cfg.Cmd = []string{"--data-dir", "/data", "--listen", addr}
	if spec.Auth {
		cfg.Cmd = append(cfg.Cmd, "--htpasswd", "/data/"+htpasswdFile)
	}
	cfg.Healthcheck = &container.HealthConfig{Test: []string{"CMD", "/ucd", "registry", "probe", "http://" + addr + "/healthz"},
		Interval: 5 * time.Second, Timeout: 3 * time.Second, Retries: 3}
	host.Binds = []string{data + ":/data"}
	return cfg, host
}

// htpasswdFile holds the generated credential in the registry's volume.
const htpasswdFile = "htpasswd"

func (m *managed) volume() string { return filepath.Join(m.cfg.DataDir, "registry-volume") }

// writeHTPasswd writes the generated credential for the registry, unless
// the file already holds it (bcrypt salts differ, so compare, not rewrite).
func (m *managed) writeHTPasswd(ctx context.Context) error {
	if m.cfg.Credentials == nil {
		return errors.New("registry auth: this ucd has no credential source")
	}
	cred, ok := m.cfg.Credentials(ctx)
	if !ok {
		return errors.New("registry auth is on but state holds no generated credential yet (uc registry configure --auth writes it)")
	}
	path := filepath.Join(m.volume(), htpasswdFile)
	if cur, err := os.ReadFile(path); err == nil {
		user, hash, _ := strings.Cut(strings.TrimSpace(string(cur)), ":")
		if user == cred.Username && bcrypt.CompareHashAndPassword([]byte(hash), []byte(cred.Password)) == nil {
			return nil
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(cred.Password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(m.volume(), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(cred.Username+":"+string(hash)+"\n"), 0o600)
}

func configHash(cfg *container.Config, host *container.HostConfig) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%q|%q|%q|%s", cfg.Image, cfg.Cmd, cfg.Env, host.Binds, host.NetworkMode)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// ensureImage makes and loads uc's registry image from this ucd binary,
// or uses the spec's image, pulled if missing.
func (m *managed) ensureImage(ctx context.Context, spec api.RegistrySpec) (string, error) {
	if spec.Image != "" {
		if _, err := m.engine.ImageInspect(ctx, spec.Image); err == nil {
			return spec.Image, nil
		}
		return spec.Image, pullImage(ctx, m.engine, spec.Image)
	}
	if m.image != "" {
		if _, err := m.engine.ImageInspect(ctx, m.image); err == nil {
			return m.image, nil
		}
	}
	img, err := registry.BuildImage(m.cfg.Binary)
	if err != nil {
		return "", reconcile.Terminal(err)
	}
	if _, err := m.engine.ImageInspect(ctx, img.Ref); err != nil {
		resp, err := m.engine.ImageLoad(ctx, bytes.NewReader(img.Archive), dockerclient.ImageLoadWithQuiet(true))
		if err != nil {
			return "", fmt.Errorf("load the registry image: %w", err)
		}
		resp.Body.Close()
		m.log.Info("Loaded the registry image made from this ucd.", "image", img.Ref)
	}
	m.image = img.Ref
	return img.Ref, nil
}

// stop removes this node's registry container, if any, and says why.
func (m *managed) stop(ctx context.Context, why string) error {
	if _, err := m.engine.ContainerInspect(ctx, ContainerName); dockerclient.IsErrNotFound(err) {
		return m.unpublish(ctx, why)
	}
	m.log.Info("Removing the registry container.", "why", why)
	if err := m.remove(ctx); err != nil {
		return err
	}
	return m.unpublish(ctx, why)
}

func (m *managed) remove(ctx context.Context) error {
	err := m.engine.ContainerRemove(ctx, ContainerName, container.RemoveOptions{Force: true})
	if err != nil && !dockerclient.IsErrNotFound(err) {
		return fmt.Errorf("remove %s: %w", ContainerName, err)
	}
	return nil
}

func (m *managed) publish(ctx context.Context, gen int64, addr, status, reason, msg string) error {
	st := api.RegistryStatus{Node: m.cfg.Node, ObservedGeneration: gen, Address: addr,
		Conditions: api.SetConditions(m.ownConditions(ctx), time.Now(), api.Condition{Type: api.ConditionReady, Status: status,
			Reason: reason, Message: msg})}
	if m.gc != nil {
		st.Detail.GC = m.gc.last
	}
	return m.store.PutRegistryStatus(ctx, st)
}

// ownConditions are the conditions of this node's registry status row.
func (m *managed) ownConditions(ctx context.Context) []api.Condition {
	statuses, _ := m.read.ListRegistryStatus(ctx)
	for _, st := range statuses {
		if st.Node == m.cfg.Node {
			return st.Conditions
		}
	}
	return nil
}

// unpublish marks this node's status row not serving, if it has one.
func (m *managed) unpublish(ctx context.Context, why string) error {
	statuses, err := m.read.ListRegistryStatus(ctx)
	if err != nil {
		return err
	}
	for _, st := range statuses {
		if st.Node == m.cfg.Node && api.IsTrue(st.Conditions, api.ConditionReady) {
			return m.publish(ctx, st.ObservedGeneration, st.Address, "False", "NotHere", why)
		}
	}
	return nil
}

func pullImage(ctx context.Context, engine Engine, ref string) error {
	rc, err := engine.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	defer rc.Close()
	// A pull's errors arrive inside the JSON stream.
	if err := jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil); err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	return nil
}
