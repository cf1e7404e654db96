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
