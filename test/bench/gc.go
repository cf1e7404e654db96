package main

// Measurement 6 (section gc): garbage collection of a registry holding
// unreferenced and referenced images while a client pushes in a loop.
// uc's online collector (registry.Server.Collect) runs on the serving
// registry; the peer is distribution's own collector, storage.MarkAndSweep,
// run on a copy of the same storage with no registry serving it, as
// upstream requires (it races with pushes: distribution #3045, #1609).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/opencontainers/go-digest"

	"github.com/ucplane/uc/registry"
	"github.com/ucplane/uc/registry/regclient"
)

const (
	// gcLayerSize is each image's one unique layer.
	gcLayerSize = 4096
	// gcFillers push the initial images concurrently, so filling takes
	// seconds.
	gcFillers = 8
	// gcUnrefRepos spread the unreferenced images over a few repositories.
	gcUnrefRepos = 4
	// gcRefRepo holds the referenced images, tagged t0, t1, ….
	gcRefRepo = "ref/app"
	// gcLiveRepo is where the client pushes during the sweep.
	gcLiveRepo = "live/app"

	ociManifestType = "application/vnd.oci.image.manifest.v1+json"
)

// gcResult is measurement 6.
type gcResult struct {
	unref, ref  int
	grace       time.Duration
	around      time.Duration // the client pushes alone this long before and after the sweep
	fill        time.Duration
	expectBytes int64 // blob bytes of the unreferenced images
	uc, peer    gcSide
	ucReport    regclient.GCReport
	pushes      gcPushes
}

// gcSide is what one collector did, measured the same way for both.
type gcSide struct {
	sweep     time.Duration
	removed   census // before the sweep minus after, live pushes left out
	refIntact int    // referenced images whose manifest, tag and blobs answer 200
	unrefGone int    // unreferenced images whose manifest and blobs answer 404
	dangling  int    // manifest revisions left whose manifest blob is gone
	oddStatus []string
}

// gcPushes classifies the client's pushes by the sweep window.
type gcPushes struct {
	before, during, after []time.Duration
	total, failed         int
	overlapped, served    int // pushes overlapping the sweep; of them, succeeded
	errs                  []string
}

func benchGC(ctx context.Context, cfg config, dir string) (gcResult, error) {
	res := gcResult{unref: cfg.gcUnref, ref: cfg.gcRef, grace: cfg.gcGrace, around: cfg.gcAround}
	ucDir, peerDir := filepath.Join(dir, "uc"), filepath.Join(dir, "peer")
	srv, base, stopSrv, err := serveRegistry(ctx, ucDir)
	if err != nil {
		return res, err
	}
	defer stopSrv()
	c := newGCClient(base)
	refs, unrefs, err := res.fillRegistry(c)
	if err != nil {
		return res, err
	}
	fillEnd := time.Now()
	// The peer sweeps the same storage, copied before any collection.
	if out, err := exec.CommandContext(ctx, "cp", "-a", ucDir, peerDir).CombinedOutput(); err != nil {
		return res, fmt.Errorf("cp -a %s %s: %w\n%s", ucDir, peerDir, err, out)
	}
	// Everything filled must be older than the grace period, or uc would
	// keep it as possibly in flight.
	if !sleepCtx(ctx, time.Until(fillEnd.Add(cfg.gcGrace+500*time.Millisecond))) {
		return res, ctx.Err()
	}
	if err := res.ucRound(ctx, cfg, srv, c, ucDir, refs, unrefs); err != nil {
		return res, err
	}
	stopSrv() // the peer runs alone on the machine
	return res, res.peerRound(ctx, peerDir, refs, unrefs)
}

// serveRegistry serves uc's registry in-process on a loopback port.
func serveRegistry(ctx context.Context, dataDir string) (*registry.Server, string, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	srv, err := registry.Open(ctx, registry.Config{DataDir: dataDir, Listen: "127.0.0.1:0"})
	if err != nil {
		cancel()
		return nil, "", nil, err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				progress("registry on %s stopped: %v", dataDir, err)
			}
		})
	}
	return srv, "http://" + srv.Addr(), stop, nil
}

// fillRegistry pushes the referenced images (tagged) and the unreferenced
// ones (by digest only, so that distribution's RemoveUntagged also sees
// them as garbage), with a few concurrent pushers.
func (r *gcResult) fillRegistry(c gcClient) (refs, unrefs []gcImage, err error) {
	progress("gc: filling the registry with %d + %d images, %d pushers", r.ref, r.unref, gcFillers)
	var contents []gcContent
	for i := range r.ref {
		contents = append(contents, newContent(gcRefRepo, fmt.Sprintf("t%d", i)))
	}
	for i := range r.unref {
		contents = append(contents, newContent(fmt.Sprintf("junk/r%d", i%gcUnrefRepos), ""))
	}
	start := time.Now()
	if err := pushAll(c, contents); err != nil {
		return nil, nil, fmt.Errorf("fill: %w", err)
	}
	r.fill = time.Since(start)
	progress("gc: filled in %s", r.fill.Round(time.Millisecond))
	for i, ct := range contents {
		if i < r.ref {
			refs = append(refs, ct.img)
			continue
		}
		unrefs = append(unrefs, ct.img)
		r.expectBytes += ct.img.bytes
	}
	return refs, unrefs, nil
}

// pushAll pushes contents with gcFillers concurrent clients and returns
// the first error.
func pushAll(c gcClient, contents []gcContent) error {
	jobs := make(chan gcContent)
	errs := make(chan error, gcFillers)
	var wg sync.WaitGroup
	for range gcFillers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var first error
			for ct := range jobs {
				if err := c.push(ct); err != nil && first == nil {
					first = err
				}
			}
			errs <- first
		}()
	}
	for _, ct := range contents {
		jobs <- ct
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// ucRound collects online while the client pushes: alone first for a
// baseline, then during the sweep, then once more after it.
func (r *gcResult) ucRound(ctx context.Context, cfg config, srv *registry.Server, c gcClient, dataDir string, refs, unrefs []gcImage) error {
	before, err := takeCensus(dataDir, nil)
	if err != nil {
		return err
	}
	keep := regclient.KeepSet{Grace: &cfg.gcGrace}
	for _, img := range refs {
		keep.Digests = append(keep.Digests, img.manifest.String())
	}
	progress("gc: uc: pushing for %s, then Collect, then %s more", cfg.gcAround, cfg.gcAround)
	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	recs := make(chan []pushRec, 1)
	go func() { recs <- pushLoop(loopCtx, c) }()
	if !sleepCtx(ctx, cfg.gcAround) {
		return ctx.Err()
	}
	start := time.Now()
	rep, err := srv.Collect(ctx, keep, false)
	end := time.Now()
	if err != nil {
		return fmt.Errorf("uc Collect: %w", err)
	}
	sleepCtx(ctx, cfg.gcAround)
	stopLoop()
	live := <-recs
	r.ucReport, r.uc.sweep = rep, end.Sub(start)
	r.pushes = classify(live, start, end)
	return r.uc.measure(c, dataDir, before, liveDigests(live), refs, unrefs)
}

// peerRound runs distribution's MarkAndSweep on the copied storage with no
// registry serving it, then serves the result to check it as uc's was.
func (r *gcResult) peerRound(ctx context.Context, dataDir string, refs, unrefs []gcImage) error {
	before, err := takeCensus(dataDir, nil)
	if err != nil {
		return err
	}
	progress("gc: peer: storage.MarkAndSweep on a copy, registry stopped")
	if r.peer.sweep, err = markAndSweep(ctx, dataDir); err != nil {
		return fmt.Errorf("peer MarkAndSweep: %w", err)
	}
	_, base, stop, err := serveRegistry(ctx, dataDir)
	if err != nil {
		return err
	}
	defer stop()
	return r.peer.measure(newGCClient(base), dataDir, before, nil, refs, unrefs)
}

// markAndSweep times distribution's offline collector as its
// `registry garbage-collect --delete-untagged` command runs it.
func markAndSweep(ctx context.Context, dataDir string) (time.Duration, error) {
	d, err := filesystem.FromParameters(map[string]any{"rootdirectory": filepath.Join(dataDir, "registry")})
	if err != nil {
		return 0, err
	}
	ns, err := storage.NewRegistry(ctx, d, storage.EnableDelete)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	// With Quiet every line MarkAndSweep would print is skipped, so stdout
	// keeps only the tables.
	err = storage.MarkAndSweep(ctx, d, ns, storage.GCOpts{RemoveUntagged: true, Quiet: true})
	return time.Since(start), err
}

// measure records what a sweep removed (by census) and checks every
// referenced and unreferenced image through the registry's API.
func (s *gcSide) measure(c gcClient, dataDir string, before census, skip map[digest.Digest]bool, refs, unrefs []gcImage) error {
	after, err := takeCensus(dataDir, skip)
	if err != nil {
		return err
	}
	s.removed = census{manifests: before.manifests - after.manifests, blobs: before.blobs - after.blobs, bytes: before.bytes - after.bytes}
	s.dangling = after.dangling
	var mu sync.Mutex
	forEach(refs, func(img gcImage) {
		ok, odd := c.whole(img)
		mu.Lock()
		defer mu.Unlock()
		if ok {
			s.refIntact++
		}
		s.oddStatus = append(s.oddStatus, odd...)
	})
	forEach(unrefs, func(img gcImage) {
		gone, odd := c.gone(img)
		mu.Lock()
		defer mu.Unlock()
		if gone {
			s.unrefGone++
		}
		s.oddStatus = append(s.oddStatus, odd...)
	})
	return nil
}

// forEach runs fn on every image with gcFillers workers.
func forEach(imgs []gcImage, fn func(gcImage)) {
	jobs := make(chan gcImage)
	var wg sync.WaitGroup
	for range gcFillers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for img := range jobs {
				fn(img)
			}
		}()
	}
	for _, img := range imgs {
		jobs <- img
	}
	close(jobs)
	wg.Wait()
}

// pushRec is one push of the client's loop.
type pushRec struct {
	start time.Time
	took  time.Duration // config and layer uploads and the manifest PUT
	img   gcImage
	err   error // the push's, or what the check after it found missing
}

// pushLoop pushes a new unique image at a time until ctx is done, and
// checks after each that the manifest and its blobs are there. Requests
// do not carry ctx: stopping lets the last push finish instead of
// failing it.
func pushLoop(ctx context.Context, c gcClient) []pushRec {
	var recs []pushRec
	for i := 0; ctx.Err() == nil; i++ {
		ct := newContent(gcLiveRepo, fmt.Sprintf("p%d", i))
		rec := pushRec{start: time.Now(), img: ct.img}
		rec.err = c.push(ct)
		rec.took = time.Since(rec.start)
		if rec.err == nil {
			if ok, odd := c.whole(ct.img); !ok {
				rec.err = fmt.Errorf("pushed %s but not whole after: %s", ct.img.ref(), strings.Join(odd, "; "))
			}
		}
		recs = append(recs, rec)
	}
	return recs
}

// classify splits push latencies by the sweep window [start, end].
func classify(recs []pushRec, start, end time.Time) gcPushes {
	var p gcPushes
	for _, rec := range recs {
		recEnd := rec.start.Add(rec.took)
		p.total++
		if rec.err != nil {
			p.failed++
			p.errs = append(p.errs, rec.err.Error())
		}
		switch {
		case !recEnd.After(start):
			p.before = append(p.before, rec.took)
		case !rec.start.Before(end):
			p.after = append(p.after, rec.took)
		default:
			p.during = append(p.during, rec.took)
			p.overlapped++
			if rec.err == nil {
				p.served++
			}
		}
	}
	return p
}

// liveDigests are the manifests and blobs the client pushed, which the
// census leaves out so that it counts only what the sweep removed.
func liveDigests(recs []pushRec) map[digest.Digest]bool {
	out := map[digest.Digest]bool{}
	for _, rec := range recs {
		out[rec.img.manifest] = true
		for _, b := range rec.img.blobs {
			out[b] = true
		}
	}
	return out
}

// census counts what distribution's filesystem layout holds: manifest
// revisions (one link per repository and manifest) and blob data files.
type census struct {
	manifests, blobs int
	bytes            int64
	// dangling revisions link to a manifest blob that is gone: the API
	// answers 404 for them, but the sweep left them behind.
	dangling int
}

// takeCensus walks the storage; skip leaves out blobs and the revisions
// of manifests with these digests.
func takeCensus(dataDir string, skip map[digest.Digest]bool) (census, error) {
	var c census
	blobs := map[digest.Digest]bool{}
	var revisions []digest.Digest
	root := filepath.Join(dataDir, "registry", "docker", "registry", "v2")
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		parent := filepath.Dir(p)
		d := digest.NewDigestFromEncoded(digest.SHA256, filepath.Base(parent))
		switch {
		case skip[d]:
		case e.Name() == "data" && strings.Contains(p, "/blobs/sha256/"):
			info, err := e.Info()
			if err != nil {
				return err
			}
			c.blobs++
			c.bytes += info.Size()
			blobs[d] = true
		case e.Name() == "link" && strings.Contains(p, "/_manifests/revisions/sha256/"):
			c.manifests++
			revisions = append(revisions, d)
		}
		return nil
	})
	for _, d := range revisions {
		if !blobs[d] {
			c.dangling++
		}
	}
	return c, err
}

// gcImage is one pushed image: an OCI manifest, a config and one layer.
type gcImage struct {
	repo, tag string // tag "" is pushed by digest only
	manifest  digest.Digest
	blobs     []digest.Digest // config, layer
	bytes     int64           // manifest, config and layer
}

func (i gcImage) ref() string {
	if i.tag != "" {
		return i.repo + ":" + i.tag
	}
	return i.repo + "@" + i.manifest.String()
}

// gcContent is an image with its bytes, made before the push so that its
// digests are known even when the push fails.
type gcContent struct {
	img                      gcImage
	config, layer, manifestB []byte
}

type gcDescriptor struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int           `json:"size"`
}

type gcManifest struct {
	SchemaVersion int            `json:"schemaVersion"`
	MediaType     string         `json:"mediaType"`
	Config        gcDescriptor   `json:"config"`
	Layers        []gcDescriptor `json:"layers"`
}

// newContent makes a unique image: a config with a random nonce and a
// random layer, so that no two images share a blob.
func newContent(repo, tag string) gcContent {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	ct := gcContent{
		config: fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"nonce":%q}`, hex.EncodeToString(nonce)),
		layer:  make([]byte, gcLayerSize),
	}
	_, _ = rand.Read(ct.layer)
	m := gcManifest{SchemaVersion: 2, MediaType: ociManifestType,
		Config: gcDescriptor{"application/vnd.oci.image.config.v1+json", digest.FromBytes(ct.config), len(ct.config)},
		Layers: []gcDescriptor{{"application/vnd.oci.image.layer.v1.tar", digest.FromBytes(ct.layer), len(ct.layer)}}}
	ct.manifestB, _ = json.Marshal(m)
	ct.img = gcImage{repo: repo, tag: tag, manifest: digest.FromBytes(ct.manifestB),
		blobs: []digest.Digest{m.Config.Digest, m.Layers[0].Digest},
		bytes: int64(len(ct.manifestB) + len(ct.config) + len(ct.layer))}
	return ct
}

// gcClient pushes and checks content with plain HTTP, as a registry
// client does: HEAD a blob, upload it if missing, then PUT the manifest.
type gcClient struct {
	base string
	http *http.Client
}

func newGCClient(base string) gcClient {
	return gcClient{base: base, http: &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 2 * gcFillers},
		Timeout:   time.Minute,
	}}
}

func (c gcClient) push(ct gcContent) error {
	for _, b := range [][]byte{ct.config, ct.layer} {
		if err := c.pushBlob(ct.img.repo, b); err != nil {
			return fmt.Errorf("%s: %w", ct.img.ref(), err)
		}
	}
	ref := ct.img.tag
	if ref == "" {
		ref = ct.img.manifest.String()
	}
	resp, err := c.send(http.MethodPut, c.base+"/v2/"+ct.img.repo+"/manifests/"+ref, ociManifestType, ct.manifestB)
	if err != nil {
		return fmt.Errorf("put manifest %s: %w", ct.img.ref(), err)
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("put manifest %s: %s", ct.img.ref(), resp.Status)
	}
	return nil
}

// pushBlob uploads data in one monolithic PUT unless the registry has it.
func (c gcClient) pushBlob(repo string, data []byte) error {
	d := digest.FromBytes(data)
	if code, _, err := c.head(repo, "blobs", d.String()); err == nil && code == http.StatusOK {
		return nil
	}
	resp, err := c.send(http.MethodPost, c.base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return fmt.Errorf("start upload: %w", err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload: %s", resp.Status)
	}
	loc, sep := resp.Header.Get("Location"), "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	if !strings.HasPrefix(loc, "http") {
		loc = c.base + loc
	}
	resp, err = c.send(http.MethodPut, loc+sep+"digest="+d.String(), "application/octet-stream", data)
	if err != nil {
		return fmt.Errorf("finish upload: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("finish upload: %s", resp.Status)
	}
	return nil
}

// send does one request and drains the body so the connection is reused.
func (c gcClient) send(method, url, contentType string, body []byte) (*http.Response, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", ociManifestType)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

func (c gcClient) head(repo, kind, ref string) (int, http.Header, error) {
	resp, err := c.send(http.MethodHead, c.base+"/v2/"+repo+"/"+kind+"/"+ref, "", nil)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, resp.Header, nil
}

// whole reports whether the image's manifest, tag (when it has one) and
// blobs all answer 200; odd lists what did not.
func (c gcClient) whole(img gcImage) (bool, []string) {
	var odd []string
	check := func(kind, ref string) http.Header {
		code, h, err := c.head(img.repo, kind, ref)
		if err != nil || code != http.StatusOK {
			odd = append(odd, fmt.Sprintf("HEAD %s/%s/%s: %d %v", img.repo, kind, ref, code, err))
		}
		return h
	}
	check("manifests", img.manifest.String())
	if img.tag != "" {
		if h := check("manifests", img.tag); h != nil && h.Get("Docker-Content-Digest") != img.manifest.String() {
			odd = append(odd, fmt.Sprintf("%s points at %s, want %s", img.ref(), h.Get("Docker-Content-Digest"), img.manifest))
		}
	}
	for _, b := range img.blobs {
		check("blobs", b.String())
	}
	return len(odd) == 0, odd
}

// gone reports whether the image's manifest and blobs all answer 404;
// odd lists answers that were neither 200 nor 404.
func (c gcClient) gone(img gcImage) (bool, []string) {
	var odd []string
	all := true
	check := func(kind string, d digest.Digest) {
		code, _, err := c.head(img.repo, kind, d.String())
		if err != nil || (code != http.StatusOK && code != http.StatusNotFound) {
			odd = append(odd, fmt.Sprintf("HEAD %s/%s/%s: %d %v", img.repo, kind, d, code, err))
		}
		all = all && code == http.StatusNotFound
	}
	check("manifests", img.manifest)
	for _, b := range img.blobs {
		check("blobs", b)
	}
	return all, odd
}
