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

// TestNamesAndSilentDrops covers what used to be lost or mangled between
// the Compose file and the specs.
func TestNamesAndSilentDrops(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM busybox\n", "compose.yaml": `
name: p
services:
  Web:
    build: .
  app:
    build:
      context: .
      cache_to: ["type=registry,ref=p/cache,mode=min,compression=zstd"]
    image: acme/app:1
    platform: linux/arm64
  worker:
    image: acme/app:1
    platform: linux/arm64
    x-machine: [n1]
`})
	p, err := load(t, dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	web, app := p.Builds[0], p.Builds[1]
	if web.Name != "p/Web" || web.Image != "p/web" || web.ContextRepository() != "uc-contexts/p/web" {
		t.Errorf("upper-case service: name %s, image %s, context repository %s; want p/Web, p/web, uc-contexts/p/web", web.Name, web.Image, web.ContextRepository())
	}
	if !slices.ContainsFunc(p.Notes, func(n string) bool { return strings.Contains(n, "services.Web builds into repository p/web") }) {
		t.Errorf("notes %q do not show the name mapping", p.Notes)
	}
	if !slices.Equal(app.Platforms, []string{"linux/arm64"}) {
		t.Errorf("service platform: build platforms %v, want [linux/arm64]", app.Platforms)
	}
	if got := app.CacheToAttrs["p/cache"]; got["mode"] != "min" || got["compression"] != "zstd" {
		t.Errorf("cache_to options %v, want mode=min and compression=zstd kept", got)
	}
	worker := p.Images[2]
	if worker.Image != "" || worker.Build != "p/app" || worker.Platform != "linux/arm64" {
		t.Errorf("worker pulls %q build %q platform %q; want p/app's build on linux/arm64", worker.Image, worker.Build, worker.Platform)
	}
	for _, want := range []string{
		"compose.yaml: services.worker.image: acme/app:1 is built by services.app; worker pre-pulls that build",
		"compose.yaml: services.worker.x-machine: uc ignores this key (did you mean x-machines?)",
	} {
		if !slices.ContainsFunc(p.Warnings, func(w string) bool { return strings.Contains(w, want) }) {
			t.Errorf("warnings %q lack %q", p.Warnings, want)
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
