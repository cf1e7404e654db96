package build

import (
	"testing"

	"github.com/ucplane/uc/api"
)

func TestBuildKey(t *testing.T) {
	t.Parallel()
	base := api.BuildSpec{Name: "p/web", Project: "p", Service: "web", Image: "p/web", Context: "/src",
		ContextDigest: "sha256:aa", Args: map[string]string{"A": "1"}}
	key := BuildKey(base, nil)
	same := []func(*api.BuildSpec){
		func(s *api.BuildSpec) { s.Name, s.Project, s.Service = "q/api", "q", "api" },
		func(s *api.BuildSpec) { s.Image = "elsewhere/web" },
		func(s *api.BuildSpec) { s.Tags = []string{"p/web:v2"} },
		func(s *api.BuildSpec) { s.CacheTo = []string{"p/cache"} },
	}
	for i, edit := range same {
		s := base
		edit(&s)
		if BuildKey(s, nil) != key {
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
		if BuildKey(s, nil) == key {
			t.Errorf("output-changing edit %d kept the key", i)
		}
	}
	in1 := map[string]string{"p/base": "127.0.0.1:5000/p/base@sha256:01"}
	moved := map[string]string{"p/base": "127.0.0.1:6000/p/base@sha256:01"}
	in2 := map[string]string{"p/base": "127.0.0.1:5000/p/base@sha256:02"}
	if BuildKey(base, in1) != BuildKey(base, moved) {
		t.Error("a registry move (same digest) changed the key")
	}
	if BuildKey(base, in1) == BuildKey(base, in2) {
		t.Error("a parent's new digest kept the key")
	}
}
