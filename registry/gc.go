package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/ucplane/uc/registry/regclient"
)

// Online garbage collection. Unlike distribution's MarkAndSweep it runs
// while clients push and pull: the mark reads without locks, and each
// deletion is checked against recent touches under a lock held only for
// that one deletion (see touches).

// collector holds one registry's storage as GC sees it.
type collector struct {
	driver  driver.StorageDriver
	ns      distribution.Namespace
	touches *touches
	running sync.Mutex // one collection at a time
	// uploadIdle is how long a client may pause between the requests of
	// one upload before a purge counts it abandoned, however short the
	// grace.
	uploadIdle time.Duration
}

// DefaultUploadIdle is the collector's uploadIdle.
const DefaultUploadIdle = time.Minute

// manifestRef is one manifest in one repository.
type manifestRef struct {
	repo   string
	digest digest.Digest
}

func newCollector(ctx context.Context, d driver.StorageDriver, t *touches) (*collector, error) {
	ns, err := storage.NewRegistry(ctx, d, storage.EnableDelete)
	if err != nil {
		return nil, err
	}
	return &collector{driver: d, ns: ns, touches: t, uploadIdle: DefaultUploadIdle}, nil
}

// Collect marks from keep and sweeps the rest.
func (c *collector) Collect(ctx context.Context, keep regclient.KeepSet, dryRun bool) (regclient.GCReport, error) {
	c.running.Lock()
	defer c.running.Unlock()
	rep := regclient.GCReport{DryRun: dryRun, StartedAt: time.Now()}
	rep.Grace = keep.GraceOrDefault()
	cutoff := rep.StartedAt.Add(-rep.Grace)
	m, err := c.mark(ctx, keep, cutoff)
	if err != nil {
		return rep, fmt.Errorf("gc mark: %w", err)
	}
	rep.ManifestsKept, rep.BlobsKept = len(m.keptManifests), len(m.keptBlobs)
	if err := c.sweepManifests(ctx, m, cutoff, dryRun, &rep); err != nil {
		return rep, fmt.Errorf("gc sweep manifests: %w", err)
	}
	if err := c.sweepBlobs(ctx, m, cutoff, dryRun, &rep); err != nil {
		return rep, fmt.Errorf("gc sweep blobs: %w", err)
	}
	uploadCutoff := cutoff
	if keep.UploadAge > 0 {
		uploadCutoff = rep.StartedAt.Add(-keep.UploadAge)
	}
	c.purgeUploads(ctx, uploadCutoff, dryRun, &rep)
	c.touches.forget(cutoff)
	rep.Duration = time.Since(rep.StartedAt)
	return rep, nil
}

// marked is the mark phase's result.
type marked struct {
	manifests     []manifestRef              // every manifest found
	tags          map[manifestRef][]string   // tags pointing at each
	keptManifests map[manifestRef]bool       //
	keptBlobs     map[digest.Digest]bool     // blobs any kept manifest needs
	bodies        map[manifestRef]manifestJS // parsed manifests
	// young are the manifests kept only for being younger than the
	// grace; referencedBlobs the blobs the rest (the keep set) needs.
	young           map[manifestRef]bool
	referencedBlobs map[digest.Digest]bool
}

// manifestJS is the part of a manifest GC reads.
type manifestJS struct {
	Config    *descJS  `json:"config"`
	Layers    []descJS `json:"layers"`
	Manifests []descJS `json:"manifests"`
	Subject   *descJS  `json:"subject"`
}

type descJS struct {
	Digest digest.Digest `json:"digest"`
}

func (m manifestJS) references() []digest.Digest {
	var out []digest.Digest
	for _, d := range append(append([]descJS{}, m.Layers...), m.Manifests...) {
		out = append(out, d.Digest)
	}
	if m.Config != nil {
		out = append(out, m.Config.Digest)
	}
	return out
}

// mark finds the roots (kept digests and tags, fresh manifests), then
// everything they reach: child manifests, referrers whose subject is
// kept, and blobs.
func (c *collector) mark(ctx context.Context, keep regclient.KeepSet, cutoff time.Time) (*marked, error) {
	m := &marked{tags: map[manifestRef][]string{}, keptManifests: map[manifestRef]bool{},
		keptBlobs: map[digest.Digest]bool{}, bodies: map[manifestRef]manifestJS{}, young: map[manifestRef]bool{}}
	keepDigests := map[digest.Digest]bool{}
	for _, d := range keep.Digests {
		keepDigests[digest.Digest(d)] = true
	}
	err := c.ns.(distribution.RepositoryEnumerator).Enumerate(ctx, func(repo string) error {
		return c.markRepo(ctx, repo, keep, keepDigests, cutoff, m)
	})
	if err != nil {
		return nil, err
	}
	// Once from the keep set alone, to tell what it needs, then with the
	// young manifests as well.
	m.close()
	m.referencedBlobs, m.keptBlobs = m.keptBlobs, map[digest.Digest]bool{}
	for ref := range m.young {
		if !m.keptManifests[ref] {
			m.keptManifests[ref] = true
		} else {
			delete(m.young, ref)
		}
	}
	m.close()
	return m, nil
}

func (c *collector) markRepo(ctx context.Context, repo string, keep regclient.KeepSet, keepDigests map[digest.Digest]bool, cutoff time.Time, m *marked) error {
	r, err := c.repository(ctx, repo)
	if err != nil {
		return err
	}
	ms, err := r.Manifests(ctx)
	if err != nil {
		return err
	}
	if err := c.markTags(ctx, r, repo, keep, m); err != nil {
		return err
	}
	return ms.(distribution.ManifestEnumerator).Enumerate(ctx, func(d digest.Digest) error {
		ref := manifestRef{repo, d}
		m.manifests = append(m.manifests, ref)
		body, err := c.manifestBody(ctx, ms, d)
		if err != nil {
			return nil // a revision without content: nothing to follow, sweep it
		}
		m.bodies[ref] = body
		if keepDigests[d] {
			m.keptManifests[ref] = true
		} else if c.fresh(ctx, revisionLinkPath(repo, d), cutoff) {
			m.young[ref] = true
		}
		return nil
	})
}

// markTags records tags and keeps what kept or fresh tags point at.
func (c *collector) markTags(ctx context.Context, r distribution.Repository, repo string, keep regclient.KeepSet, m *marked) error {
	tags, err := r.Tags(ctx).All(ctx)
	var notFound distribution.ErrRepositoryUnknown
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, tag := range tags {
		desc, err := r.Tags(ctx).Get(ctx, tag)
		if err != nil {
			continue
		}
		ref := manifestRef{repo, desc.Digest}
		m.tags[ref] = append(m.tags[ref], tag)
		if slices.Contains(keep.Tags, regclient.RepoTag{Repo: repo, Tag: tag}) {
			m.keptManifests[ref] = true
		}
	}
	return nil
}

// close extends the kept manifests to children and referrers until
// nothing changes, then collects the blobs they need.
func (m *marked) close() {
	for changed := true; changed; {
		changed = false
		keptDigest := map[digest.Digest]bool{}
		for ref := range m.keptManifests {
			keptDigest[ref.digest] = true
		}
		for _, ref := range m.manifests {
			if m.keptManifests[ref] {
				continue
			}
			body := m.bodies[ref]
			if keptDigest[ref.digest] || (body.Subject != nil && keptDigest[body.Subject.Digest]) || m.parentKept(ref) {
				m.keptManifests[ref] = true
				changed = true
			}
		}
	}
	for ref := range m.keptManifests {
		m.keptBlobs[ref.digest] = true
		for _, d := range m.bodies[ref].references() {
			m.keptBlobs[d] = true
		}
	}
}

// parentKept reports whether a kept index in the same repository lists ref.
func (m *marked) parentKept(ref manifestRef) bool {
	for parent := range m.keptManifests {
		if parent.repo != ref.repo {
			continue
		}
		for _, child := range m.bodies[parent].Manifests {
			if child.Digest == ref.digest {
				return true
			}
		}
	}
	return false
}

func (c *collector) sweepManifests(ctx context.Context, m *marked, cutoff time.Time, dryRun bool, rep *regclient.GCReport) error {
	vacuum := storage.NewVacuum(ctx, c.driver)
	for _, ref := range m.manifests {
		if m.keptManifests[ref] {
			continue
		}
		if dryRun {
			rep.ManifestsRemoved = append(rep.ManifestsRemoved, ref.repo+"@"+ref.digest.String())
			continue
		}
		deleted, err := c.touches.deleteUnless(ref.digest, cutoff, func() error {
			return c.removeManifest(ctx, vacuum, ref, m.tags[ref])
		})
		if err != nil {
			return fmt.Errorf("%s@%s: %w", ref.repo, ref.digest, err)
		}
		if !deleted {
			rep.Spared++
			continue
		}
		rep.ManifestsRemoved = append(rep.ManifestsRemoved, ref.repo+"@"+ref.digest.String())
	}
	return nil
}

// removeManifest untags and deletes one manifest revision. A tag moved
// to another manifest since the mark is left alone.
func (c *collector) removeManifest(ctx context.Context, vacuum storage.Vacuum, ref manifestRef, tags []string) error {
	r, err := c.repository(ctx, ref.repo)
	if err != nil {
		return err
	}
	var gone []string
	for _, tag := range tags {
		desc, err := r.Tags(ctx).Get(ctx, tag)
		if err != nil || desc.Digest != ref.digest {
			continue
		}
		if err := r.Tags(ctx).Untag(ctx, tag); err != nil {
			return err
		}
		gone = append(gone, tag)
	}
	return vacuum.RemoveManifest(ref.repo, ref.digest, gone)
}

func (c *collector) sweepBlobs(ctx context.Context, m *marked, cutoff time.Time, dryRun bool, rep *regclient.GCReport) error {
	vacuum := storage.NewVacuum(ctx, c.driver)
	err := c.ns.Blobs().Enumerate(ctx, func(d digest.Digest) error {
		var size int64
		var fresh bool
		if fi, err := c.driver.Stat(ctx, blobDataPath(d)); err == nil {
			size, fresh = fi.Size(), fi.ModTime().After(cutoff)
		}
		switch {
		case m.referencedBlobs[d]:
			rep.KeptReferencedBytes += size
			return nil
		case m.keptBlobs[d] || fresh:
			rep.KeptYoungBytes += size
			return nil
		}
		if dryRun {
			rep.BlobsRemoved++
			rep.BytesFreed += size
			return nil
		}
		deleted, err := c.touches.deleteUnless(d, cutoff, func() error { return vacuum.RemoveBlob(d.String()) })
		if err != nil {
			return fmt.Errorf("blob %s: %w", d, err)
		}
		if !deleted {
			rep.Spared++
			rep.KeptYoungBytes += size
			return nil
		}
		rep.BlobsRemoved++
		rep.BytesFreed += size
		return nil
	})
	if errors.As(err, &driver.PathNotFoundError{}) {
		return nil // no blob was ever stored
	}
	return err
}

// purgeUploads removes partial uploads started before cutoff, as
// distribution's upload purging does, except those a client still sends
// (a request in flight, or one within uploadIdle): the purge date moves
// back to before the oldest of those began. An upload it fails to remove
// (a client wrote to it meanwhile) is looked at again next time.
func (c *collector) purgeUploads(ctx context.Context, cutoff time.Time, dryRun bool, rep *regclient.GCReport) {
	olderThan, idle := cutoff, time.Now().Add(-c.uploadIdle)
	c.touches.forgetUploads(idle)
	for _, u := range c.touches.uploadsInUse(idle) {
		started, err := c.uploadStarted(ctx, u)
		if err == nil && started.Before(olderThan) {
			olderThan = started
		}
	}
	// Starts are stored in whole seconds: one begun in this second looks
	// older than it is.
	olderThan = olderThan.Truncate(time.Second)
	// A dry run picks them, so that their sizes can be read before they
	// go; then they are deleted as PurgeUploads deletes them.
	stale, _ := storage.PurgeUploads(ctx, c.driver, olderThan, false)
	for _, dir := range stale {
		size := c.size(ctx, path.Join(dir, "data"))
		if !dryRun && c.driver.Delete(ctx, dir) != nil {
			continue
		}
		rep.UploadsPurged++
		rep.UploadBytesFreed += size
	}
	rep.BytesFreed += rep.UploadBytesFreed
}

// uploadStarted is when an upload began, as distribution recorded it.
func (c *collector) uploadStarted(ctx context.Context, u upload) (time.Time, error) {
	b, err := c.driver.GetContent(ctx, path.Join(storageRoot, "repositories", u.repo, "_uploads", u.uuid, "startedat"))
	if err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339, string(b))
}

func (c *collector) repository(ctx context.Context, repo string) (distribution.Repository, error) {
	named, err := reference.WithName(repo)
	if err != nil {
		return nil, fmt.Errorf("repository name %q: %w", repo, err)
	}
	return c.ns.Repository(ctx, named)
}

func (c *collector) manifestBody(ctx context.Context, ms distribution.ManifestService, d digest.Digest) (manifestJS, error) {
	man, err := ms.Get(ctx, d)
	if err != nil {
		return manifestJS{}, err
	}
	_, payload, err := man.Payload()
	if err != nil {
		return manifestJS{}, err
	}
	var body manifestJS
	err = json.Unmarshal(payload, &body)
	return body, err
}

// fresh reports whether the file at p changed after cutoff. A file that
// cannot be read is not fresh.
func (c *collector) fresh(ctx context.Context, p string, cutoff time.Time) bool {
	fi, err := c.driver.Stat(ctx, p)
	return err == nil && fi.ModTime().After(cutoff)
}

func (c *collector) size(ctx context.Context, p string) int64 {
	fi, err := c.driver.Stat(ctx, p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Storage paths, as distribution's filesystem layout has them (v2).
const storageRoot = "/docker/registry/v2"

func revisionLinkPath(repo string, d digest.Digest) string {
	return path.Join(storageRoot, "repositories", repo, "_manifests", "revisions", d.Algorithm().String(), d.Encoded(), "link")
}

func blobDataPath(d digest.Digest) string {
	return path.Join(storageRoot, "blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
}

// Collect runs one collection on the served registry and remembers its
// report for GET /uc/v1/gc and /metrics.
func (s *Server) Collect(ctx context.Context, keep regclient.KeepSet, dryRun bool) (regclient.GCReport, error) {
	rep, err := s.gc.Collect(ctx, keep, dryRun)
	if err != nil || dryRun {
		return rep, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastGC = &rep
	s.totals.runs++
	s.totals.manifests += len(rep.ManifestsRemoved)
	s.totals.blobs += rep.BlobsRemoved
	s.totals.bytes += rep.BytesFreed
	s.totals.lastDuration, s.totals.lastRun = rep.Duration, rep.StartedAt
	return rep, nil
}

// LastGC is the last collection that removed anything or ran for real,
// nil before the first.
func (s *Server) LastGC() *regclient.GCReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastGC
}
