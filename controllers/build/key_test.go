package build

import (
	"slices"
	"strings"
	"testing"

	"github.com/ucplane/uc/api"
)

func TestBuildKey(t *testing.T) {
	t.Parallel()
	base := api.BuildSpec{Name: "p/web", Project: "p", Service: "web", Image: "p/web", Context: "/src",
		ContextDigest: "sha256:aa", Args: map[string]string{"A": "1"}}
	key := BuildKey(base, nil, nil)
	same := []func(*api.BuildSpec){
		func(s *api.BuildSpec) { s.Name, s.Project, s.Service = "q/api", "q", "api" },
		func(s *api.BuildSpec) { s.Image = "elsewhere/web" },
		func(s *api.BuildSpec) { s.Tags = []string{"p/web:v2"} },
		func(s *api.BuildSpec) { s.CacheTo = []string{"p/cache"} },
	}
	for i, edit := range same {
		s := base
		edit(&s)
		if BuildKey(s, nil, nil) != key {
			t.Errorf("same-output edit %d changed the key", i)
		}
	}
	differ := []func(*api.BuildSpec){
		func(s *api.BuildSpec) { s.ContextDigest = "sha256:bb" },
		func(s *api.BuildSpec) { s.Args = map[string]string{"A": "2"} },
		func(s *api.BuildSpec) { s.Target = "final" },
		func(s *api.BuildSpec) { s.Platforms = []string{"linux/arm64"} },
		func(s *api.BuildSpec) { s.Secrets = []api.SecretRef{{ID: "token", File: "/t"}} },
	}
	for i, edit := range differ {
		s := base
		edit(&s)
		if BuildKey(s, nil, nil) == key {
			t.Errorf("output-changing edit %d kept the key", i)
		}
	}
	in1 := map[string]string{"p/base": "127.0.0.1:5000/p/base@sha256:01"}
	moved := map[string]string{"p/base": "127.0.0.1:6000/p/base@sha256:01"}
	in2 := map[string]string{"p/base": "127.0.0.1:5000/p/base@sha256:02"}
	if BuildKey(base, in1, nil) != BuildKey(base, moved, nil) {
		t.Error("a registry move (same digest) changed the key")
	}
	if BuildKey(base, in1, nil) == BuildKey(base, in2, nil) {
		t.Error("a parent's new digest kept the key")
	}
	b1 := map[string]string{"busybox:latest": "sha256:01"}
	b2 := map[string]string{"busybox:latest": "sha256:02"}
	if BuildKey(base, nil, b1) == BuildKey(base, nil, b2) {
		t.Error("a base image that moved to a new digest kept the key")
	}
}

func TestBaseImages(t *testing.T) {
	t.Parallel()
	df := "ARG TAG=1.36\nFROM busybox:${TAG} AS deps\nCOPY --from=127.0.0.1:5100/tools:v1 /c /c\nFROM docker.io/shop/base:latest\n"
	spec := api.BuildSpec{DockerfileInline: df, AdditionalContexts: map[string]string{
		"busybox:1.36": "docker-image://alpine@sha256:" + strings.Repeat("a", 64), "extra": "docker-image://debian:12",
		"shop/base": "service:shop/base"}}
	bases, err := baseImages(spec)
	if err != nil {
		t.Fatal(err)
	}
	// busybox:1.36 is replaced by a pinned named context, and shop/base by
	// another build's result (its familiar name): nothing to resolve.
	want := []string{"127.0.0.1:5100/tools:v1", "docker.io/library/debian:12"}
	if !slices.Equal(bases, want) {
		t.Errorf("bases = %q, want %q", bases, want)
	}
}
