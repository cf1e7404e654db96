package api

import (
	"slices"
	"strings"
	"testing"
)

func TestRepositoryComponent(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"web": "web", "Web": "web", "API_Gateway": "api_gateway", "api..v2": "api-v2",
		"a__b": "a__b", "a___b": "a-b", "a.-b": "a-b", "_web.": "web", "my-app--2": "my-app--2",
	} {
		got := RepositoryComponent(in)
		if got != want {
			t.Errorf("RepositoryComponent(%q) = %q, want %q", in, got, want)
		}
		if err := CheckReference("p/" + got); err != nil {
			t.Errorf("RepositoryComponent(%q) = %q is not a valid repository: %v", in, got, err)
		}
	}
}

func TestInternalRef(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ image, want string }{
		{"hello/web", "127.0.0.1:5000/hello/web:latest"},
		{"web", "127.0.0.1:5000/library/web:latest"},
		{"registry.local/team/web:1.2", "127.0.0.1:5000/team/web:1.2"},
	} {
		got, err := InternalRef("127.0.0.1:5000", tt.image)
		if err != nil || got != tt.want {
			t.Errorf("InternalRef(%q) = %q, %v; want %q", tt.image, got, err, tt.want)
		}
	}
	if _, err := InternalRef("127.0.0.1:5000", "not a name"); err == nil {
		t.Error("InternalRef accepted an invalid image name")
	}
}

func TestCacheRefs(t *testing.T) {
	t.Parallel()
	b := BuildSpec{Image: "registry.local/team/web:1.2", CacheFrom: []string{"team/cache"}, CacheTo: []string{"team/cache:v2"}}
	got, err := b.CacheRefs("r:5000")
	want := []string{"r:5000/uc-cache/team/web:buildcache", "r:5000/team/cache:latest", "r:5000/team/cache:v2"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("CacheRefs = %q, %v; want %q", got, err, want)
	}
}

func TestBuildSpecMakes(t *testing.T) {
	t.Parallel()
	b := BuildSpec{Image: "shop/base", Tags: []string{"shop/base:1.0", "ghcr.io/acme/base:v2"}}
	for image, want := range map[string]bool{
		"shop/base":                    true,
		"shop/base:latest":             true,
		"docker.io/shop/base":          true,
		"shop/base:1.0":                true,
		"127.0.0.1:5454/shop/base":     true,
		"localhost:5000/shop/base:1.0": true,
		"ghcr.io/acme/base:v2":         true,
		"127.0.0.1:5454/acme/base:v2":  true,
		"shop/base:2.0":                false,
		"ghcr.io/shop/base":            false,
		"shop/other":                   false,
		"busybox":                      false,
		"shop/base@sha256:" + strings.Repeat("a", 64): false,
		"Not A Name": false,
	} {
		if got := b.Makes(image); got != want {
			t.Errorf("Makes(%q) = %v, want %v", image, got, want)
		}
	}
	// An official-style name is named without library/ through a loopback
	// registry, as a monorepo's FROM ${REGISTRY}/jq does.
	jq := BuildSpec{Image: "jq:1.6.0"}
	for image, want := range map[string]bool{"127.0.0.1:5454/jq:1.6.0": true, "127.0.0.1:5454/library/jq:1.6.0": true, "jq:1.6.0": true, "ghcr.io/jq:1.6.0": false} {
		if got := jq.Makes(image); got != want {
			t.Errorf("Makes(%q) = %v, want %v", image, got, want)
		}
	}
}
