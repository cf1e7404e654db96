package registry

import (
	"bytes"
	_ "crypto/sha256" // go-digest needs the algorithm linked in
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// touches records when clients last relied on a blob or manifest: a HEAD
// before deciding not to upload, a mount, a finished upload, a manifest
// that references it. The sweep deletes nothing touched within the grace
// period, and it checks and deletes under the same lock the recording
// takes, so a client either sees the content gone (and uploads it) or
// keeps it from being swept. This is what distribution's own GC lacks
// (distribution #3045, #1609).
type touches struct {
	mu sync.Mutex // held by the sweep for one deletion at a time
	at map[digest.Digest]time.Time
	// uploads are the blob uploads clients are using, by upload UUID: a
	// purge of stale uploads spares them.
	uploads map[string]*uploadUse
}

// uploadUse is how a client uses one blob upload.
type uploadUse struct {
	repo     string
	inFlight int       // requests being served now
	last     time.Time // when the last request ended (or began)
}

// upload names one blob upload of a repository.
type upload struct{ repo, uuid string }

func newTouches() *touches {
	return &touches{at: map[digest.Digest]time.Time{}, uploads: map[string]*uploadUse{}}
}

// useUpload records a request for an upload starting (delta 1) or ending
// (delta -1).
func (t *touches) useUpload(repo, uuid string, now time.Time, delta int) {
	if uuid == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	u := t.uploads[uuid]
	if u == nil {
		u = &uploadUse{repo: repo}
		t.uploads[uuid] = u
	}
	u.inFlight += delta
	u.last = now
}

// uploadsInUse lists the uploads with a request in flight or used since
// cutoff: a client is still sending them.
func (t *touches) uploadsInUse(cutoff time.Time) []upload {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []upload
	for uuid, u := range t.uploads {
		if u.inFlight > 0 || u.last.After(cutoff) {
			out = append(out, upload{u.repo, uuid})
		}
	}
	return out
}

func (t *touches) touch(now time.Time, dgsts ...digest.Digest) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, d := range dgsts {
		t.at[d] = now
	}
}

// deleteUnless runs del for d unless d was touched since cutoff, holding
// the lock so that no touch slips between the check and the deletion.
func (t *touches) deleteUnless(d digest.Digest, cutoff time.Time, del func() error) (deleted bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.at[d].After(cutoff) {
		return false, nil
	}
	return true, del()
}

// forget drops touches older than cutoff, which can no longer protect
// anything.
func (t *touches) forget(cutoff time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for d, at := range t.at {
		if at.Before(cutoff) {
			delete(t.at, d)
		}
	}
}

// forgetUploads drops uploads idle since before cutoff: abandoned, or
// finished.
func (t *touches) forgetUploads(cutoff time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for uuid, u := range t.uploads {
		if u.inFlight == 0 && u.last.Before(cutoff) {
			delete(t.uploads, uuid)
		}
	}
}

// maxManifestBytes bounds the manifest bodies read to find references;
// distribution refuses manifests over 4 MiB as well.
const maxManifestBytes = 4 << 20

// track records the digests a request relies on before distribution
// serves it.
func (t *touches) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		kind, ref, ok := splitV2Path(r.URL.Path)
		switch {
		case !ok:
		case kind == "manifests" && r.Method == http.MethodPut:
			body, err := io.ReadAll(io.LimitReader(r.Body, maxManifestBytes+1))
			if err != nil {
				http.Error(w, fmt.Sprintf("read manifest: %v", err), http.StatusBadRequest)
				return
			}
			t.touch(now, manifestReferences(body)...)
			r.Body = io.NopCloser(bytes.NewReader(body))
		case kind == "blobs":
			if d, err := digest.Parse(ref); err == nil {
				t.touch(now, d)
			}
		case kind == "uploads":
			for _, key := range []string{"digest", "mount"} {
				if d, err := digest.Parse(r.URL.Query().Get(key)); err == nil {
					t.touch(now, d)
				}
			}
			t.trackUpload(w, r, ref, next)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// trackUpload serves a request for a blob upload while recording that the
// upload is in use; a POST starts one, named by the answer's
// Docker-Upload-UUID.
func (t *touches) trackUpload(w http.ResponseWriter, r *http.Request, uuid string, next http.Handler) {
	repo := v2Repo(r.URL.Path)
	t.useUpload(repo, uuid, time.Now(), 1)
	defer func() {
		t.useUpload(repo, uuid, time.Now(), -1)
		if uuid == "" {
			t.useUpload(repo, w.Header().Get("Docker-Upload-UUID"), time.Now(), 0)
		}
	}()
	next.ServeHTTP(w, r)
}

// v2Repo is the repository of a /v2/<name>/blobs/uploads/… path.
func v2Repo(path string) string {
	rest := strings.TrimPrefix(path, "/v2/")
	if i := strings.LastIndex(rest, "/blobs/uploads"); i >= 0 {
		return rest[:i]
	}
	return ""
}

// splitV2Path reads /v2/<name>/{manifests,blobs}/<ref> and
// /v2/<name>/blobs/uploads/<uuid>; kind is "manifests", "blobs" or
// "uploads", whose ref is the upload's UUID ("" for a POST).
func splitV2Path(path string) (kind, ref string, ok bool) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return "", "", false
	}
	if i := strings.LastIndex(rest, "/blobs/uploads"); i >= 0 {
		return "uploads", strings.Trim(rest[i+len("/blobs/uploads"):], "/"), true
	}
	for _, k := range []string{"manifests", "blobs"} {
		if i := strings.LastIndex(rest, "/"+k+"/"); i >= 0 {
			return k, rest[i+len(k)+2:], true
		}
	}
	return "", "", false
}

// manifestReferences is a manifest's own digest and every digest it
// names: config, layers, child manifests and subject.
func manifestReferences(body []byte) []digest.Digest {
	type desc struct {
		Digest digest.Digest `json:"digest"`
	}
	var m struct {
		Config    *desc  `json:"config"`
		Layers    []desc `json:"layers"`
		Manifests []desc `json:"manifests"`
		Subject   *desc  `json:"subject"`
	}
	out := []digest.Digest{digest.FromBytes(body)}
	if json.Unmarshal(body, &m) != nil {
		return out
	}
	all := append(append([]desc{}, m.Layers...), m.Manifests...)
	for _, d := range []*desc{m.Config, m.Subject} {
		if d != nil {
			all = append(all, *d)
		}
	}
	for _, d := range all {
		if d.Digest.Validate() == nil {
			out = append(out, d.Digest)
		}
	}
	return out
}
