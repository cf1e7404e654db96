package build

import (
	"testing"

	"github.com/ucplane/uc/api"
)

// TestCacheExportModes: cache_to's own options reach BuildKit; mode=min
// used to become mode=max.
func TestCacheExportModes(t *testing.T) {
	t.Parallel()
	spec := api.BuildSpec{Image: "p/web", CacheTo: []string{"p/min", "p/plain"},
		CacheToAttrs: map[string]map[string]string{"p/min": {"mode": "min", "compression": "zstd"}}}
	_, exports, err := cacheOptions("127.0.0.1:5000", spec)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{ // ref -> mode, compression
		"127.0.0.1:5000/p/min:latest":   {"min", "zstd"},
		"127.0.0.1:5000/p/plain:latest": {"max", ""},
	}
	if len(exports) != len(want) {
		t.Fatalf("exports %+v, want %d", exports, len(want))
	}
	for _, e := range exports {
		w, ok := want[e.Attrs["ref"]]
		if !ok || e.Attrs["mode"] != w[0] || e.Attrs["compression"] != w[1] {
			t.Errorf("export %v, want mode=%s compression=%q", e.Attrs, w[0], w[1])
		}
	}
	_, def, _ := cacheOptions("127.0.0.1:5000", api.BuildSpec{Image: "p/web"})
	if len(def) != 1 || def[0].Attrs["mode"] != "max" {
		t.Errorf("default cache export %+v, want one, mode=max", def)
	}
}

// A cache scope reads the shared cache and its own, and writes only its
// own unless it is trusted.
func TestCacheScopeOptions(t *testing.T) {
	shared, scoped := "127.0.0.1:5000/uc-cache/p/web:buildcache", "127.0.0.1:5000/uc-cache/p/web:buildcache-feature"
	for _, trusted := range []bool{false, true} {
		imports, exports, err := cacheOptions("127.0.0.1:5000", api.BuildSpec{Image: "p/web", CacheScope: "feature", CacheScopeTrusted: trusted})
		if err != nil {
			t.Fatal(err)
		}
		if len(imports) != 2 || imports[0].Attrs["ref"] != shared || imports[1].Attrs["ref"] != scoped {
			t.Errorf("trusted %v: imports %v, want the shared and the scope's cache", trusted, imports)
		}
		want := scoped
		if trusted {
			want = shared
		}
		if len(exports) != 1 || exports[0].Attrs["ref"] != want {
			t.Errorf("trusted %v: exports %v, want only %s", trusted, exports, want)
		}
	}
}

func TestCacheMountNamespace(t *testing.T) {
	for _, tt := range []struct {
		spec api.BuildSpec
		want string
	}{
		{api.BuildSpec{Project: "p", CacheScope: "repo/feature"}, "uc/p/repo/feature"},
		{api.BuildSpec{Project: "p", CacheScope: "main", CacheScopeTrusted: true}, ""},
		{api.BuildSpec{Project: "p"}, ""},
	} {
		got, set := frontendAttrs(tt.spec, "Dockerfile")["build-arg:BUILDKIT_CACHE_MOUNT_NS"]
		if got != tt.want || set != (tt.want != "") {
			t.Errorf("scope %q trusted %v: namespace %q (set %v), want %q", tt.spec.CacheScope, tt.spec.CacheScopeTrusted, got, set, tt.want)
		}
	}
}
