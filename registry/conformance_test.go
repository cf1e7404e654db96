package registry

// A conformance suite for the embedded registry, written from the OCI
// distribution-spec text (spec.md, "Workflow Categories": Pull, Push,
// Content Discovery, Content Management). Each category runs against a
// registry without auth and against one behind htpasswd basic auth: auth
// must change who may do things, never what the API does.
//
// Where distribution v3.1.2 departs from the spec, or the spec leaves a
// choice to the registry, the test says so in a comment and logs the
// answer it got, so that a distribution upgrade that changes it shows up.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

const (
	confUser = "alice"
	confPass = "correct horse"
)

// TestConformance runs the four workflow categories with and without auth.
func TestConformance(t *testing.T) {
	for _, mode := range []struct {
		name string
		auth bool
	}{{"NoAuth", false}, {"HTPasswd", true}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			c := newConfSuite(t, mode.auth)
			t.Run("Pull", func(t *testing.T) { testPull(t, c) })
			t.Run("Push", func(t *testing.T) { testPush(t, c) })
			t.Run("ContentDiscovery", func(t *testing.T) { testContentDiscovery(t, c) })
			t.Run("ContentManagement", func(t *testing.T) { testContentManagement(t, c) })
		})
	}
}

// newConfSuite starts a registry and returns a client for it, with the
// registry's credentials when it requires auth.
func newConfSuite(t *testing.T, withAuth bool) *confClient {
	t.Helper()
	var cfg Config
	c := &confClient{hc: newConfHTTPClient()}
	if withAuth {
		cfg.HTPasswd = writeHTPasswd(t, confUser, confPass)
		c.user, c.pass = confUser, confPass
	}
	c.base = "http://" + startConfRegistry(t, cfg).Addr()
	return c
}

// testPull: spec "Pull" — pulling manifests and blobs, and checking that
// content exists.
func testPull(t *testing.T, c *confClient) {
	const repo = "conformance/pull"
	img := c.pushImage(t, repo, "v1")

	t.Run("APIVersionCheck", func(t *testing.T) {
		// end-1: 200 means the registry implements the spec.
		expect(t, "GET /v2/", c.do(t, http.MethodGet, "/v2/", nil, nil), http.StatusOK)
	})

	t.Run("Manifest", func(t *testing.T) {
		for _, tc := range []struct{ name, ref, method string }{
			{"GetByTag", "v1", http.MethodGet},
			{"HeadByTag", "v1", http.MethodHead},
			{"GetByDigest", img.digest.String(), http.MethodGet},
			{"HeadByDigest", img.digest.String(), http.MethodHead},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := c.do(t, tc.method, "/v2/"+repo+"/manifests/"+tc.ref, nil, nil)
				expect(t, tc.name, a, http.StatusOK)
				checkContentHeaders(t, a, img.digest, len(img.manifest))
				if ct := a.header.Get("Content-Type"); ct != mtManifest {
					t.Errorf("Content-Type %q, want %q", ct, mtManifest)
				}
				if tc.method == http.MethodHead {
					// A HEAD answer has no body.
					if len(a.body) != 0 {
						t.Errorf("HEAD returned %d body bytes", len(a.body))
					}
					return
				}
				// The registry must hand back the exact bytes pushed, and
				// the digest header must be the digest of those bytes.
				if !bytes.Equal(a.body, img.manifest) {
					t.Errorf("manifest body differs from what was pushed:\n%s", a.body)
				}
				if got := sha256Digest(a.body); got != img.digest.String() {
					t.Errorf("body digest %s, want %s", got, img.digest)
				}
			})
		}
	})

	t.Run("ManifestWithoutAccept", func(t *testing.T) {
		// The spec says a client SHOULD send Accept; it does not say what
		// happens without it. distribution v3.1.2 refuses to serve an OCI
		// manifest to a client that did not accept its media type.
		a := c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/v1", map[string]string{"Accept": ""}, nil)
		t.Logf("GET manifest without Accept: %d %v %s", a.status, a.errorCodes(), bytes.TrimSpace(a.body))
		if a.status != http.StatusOK && a.status != http.StatusNotFound {
			t.Errorf("status %d, want 200 or 404", a.status)
		}
	})

	t.Run("Blob", func(t *testing.T) {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			t.Run(method, func(t *testing.T) {
				a := c.do(t, method, "/v2/"+repo+"/blobs/"+img.layerD.String(), nil, nil)
				expect(t, method+" blob", a, http.StatusOK)
				checkContentHeaders(t, a, img.layerD, len(img.layer))
				if method == http.MethodGet && !bytes.Equal(a.body, img.layer) {
					t.Errorf("blob body differs from what was pushed")
				}
			})
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		unknown := digest.FromString("never pushed").String()
		for _, tc := range []struct {
			name, method, path string
			codes              []string // nil: HEAD, which has no body
		}{
			{"ManifestUnknownTag", http.MethodGet, "/v2/" + repo + "/manifests/nope", []string{"MANIFEST_UNKNOWN"}},
			{"ManifestUnknownDigest", http.MethodGet, "/v2/" + repo + "/manifests/" + unknown, []string{"MANIFEST_UNKNOWN"}},
			{"HeadManifestUnknown", http.MethodHead, "/v2/" + repo + "/manifests/nope", nil},
			{"BlobUnknown", http.MethodGet, "/v2/" + repo + "/blobs/" + unknown, []string{"BLOB_UNKNOWN"}},
			{"HeadBlobUnknown", http.MethodHead, "/v2/" + repo + "/blobs/" + unknown, nil},
			// A repository that was never pushed to: distribution answers
			// from the tag store, so the code is MANIFEST_UNKNOWN, not
			// NAME_UNKNOWN (both are spec codes; the spec only requires 404).
			{"ManifestInUnknownRepo", http.MethodGet, "/v2/conformance/nosuchrepo/manifests/v1", []string{"MANIFEST_UNKNOWN"}},
			{"BlobInUnknownRepo", http.MethodGet, "/v2/conformance/nosuchrepo/blobs/" + img.layerD.String(), []string{"BLOB_UNKNOWN"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				expect(t, tc.name, c.do(t, tc.method, tc.path, nil, nil), http.StatusNotFound, tc.codes...)
			})
		}
	})
}

// checkContentHeaders checks the digest and length headers of a
// successful GET or HEAD.
func checkContentHeaders(t *testing.T, a answer, d digest.Digest, size int) {
	t.Helper()
	if got := a.header.Get("Docker-Content-Digest"); got != d.String() {
		t.Errorf("Docker-Content-Digest %q, want %q", got, d)
	}
	if got := a.header.Get("Content-Length"); got != strconv.Itoa(size) {
		t.Errorf("Content-Length %q, want %d", got, size)
	}
}

// testPush: spec "Push" — monolithic, single-POST and chunked blob
// uploads, mounts, and manifests.
func testPush(t *testing.T, c *confClient) {
	const repo = "conformance/push"

	t.Run("MonolithicPostPut", func(t *testing.T) {
		data := []byte("monolithic POST then PUT")
		d := digest.FromBytes(data)
		loc := c.startUpload(t, repo)
		a := c.do(t, http.MethodPut, withQuery(t, loc, "digest", d.String()),
			map[string]string{"Content-Type": mtOctetStream}, data)
		expect(t, "PUT", a, http.StatusCreated)
		checkPullableBlob(t, c, a, data)
	})

	t.Run("SinglePost", func(t *testing.T) {
		// end-4b: a registry MAY complete the upload in the POST (201);
		// one that does not SHOULD answer 202 with a Location, and the
		// client then finishes with a PUT.
		data := []byte("single POST")
		d := digest.FromBytes(data)
		a := c.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(),
			map[string]string{"Content-Type": mtOctetStream}, data)
		switch a.status {
		case http.StatusCreated:
			checkPullableBlob(t, c, a, data)
		case http.StatusAccepted:
			t.Logf("single POST not supported: 202 with Location; finishing with PUT")
			loc := a.header.Get("Location")
			if loc == "" {
				t.Fatal("202 without Location")
			}
			a = c.do(t, http.MethodPut, withQuery(t, loc, "digest", d.String()),
				map[string]string{"Content-Type": mtOctetStream}, data)
			expect(t, "PUT after 202", a, http.StatusCreated)
			checkPullableBlob(t, c, a, data)
		default:
			t.Fatalf("single POST: status %d (%s)", a.status, a.body)
		}
	})

	t.Run("Chunked", func(t *testing.T) {
		chunks := [][]byte{[]byte("first chunk;"), []byte("second, longer chunk;"), []byte("end")}
		data := bytes.Join(chunks, nil)
		loc := c.startUpload(t, repo)
		offset := 0
		for i, chunk := range chunks {
			end := offset + len(chunk) - 1
			a := c.do(t, http.MethodPatch, loc, map[string]string{
				"Content-Type":  mtOctetStream,
				"Content-Range": fmt.Sprintf("%d-%d", offset, end),
			}, chunk)
			expect(t, fmt.Sprintf("PATCH chunk %d", i), a, http.StatusAccepted)
			// Each chunk's answer carries the Location for the next one
			// and the range received so far, inclusive.
			if loc = a.header.Get("Location"); loc == "" {
				t.Fatalf("chunk %d: no Location", i)
			}
			if got, want := a.header.Get("Range"), fmt.Sprintf("0-%d", end); got != want {
				t.Errorf("chunk %d: Range %q, want %q", i, got, want)
			}
			offset = end + 1
		}
		// end-13: the upload's status is 204 with the same Range.
		st := c.do(t, http.MethodGet, loc, nil, nil)
		expect(t, "GET upload status", st, http.StatusNoContent)
		if got, want := st.header.Get("Range"), fmt.Sprintf("0-%d", len(data)-1); got != want {
			t.Errorf("upload status Range %q, want %q", got, want)
		}
		a := c.do(t, http.MethodPut, withQuery(t, loc, "digest", digest.FromBytes(data).String()), nil, nil)
		expect(t, "closing PUT", a, http.StatusCreated)
		checkPullableBlob(t, c, a, data)
	})

	t.Run("ChunkOutOfOrder", func(t *testing.T) {
		first, rest := []byte("0123456789"), []byte("abcdefghij")
		data := append(slices.Clone(first), rest...)
		loc := c.startUpload(t, repo)
		a := c.do(t, http.MethodPatch, loc, map[string]string{"Content-Type": mtOctetStream, "Content-Range": "0-9"}, first)
		expect(t, "first chunk", a, http.StatusAccepted)
		loc = a.header.Get("Location")
		// Any chunk that does not start right after the last byte
		// received must be refused with 416.
		for _, tc := range []struct{ name, rng string }{
			{"Gap", "20-29"},
			{"Overlap", "5-14"},
			{"Restart", "0-9"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := c.do(t, http.MethodPatch, loc, map[string]string{"Content-Type": mtOctetStream, "Content-Range": tc.rng}, rest)
				expect(t, "PATCH "+tc.rng, a, http.StatusRequestedRangeNotSatisfiable)
				t.Logf("out-of-order chunk %s: %d %v", tc.rng, a.status, a.errorCodes())
			})
		}
		// The refused chunks changed nothing: the status still says 0-9,
		// and the upload can be resumed and finished (resumable push).
		st := c.do(t, http.MethodGet, loc, nil, nil)
		expect(t, "GET upload status", st, http.StatusNoContent)
		if got := st.header.Get("Range"); got != "0-9" {
			t.Fatalf("Range after refused chunks %q, want 0-9", got)
		}
		a = c.do(t, http.MethodPatch, st.header.Get("Location"), map[string]string{"Content-Type": mtOctetStream, "Content-Range": "10-19"}, rest)
		expect(t, "in-order chunk", a, http.StatusAccepted)
		a = c.do(t, http.MethodPut, withQuery(t, a.header.Get("Location"), "digest", digest.FromBytes(data).String()), nil, nil)
		expect(t, "closing PUT", a, http.StatusCreated)
		checkPullableBlob(t, c, a, data)
	})

	t.Run("Mount", func(t *testing.T) {
		const from, to = "conformance/mount-from", "conformance/mount-to"
		data := []byte("blob to mount")
		d := c.pushBlob(t, from, data)
		if c.exists(t, to, "blobs", d.String()) {
			t.Fatal("blob in target repo before the mount")
		}
		a := c.do(t, http.MethodPost, "/v2/"+to+"/blobs/uploads/?mount="+d.String()+"&from="+from, nil, []byte{})
		expect(t, "mount", a, http.StatusCreated)
		if got := a.header.Get("Docker-Content-Digest"); got != "" && got != d.String() {
			t.Errorf("Docker-Content-Digest %q, want %q", got, d)
		}
		checkPullableBlob(t, c, a, data)
		if !c.exists(t, to, "blobs", d.String()) {
			t.Error("mounted blob not in target repo")
		}
	})

	t.Run("MountMissingFallsBackToUpload", func(t *testing.T) {
		// A registry that cannot mount SHOULD answer 202: an upload
		// session the client may use to push the blob itself.
		data := []byte("blob nobody pushed before")
		d := digest.FromBytes(data)
		a := c.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?mount="+d.String()+"&from=conformance/mount-from", nil, []byte{})
		expect(t, "mount of missing blob", a, http.StatusAccepted)
		loc := a.header.Get("Location")
		if loc == "" {
			t.Fatal("202 without Location")
		}
		a = c.do(t, http.MethodPut, withQuery(t, loc, "digest", d.String()), map[string]string{"Content-Type": mtOctetStream}, data)
		expect(t, "PUT to the fallback session", a, http.StatusCreated)
		checkPullableBlob(t, c, a, data)
	})

	t.Run("Manifest", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			byTag bool
		}{{"ByTag", true}, {"ByDigest", false}} {
			t.Run(tc.name, func(t *testing.T) {
				img := newImage(t, "push-manifest-"+tc.name)
				c.pushBlob(t, repo, img.config)
				c.pushBlob(t, repo, img.layer)
				ref := img.digest.String()
				if tc.byTag {
					ref = "tag-" + strings.ToLower(tc.name)
				}
				a := c.putManifest(t, repo, ref, img.manifest)
				expect(t, "PUT manifest", a, http.StatusCreated)
				if got := a.header.Get("Docker-Content-Digest"); got != img.digest.String() {
					t.Errorf("Docker-Content-Digest %q, want %q", got, img.digest)
				}
				// Location must be a pullable manifest URL.
				loc := a.header.Get("Location")
				if loc == "" {
					t.Fatal("no Location")
				}
				got := c.do(t, http.MethodGet, loc, nil, nil)
				expect(t, "GET Location "+loc, got, http.StatusOK)
				if !bytes.Equal(got.body, img.manifest) {
					t.Error("manifest at Location differs from what was pushed")
				}
				for _, r := range []string{ref, img.digest.String()} {
					if !c.exists(t, repo, "manifests", r) {
						t.Errorf("manifest %s not found after push", r)
					}
				}
			})
		}
	})

	t.Run("ManifestBlobUnknown", func(t *testing.T) {
		// The config is pushed, the layer is not: the registry may
		// refuse the manifest, and if it does the code is
		// MANIFEST_BLOB_UNKNOWN.
		img := newImage(t, "missing-layer")
		c.pushBlob(t, repo, img.config)
		a := c.putManifest(t, repo, "missing-layer", img.manifest)
		expect(t, "PUT manifest with a missing layer", a, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN")
		if c.exists(t, repo, "manifests", "missing-layer") || c.exists(t, repo, "manifests", img.digest.String()) {
			t.Error("refused manifest exists")
		}
	})

	t.Run("ManifestWithUnknownSubject", func(t *testing.T) {
		// A registry MUST accept a manifest whose subject does not exist
		// (yet), so that referrers can be pushed before their subject.
		subject := newImage(t, "subject-pushed-later")
		art := newArtifact(t, c, repo, subject, "application/vnd.example.later.v1", nil)
		a := c.putManifest(t, repo, art.digest.String(), art.manifest)
		expect(t, "PUT manifest with unknown subject", a, http.StatusCreated)
	})

	t.Run("DigestMismatch", func(t *testing.T) {
		data := []byte("the bytes actually sent")
		claimed := digest.FromString("some other bytes")
		loc := c.startUpload(t, repo)
		a := c.do(t, http.MethodPut, withQuery(t, loc, "digest", claimed.String()),
			map[string]string{"Content-Type": mtOctetStream}, data)
		expect(t, "PUT with wrong digest", a, http.StatusBadRequest, "DIGEST_INVALID")
		// Nothing was stored under either digest.
		for _, d := range []digest.Digest{claimed, digest.FromBytes(data)} {
			if c.exists(t, repo, "blobs", d.String()) {
				t.Errorf("blob %s exists after a refused upload", d)
			}
		}
	})
}

// checkPullableBlob checks a 201 answer's Location: a pullable blob URL
// serving data.
func checkPullableBlob(t *testing.T, c *confClient, a answer, data []byte) {
	t.Helper()
	loc := a.header.Get("Location")
	if loc == "" {
		t.Fatal("201 without Location")
	}
	got := c.do(t, http.MethodGet, loc, nil, nil)
	expect(t, "GET "+loc, got, http.StatusOK)
	if !bytes.Equal(got.body, data) {
		t.Errorf("blob at %s differs from what was pushed", loc)
	}
	if d := got.header.Get("Docker-Content-Digest"); d != sha256Digest(data) {
		t.Errorf("Docker-Content-Digest %q, want %q", d, sha256Digest(data))
	}
}

// confArtifact is an artifact manifest (OCI image manifest with artifactType,
// empty config and a subject).
type confArtifact struct {
	manifest []byte
	digest   digest.Digest
}

// newArtifact pushes the artifact's blobs and returns its manifest, not
// yet pushed.
func newArtifact(t *testing.T, c *confClient, repo string, subject confImage, artifactType string, annotations map[string]string) confArtifact {
	t.Helper()
	empty := []byte("{}")
	payload := []byte("payload of a " + artifactType + " for " + subject.digest.String())
	c.pushBlob(t, repo, empty)
	c.pushBlob(t, repo, payload)
	subj := descOf(mtManifest, subject.manifest)
	m := confManifest{SchemaVersion: 2, MediaType: mtManifest, ArtifactType: artifactType,
		Config: descOf(mtEmpty, empty), Layers: []confDesc{descOf("application/vnd.example.payload", payload)},
		Subject: &subj, Annotations: annotations}
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return confArtifact{manifest: body, digest: digest.FromBytes(body)}
}

// testContentDiscovery: spec "Content Discovery" — tag listing with
// pagination, and the referrers API.
func testContentDiscovery(t *testing.T, c *confClient) {
	const repo = "conformance/discovery"
	img := c.pushImage(t, repo, "e")
	// Pushed out of order: the listing must be sorted regardless.
	for _, tag := range []string{"c", "a", "d", "b"} {
		expect(t, "tag "+tag, c.putManifest(t, repo, tag, img.manifest), http.StatusCreated)
	}
	all := []string{"a", "b", "c", "d", "e"}

	t.Run("TagsList", func(t *testing.T) {
		a, tags := c.tagsList(t, repo, "")
		expect(t, "tags list", a, http.StatusOK)
		if !slices.Equal(tags, all) {
			t.Errorf("tags %v, want %v", tags, all)
		}
	})

	t.Run("TagsPagination", func(t *testing.T) {
		for _, tc := range []struct {
			query string
			want  []string
			link  bool // a Link rel="next" is expected
		}{
			{"?n=2", []string{"a", "b"}, true},
			{"?n=2&last=b", []string{"c", "d"}, true},
			{"?n=2&last=d", []string{"e"}, false},
			{"?last=c", []string{"d", "e"}, false}, // n is optional with last
			{"?n=10", all, false},
			// n=0 MUST give an empty list and MUST NOT give a Link.
			{"?n=0", []string{}, false},
		} {
			t.Run(tc.query, func(t *testing.T) {
				a, tags := c.tagsList(t, repo, tc.query)
				expect(t, "tags list "+tc.query, a, http.StatusOK)
				if tags == nil {
					tags = []string{}
				}
				if !slices.Equal(tags, tc.want) {
					t.Errorf("tags %v, want %v", tags, tc.want)
				}
				if link := nextLink(a.header); (link != "") != tc.link {
					t.Errorf("Link next %q, want present=%v", link, tc.link)
				}
			})
		}
	})

	t.Run("TagsExactPage", func(t *testing.T) {
		// n equal to the number of tags: the spec allows a Link only when
		// more tags exist; report what the registry sends.
		a, tags := c.tagsList(t, repo, "?n=5")
		expect(t, "tags list ?n=5", a, http.StatusOK)
		if !slices.Equal(tags, all) {
			t.Errorf("tags %v, want %v", tags, all)
		}
		if link := nextLink(a.header); link != "" {
			t.Logf("n=5 with exactly 5 tags still sends Link %q", link)
			_, more := c.tagsList(t, repo, strings.TrimPrefix(link, "/v2/"+repo+"/tags/list"))
			if len(more) != 0 {
				t.Errorf("the Link of the last page lists %v", more)
			}
		}
	})

	t.Run("TagsFollowLink", func(t *testing.T) {
		// A client that follows Link rel="next" sees every tag once.
		var got []string
		next := "/v2/" + repo + "/tags/list?n=2"
		for i := 0; next != "" && i < 10; i++ {
			a := c.do(t, http.MethodGet, next, nil, nil)
			expect(t, "GET "+next, a, http.StatusOK)
			var l struct {
				Tags []string `json:"tags"`
			}
			if err := json.Unmarshal(a.body, &l); err != nil {
				t.Fatal(err)
			}
			got = append(got, l.Tags...)
			next = nextLink(a.header)
		}
		if !slices.Equal(got, all) {
			t.Errorf("tags following Link %v, want %v", got, all)
		}
	})

	t.Run("TagsUnknownRepo", func(t *testing.T) {
		a, _ := c.tagsList(t, "conformance/nosuchrepo", "")
		expect(t, "tags of unknown repo", a, http.StatusNotFound, "NAME_UNKNOWN")
	})

	t.Run("Referrers", func(t *testing.T) { testReferrers(t, c) })
}

// testReferrers pushes an artifact whose subject is an image, then asks
// the referrers API (end-12a) for it. When the registry does not
// implement the API it is skipped with the registry's exact answer: the
// spec's fallback (the referrers tag schema) is client-side and proves
// nothing about the registry.
func testReferrers(t *testing.T, c *confClient) {
	const repo = "conformance/referrers"
	const sbom, sig = "application/vnd.example.sbom.v1", "application/vnd.example.signature.v1"
	subject := c.pushImage(t, repo, "subject")
	annotations := map[string]string{"org.example.kind": "sbom"}
	sbomArt := newArtifact(t, c, repo, subject, sbom, annotations)
	sigArt := newArtifact(t, c, repo, subject, sig, nil)

	var subjectHeader []string
	for _, art := range []confArtifact{sbomArt, sigArt} {
		a := c.putManifest(t, repo, art.digest.String(), art.manifest)
		expect(t, "PUT artifact", a, http.StatusCreated)
		// OCI-Subject on the PUT answer says the registry processed the
		// subject; if it is there it must name the subject.
		h := a.header.Get("OCI-Subject")
		subjectHeader = append(subjectHeader, h)
		if h != "" && h != subject.digest.String() {
			t.Errorf("OCI-Subject %q, want %q", h, subject.digest)
		}
	}

	path := "/v2/" + repo + "/referrers/" + subject.digest.String()
	a := c.do(t, http.MethodGet, path, nil, nil)
	if a.status == http.StatusNotFound {
		// A registry with the referrers API MUST NOT answer 404 here.
		t.Skipf("referrers API not implemented: GET %s answered %d, Content-Type %q, body %q; "+
			"artifact PUTs answered 201 with OCI-Subject %q",
			path, a.status, a.header.Get("Content-Type"), bytes.TrimSpace(a.body), subjectHeader)
	}
	expect(t, "GET referrers", a, http.StatusOK)
	if ct := a.header.Get("Content-Type"); ct != mtIndex {
		t.Errorf("Content-Type %q, want %q", ct, mtIndex)
	}
	idx := decodeIndex(t, a.body)
	want := map[digest.Digest]string{sbomArt.digest: sbom, sigArt.digest: sig}
	if len(idx.Manifests) != len(want) {
		t.Fatalf("referrers %+v, want the 2 artifacts", idx.Manifests)
	}
	for _, d := range idx.Manifests {
		if want[d.Digest] != d.ArtifactType {
			t.Errorf("referrer %s has artifactType %q, want %q", d.Digest, d.ArtifactType, want[d.Digest])
		}
		if d.Digest == sbomArt.digest && d.Annotations["org.example.kind"] != "sbom" {
			t.Errorf("referrer annotations %v, want those of the manifest", d.Annotations)
		}
	}

	// artifactType filter: SHOULD be supported; when applied the answer
	// says so in OCI-Filters-Applied.
	f := c.do(t, http.MethodGet, path+"?artifactType="+sbom, nil, nil)
	expect(t, "GET referrers filtered", f, http.StatusOK)
	fidx := decodeIndex(t, f.body)
	if strings.Contains(f.header.Get("OCI-Filters-Applied"), "artifactType") {
		if len(fidx.Manifests) != 1 || fidx.Manifests[0].Digest != sbomArt.digest {
			t.Errorf("filtered referrers %+v, want only %s", fidx.Manifests, sbomArt.digest)
		}
	} else {
		t.Logf("artifactType filter not applied (no OCI-Filters-Applied)")
	}

	// No referrers: 200 with an empty index, never 404.
	e := c.do(t, http.MethodGet, "/v2/"+repo+"/referrers/"+sbomArt.digest.String(), nil, nil)
	expect(t, "GET referrers of a manifest without any", e, http.StatusOK)
	if n := len(decodeIndex(t, e.body).Manifests); n != 0 {
		t.Errorf("%d referrers, want none", n)
	}
}

func decodeIndex(t *testing.T, body []byte) confIndex {
	t.Helper()
	var idx confIndex
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatalf("referrers body: %v (%s)", err, body)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != mtIndex {
		t.Errorf("referrers index schemaVersion %d mediaType %q", idx.SchemaVersion, idx.MediaType)
	}
	return idx
}

// testContentManagement: spec "Content Management" — deleting manifests,
// tags and blobs.
func testContentManagement(t *testing.T, c *confClient) {
	const repo = "conformance/manage"

	t.Run("DeleteManifest", func(t *testing.T) {
		img := c.pushImage(t, repo, "doomed")
		a := c.do(t, http.MethodDelete, "/v2/"+repo+"/manifests/"+img.digest.String(), nil, nil)
		expect(t, "DELETE manifest", a, http.StatusAccepted)
		// Gone by digest, and by any tag that pointed at it.
		for _, ref := range []string{img.digest.String(), "doomed"} {
			expect(t, "GET "+ref+" after delete", c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil, nil),
				http.StatusNotFound, "MANIFEST_UNKNOWN")
		}
		// Deleting it again: it is unknown now.
		expect(t, "DELETE again", c.do(t, http.MethodDelete, "/v2/"+repo+"/manifests/"+img.digest.String(), nil, nil),
			http.StatusNotFound, "MANIFEST_UNKNOWN")
	})

	t.Run("DeleteTag", func(t *testing.T) {
		// Tag deletion is optional: 202 when supported, 400 or 405 when
		// not. distribution v3.1.2 supports it.
		img := c.pushImage(t, repo, "keep")
		expect(t, "tag drop", c.putManifest(t, repo, "drop", img.manifest), http.StatusCreated)
		a := c.do(t, http.MethodDelete, "/v2/"+repo+"/manifests/drop", nil, nil)
		t.Logf("DELETE tag: %d %s", a.status, bytes.TrimSpace(a.body))
		if a.status == http.StatusBadRequest || a.status == http.StatusMethodNotAllowed {
			t.Skipf("tag deletion disabled: %d", a.status)
		}
		expect(t, "DELETE tag", a, http.StatusAccepted)
		expect(t, "GET deleted tag", c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/drop", nil, nil),
			http.StatusNotFound, "MANIFEST_UNKNOWN")
		// Only the tag went: the manifest and its other tag stay.
		for _, ref := range []string{"keep", img.digest.String()} {
			if !c.exists(t, repo, "manifests", ref) {
				t.Errorf("%s gone after deleting another tag", ref)
			}
		}
		if _, tags := c.tagsList(t, repo, ""); slices.Contains(tags, "drop") {
			t.Errorf("tags %v still list the deleted tag", tags)
		}
	})

	t.Run("DeleteBlob", func(t *testing.T) {
		data := []byte("blob to delete")
		d := c.pushBlob(t, repo, data)
		a := c.do(t, http.MethodDelete, "/v2/"+repo+"/blobs/"+d.String(), nil, nil)
		expect(t, "DELETE blob", a, http.StatusAccepted)
		expect(t, "GET deleted blob", c.do(t, http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), nil, nil),
			http.StatusNotFound, "BLOB_UNKNOWN")
		if c.exists(t, repo, "blobs", d.String()) {
			t.Error("HEAD finds the deleted blob")
		}
		expect(t, "DELETE unknown blob", c.do(t, http.MethodDelete, "/v2/"+repo+"/blobs/"+d.String(), nil, nil),
			http.StatusNotFound, "BLOB_UNKNOWN")
	})

	t.Run("DeleteInUnknownRepo", func(t *testing.T) {
		// "If the repository does not exist, the response MUST return 404."
		d := digest.FromString("nothing").String()
		a := c.do(t, http.MethodDelete, "/v2/conformance/nosuchrepo/manifests/"+d, nil, nil)
		if a.status != http.StatusNotFound {
			t.Fatalf("DELETE manifest in unknown repo: %d (%s)", a.status, a.body)
		}
		t.Logf("DELETE manifest in unknown repo: %d %v", a.status, a.errorCodes())
	})
}

// TestConformanceAuth checks what htpasswd auth adds: a Basic challenge
// without credentials, refusal of wrong ones with nothing written, and a
// health check that needs none.
func TestConformanceAuth(t *testing.T) {
	c := newConfSuite(t, true)
	anon := c.as("", "")
	const repo = "conformance/auth"
	img := newImage(t, "auth")
	unknown := digest.FromString("x").String()

	t.Run("NoCredentials", func(t *testing.T) {
		for _, tc := range []struct{ method, path string }{
			{http.MethodGet, "/v2/"},
			{http.MethodGet, "/v2/" + repo + "/tags/list"},
			{http.MethodHead, "/v2/" + repo + "/blobs/" + unknown},
			{http.MethodGet, "/v2/" + repo + "/manifests/v1"},
			{http.MethodPost, "/v2/" + repo + "/blobs/uploads/"},
			{http.MethodDelete, "/v2/" + repo + "/blobs/" + unknown},
		} {
			t.Run(tc.method+tc.path, func(t *testing.T) {
				a := anon.do(t, tc.method, tc.path, nil, nil)
				var codes []string
				if tc.method != http.MethodHead {
					codes = []string{"UNAUTHORIZED"}
				}
				expect(t, tc.method+" "+tc.path, a, http.StatusUnauthorized, codes...)
				if got := a.header.Get("WWW-Authenticate"); got != `Basic realm="uc"` {
					t.Errorf("WWW-Authenticate %q, want %q", got, `Basic realm="uc"`)
				}
			})
		}
	})

	t.Run("HealthzWithoutCredentials", func(t *testing.T) {
		expect(t, "GET /healthz", anon.do(t, http.MethodGet, "/healthz", nil, nil), http.StatusOK)
	})

	// Each wrong-credential attempt must be refused and leave no trace;
	// what exists afterwards is checked with the right credentials.
	for _, bad := range []struct{ name, user, pass string }{
		{"WrongPassword", confUser, "wrong"},
		{"UnknownUser", "mallory", confPass},
	} {
		t.Run(bad.name, func(t *testing.T) {
			evil := c.as(bad.user, bad.pass)
			data := []byte("blob pushed by " + bad.name)
			d := digest.FromBytes(data)

			t.Run("FinishUpload", func(t *testing.T) {
				// The session is opened legitimately; only the PUT that
				// would store the data has bad credentials.
				loc := c.startUpload(t, repo)
				a := evil.do(t, http.MethodPut, withQuery(t, loc, "digest", d.String()), map[string]string{"Content-Type": mtOctetStream}, data)
				expect(t, "PUT blob", a, http.StatusUnauthorized, "UNAUTHORIZED")
				if got := a.header.Get("WWW-Authenticate"); got != `Basic realm="uc"` {
					t.Errorf("WWW-Authenticate %q, want %q", got, `Basic realm="uc"`)
				}
				if c.exists(t, repo, "blobs", d.String()) {
					t.Error("blob exists after a refused PUT")
				}
			})
			t.Run("SinglePost", func(t *testing.T) {
				a := evil.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), map[string]string{"Content-Type": mtOctetStream}, data)
				expect(t, "single POST", a, http.StatusUnauthorized)
				if c.exists(t, repo, "blobs", d.String()) {
					t.Error("blob exists after a refused POST")
				}
			})
			t.Run("Mount", func(t *testing.T) {
				src := c.pushBlob(t, "conformance/auth-src", data)
				a := evil.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?mount="+src.String()+"&from=conformance/auth-src", nil, []byte{})
				expect(t, "mount", a, http.StatusUnauthorized)
				if c.exists(t, repo, "blobs", src.String()) {
					t.Error("blob mounted by a refused request")
				}
			})
			t.Run("PutManifest", func(t *testing.T) {
				c.pushBlob(t, repo, img.config)
				c.pushBlob(t, repo, img.layer)
				a := evil.putManifest(t, repo, "v1", img.manifest)
				expect(t, "PUT manifest", a, http.StatusUnauthorized)
				for _, ref := range []string{"v1", img.digest.String()} {
					if c.exists(t, repo, "manifests", ref) {
						t.Errorf("manifest %s exists after a refused PUT", ref)
					}
				}
			})
			t.Run("DeleteBlob", func(t *testing.T) {
				kept := c.pushBlob(t, repo, []byte("blob that must survive "+bad.name))
				a := evil.do(t, http.MethodDelete, "/v2/"+repo+"/blobs/"+kept.String(), nil, nil)
				expect(t, "DELETE blob", a, http.StatusUnauthorized)
				if !c.exists(t, repo, "blobs", kept.String()) {
					t.Error("blob deleted by a refused request")
				}
			})
		})
	}
}

// TestConformanceOpenErrors: configurations that must not start.
func TestConformanceOpenErrors(t *testing.T) {
	certPEM, keyPEM := selfSignedCert(t)
	dir := t.TempDir()
	cert, key := writeConfFile(t, dir, "cert.pem", certPEM), writeConfFile(t, dir, "key.pem", keyPEM)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		// A typo in the path must not silently create a file with a
		// random password (distribution's own behaviour).
		{"MissingHTPasswd", Config{HTPasswd: filepath.Join(dir, "no-such-htpasswd")}},
		{"TLSCertWithoutKey", Config{TLSCert: cert}},
		{"TLSKeyWithoutCert", Config{TLSKey: key}},
		{"TLSKeyMissing", Config{TLSCert: cert, TLSKey: filepath.Join(dir, "no-such-key.pem")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.DataDir, tc.cfg.Listen = t.TempDir(), "127.0.0.1:0"
			srv, err := Open(t.Context(), tc.cfg)
			if err == nil {
				srv.ln.Close()
				t.Fatal("Open succeeded")
			}
			t.Logf("Open: %v", err)
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "no-such-htpasswd")); err == nil {
		t.Error("Open created the missing htpasswd file")
	}
}

// TestConformanceTLS serves HTTPS with a self-signed certificate and
// pulls through a client that trusts exactly that certificate.
func TestConformanceTLS(t *testing.T) {
	certPEM, keyPEM := selfSignedCert(t)
	dir := t.TempDir()
	srv := startConfRegistry(t, Config{TLSCert: writeConfFile(t, dir, "cert.pem", certPEM), TLSKey: writeConfFile(t, dir, "key.pem", keyPEM)})
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(certPEM) {
		t.Fatal("bad certificate PEM")
	}
	c := &confClient{base: "https://" + srv.Addr(), hc: &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
	}}

	t.Run("PushPull", func(t *testing.T) {
		data := []byte("blob over TLS")
		d := c.pushBlob(t, "conformance/tls", data)
		a := c.do(t, http.MethodGet, "/v2/conformance/tls/blobs/"+d.String(), nil, nil)
		expect(t, "GET blob over https", a, http.StatusOK)
		if !bytes.Equal(a.body, data) {
			t.Error("blob differs")
		}
	})

	t.Run("PlainHTTPRefused", func(t *testing.T) {
		resp, err := newConfHTTPClient().Get("http://" + srv.Addr() + "/v2/")
		if err != nil {
			t.Logf("plain http: %v", err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("plain http to the TLS port answered %s", resp.Status)
		}
		t.Logf("plain http: %s", resp.Status)
	})

	t.Run("UntrustedClientRefused", func(t *testing.T) {
		// A client with the system roots must not accept the
		// self-signed certificate: the server really presents it.
		_, err := newConfHTTPClient().Get("https://" + srv.Addr() + "/v2/")
		if err == nil {
			t.Fatal("https with an untrusted certificate succeeded")
		}
	})
}

// selfSignedCert makes a P-256 certificate for 127.0.0.1, valid for an
// hour, that is its own root.
func selfSignedCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "uc registry conformance"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

func writeConfFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
