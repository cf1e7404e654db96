package state

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ucplane/uc/api"
)

// Cache is a process's copy of uc's tables: one Informer per table, each
// fed by one subscription. Controllers read through its Reader and listers
// (no request) and are woken by its typed events. A copy may lag the state
// API, and a node's own writes come back through its subscription, so a
// decision that must not rest on a lagging copy (before a build starts,
// say) reads the Store instead and says so.
type Cache struct {
	Reader
	store *Store
	log   *slog.Logger

	Nodes               *Informer[api.Node]
	BuildSpecs          *Informer[BuildRecord]
	BuildStatus         *Informer[api.BuildStatus]
	ImageSpecs          *Informer[ImageRecord]
	ImagePresence       *Informer[api.ImagePresence]
	ImageResolutions    *Informer[api.ImageResolution]
	RegistrySpec        *Informer[RegistrySpecRow]
	RegistryStatus      *Informer[api.RegistryStatus]
	RegistryCredentials *Informer[credentialRow]
	SyncSpecs           *Informer[SyncRecord]
	SyncStatus          *Informer[api.SyncStatus]
}

// statusKey is the key of a row written by one node about one object.
func statusKey(object, node string) string { return object + "\x00" + node }

// NewCache returns a cache over the store's state API; nothing is read
// until Start.
func NewCache(store *Store, log *slog.Logger) *Cache {
	c := &Cache{store: store, log: log,
		Nodes: newInformer("nodes", nodeSelect, func(n api.Node) string { return n.Name }, nil, decodeNode),
		BuildSpecs: newInformer("build_specs", fmt.Sprintf(specSelect, "build_specs"),
			func(r BuildRecord) string { return r.Spec.Name }, nil, decodeBuildSpec),
		BuildStatus: newInformer("build_status", buildStatusSelect,
			func(s api.BuildStatus) string { return statusKey(s.Name, s.Node) },
			func(s api.BuildStatus) string { return s.Name }, decodeBuildStatus),
		ImageSpecs: newInformer("image_specs", fmt.Sprintf(specSelect, "image_specs"),
			func(r ImageRecord) string { return r.Spec.Name }, nil, decodeImageSpec),
		ImagePresence: newInformer("image_presence", presenceSelect,
			func(p api.ImagePresence) string { return statusKey(p.Image, p.Node) },
			func(p api.ImagePresence) string { return p.Image }, decodePresence),
		ImageResolutions: newInformer("image_resolution", resolutionSelect,
			func(r api.ImageResolution) string { return statusKey(r.Image, r.Node) },
			func(r api.ImageResolution) string { return r.Image }, decodeResolution),
		RegistrySpec: newInformer("registry_spec", registrySpecSelect,
			func(r RegistrySpecRow) string { return r.Name }, nil, decodeRegistrySpec),
		RegistryStatus: newInformer("registry_status", registryStatusSelect,
			func(s api.RegistryStatus) string { return s.Node }, nil, decodeRegistryStatus),
		RegistryCredentials: newInformer("registry_credentials", registryCredentialSelect,
			func(r credentialRow) string { return r.Name }, nil, decodeCredential),
		SyncSpecs: newInformer("sync_specs", syncSpecSelect, func(r SyncRecord) string { return r.Spec.Name }, nil, decodeSyncSpec),
		SyncStatus: newInformer("sync_status", syncStatusSelect,
			func(s api.SyncStatus) string { return statusKey(s.Name, s.Node) },
			func(s api.SyncStatus) string { return s.Name }, decodeSyncStatus),
	}
	c.Reader = Reader{cacheRows{c}}
	return c
}

// Store is the state API behind the cache: its writes, and its fresh reads.
func (c *Cache) Store() *Store { return c.store }

// Start follows every table until ctx ends. It returns at once; Synced
// tells when the first listing of every table is in.
func (c *Cache) Start(ctx context.Context) {
	for _, run := range c.runs() {
		go func() {
			if err := run(ctx); err != nil && ctx.Err() == nil {
				c.log.Error("A state cache subscription stopped; its table is no longer followed.", "err", err)
			}
		}()
	}
}

func (c *Cache) runs() []func(context.Context) error {
	cl, log := c.store.c, c.log
	return []func(context.Context) error{
		func(ctx context.Context) error { return c.Nodes.run(ctx, cl, log) },
		func(ctx context.Context) error { return c.BuildSpecs.run(ctx, cl, log) },
		func(ctx context.Context) error { return c.BuildStatus.run(ctx, cl, log) },
		func(ctx context.Context) error { return c.ImageSpecs.run(ctx, cl, log) },
		func(ctx context.Context) error { return c.ImagePresence.run(ctx, cl, log) },
		func(ctx context.Context) error { return c.ImageResolutions.run(ctx, cl, log) },
		func(ctx context.Context) error { return c.RegistrySpec.run(ctx, cl, log) },
		func(ctx context.Context) error { return c.RegistryStatus.run(ctx, cl, log) },
		func(ctx context.Context) error { return c.RegistryCredentials.run(ctx, cl, log) },
		func(ctx context.Context) error { return c.SyncSpecs.run(ctx, cl, log) },
		func(ctx context.Context) error { return c.SyncStatus.run(ctx, cl, log) },
	}
}

// WaitForSync blocks until every table has been listed once.
func (c *Cache) WaitForSync(ctx context.Context) error {
	for _, ch := range []<-chan struct{}{c.Nodes.Synced(), c.BuildSpecs.Synced(), c.BuildStatus.Synced(),
		c.ImageSpecs.Synced(), c.ImagePresence.Synced(), c.ImageResolutions.Synced(), c.RegistrySpec.Synced(),
		c.RegistryStatus.Synced(), c.RegistryCredentials.Synced(), c.SyncSpecs.Synced(), c.SyncStatus.Synced()} {
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("state cache: waiting for the first listing: %w", ctx.Err())
		}
	}
	return nil
}

// cacheRows answers the Reader from the informers: no request.
type cacheRows struct{ c *Cache }

// one returns the row with this key, or every row when key is empty.
func one[T any](i *Informer[T], key string) []T {
	if key == "" {
		return i.List()
	}
	if v, ok := i.Get(key); ok {
		return []T{v}
	}
	return nil
}

// group returns the status rows of one object, or every row.
func group[T any](i *Informer[T], object string) []T {
	if object == "" {
		return i.List()
	}
	return i.ListGroup(object)
}

func (r cacheRows) buildSpecs(_ context.Context, name string) ([]BuildRecord, error) {
	return one(r.c.BuildSpecs, name), nil
}

func (r cacheRows) imageSpecs(_ context.Context, name string) ([]ImageRecord, error) {
	return one(r.c.ImageSpecs, name), nil
}

func (r cacheRows) buildStatuses(_ context.Context, name string) ([]api.BuildStatus, error) {
	return group(r.c.BuildStatus, name), nil
}

func (r cacheRows) presences(_ context.Context, image string) ([]api.ImagePresence, error) {
	return group(r.c.ImagePresence, image), nil
}

func (r cacheRows) resolutions(_ context.Context, image string) ([]api.ImageResolution, error) {
	return group(r.c.ImageResolutions, image), nil
}

func (r cacheRows) nodes(_ context.Context, name string) ([]api.Node, error) {
	return one(r.c.Nodes, name), nil
}

func (r cacheRows) registryStatuses(context.Context) ([]api.RegistryStatus, error) {
	return r.c.RegistryStatus.List(), nil
}

func (r cacheRows) registrySpec(context.Context) (RegistrySpecRow, bool, error) {
	v, ok := r.c.RegistrySpec.Get(registrySpecName)
	return v, ok, nil
}

func (r cacheRows) registryCredential(context.Context) (api.Credential, bool, error) {
	v, ok := r.c.RegistryCredentials.Get(registrySpecName)
	return v.Credential, ok, nil
}

// CredentialSource reads the registry credential from the cache.
func (c *Cache) CredentialSource() api.CredentialSource {
	return func(ctx context.Context) (api.Credential, bool) {
		cred, ok, _ := c.RegistryCredential(ctx)
		return cred, ok
	}
}

// OnChange calls fn after any row of any table changes (and once per row
// at first), until the returned function removes it; fn must be quick.
func (c *Cache) OnChange(fn func()) (remove func()) {
	removes := []func(){
		c.Nodes.AddHandler(func(Event[api.Node]) { fn() }),
		c.BuildSpecs.AddHandler(func(Event[BuildRecord]) { fn() }),
		c.BuildStatus.AddHandler(func(Event[api.BuildStatus]) { fn() }),
		c.ImageSpecs.AddHandler(func(Event[ImageRecord]) { fn() }),
		c.ImagePresence.AddHandler(func(Event[api.ImagePresence]) { fn() }),
		c.ImageResolutions.AddHandler(func(Event[api.ImageResolution]) { fn() }),
		c.RegistrySpec.AddHandler(func(Event[RegistrySpecRow]) { fn() }),
		c.RegistryStatus.AddHandler(func(Event[api.RegistryStatus]) { fn() }),
		c.RegistryCredentials.AddHandler(func(Event[credentialRow]) { fn() }),
		c.SyncSpecs.AddHandler(func(Event[SyncRecord]) { fn() }),
		c.SyncStatus.AddHandler(func(Event[api.SyncStatus]) { fn() }),
	}
	return func() {
		for _, r := range removes {
			r()
		}
	}
}

// GetSync is a sync with its status rows, from the cache.
func (c *Cache) GetSync(name string) (SyncRecord, bool) {
	rec, ok := c.SyncSpecs.Get(name)
	if ok {
		rec.Status = c.SyncStatus.ListGroup(name)
	}
	return rec, ok
}
