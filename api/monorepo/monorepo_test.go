package monorepo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/test/harness/files"
)

func writeRepo(t *testing.T, tree map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "images")
	files.Write(t, filepath.Join(dir, "contexts"), tree)
	return dir
}

// seedRepo is shaped like seed 002's example.
var seedRepo = map[string]string{
	"00-debian-slim/Dockerfile": "FROM busybox\n",
	"00-debian-slim/info.edn":   `{:version "1.0.0"}`,
	"01-jq/Dockerfile":          "ARG REGISTRY\nFROM ${REGISTRY}/debian-slim:1.0.0\n",
	"01-jq/info.edn":            `{:version "1.6.0"}`,
	"01-base-dev/Dockerfile":    "ARG REGISTRY\nFROM ${REGISTRY}/debian-slim:latest\n",
	"01-base-dev/info.edn":      "{:version \"2.1.0\"\n :maintainer \"me\"}",
	"01-base-dev/README.md":     "docs\n",
	"02-java-dev/Dockerfile":    "ARG REGISTRY\nFROM ${REGISTRY}/base-dev:2.1.0\nARG REGISTRY\nCOPY --from=${REGISTRY}/jq:latest /usr/bin/jq /usr/bin/jq\n",
	"02-java-dev/info.edn":      `{:version "0.3.1"}`,
	"README.md":                 "not a context\n",
	"notes/x.txt":               "not a context either\n",
}

func TestLoadSeedRepo(t *testing.T) {
	t.Parallel()
	dir := writeRepo(t, seedRepo)
	p, err := Load(context.Background(), LoadOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "images" {
		t.Errorf("project %q, want the project directory's name", p.Name)
	}
	got := map[string]api.BuildSpec{}
	for _, b := range p.Builds {
		got[b.Service] = b
	}
	if len(got) != 4 {
		t.Fatalf("%d builds, want one per NN-name context: %v", len(got), got)
	}
	java := got["java-dev"]
	if java.Image != "java-dev:0.3.1" || java.Tags[0] != "java-dev:latest" || java.Args["REGISTRY"] != DefaultRegistry {
		t.Errorf("java-dev = %+v", java)
	}
	if deps := strings.Join(java.DependsOn(), ","); deps != "images/base-dev,images/jq" {
		t.Errorf("java-dev depends on %s, want base-dev and jq through its FROM and COPY --from lines", deps)
	}
	if deps := strings.Join(got["jq"].DependsOn(), ","); deps != "images/debian-slim" {
		t.Errorf("jq depends on %q", deps)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	with := func(changes map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range seedRepo {
			out[k] = v
		}
		for k, v := range changes {
			if v == "" {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
		return out
	}
	for name, tt := range map[string]struct {
		files map[string]string
		want  string
	}{
		"prefix contradicts FROM": {with(map[string]string{"01-jq/Dockerfile": "ARG REGISTRY\nFROM ${REGISTRY}/base-dev:2.1.0\n"}),
			"01-jq builds FROM 01-base-dev (image base-dev), but its prefix 01 does not order it after 01"},
		"bad version":     {with(map[string]string{"01-jq/info.edn": `{:version "1.6"}`}), `01-jq/info.edn: :version "1.6": want MAJOR.MINOR.PATCH`},
		"no info.edn":     {with(map[string]string{"01-jq/info.edn": ""}), "01-jq/info.edn: open"},
		"not edn":         {with(map[string]string{"01-jq/info.edn": "{:version"}), "01-jq/info.edn: "},
		"no Dockerfile":   {with(map[string]string{"01-jq/Dockerfile": ""}), "01-jq: no Dockerfile"},
		"same image name": {with(map[string]string{"03-jq/Dockerfile": "FROM busybox\n", "03-jq/info.edn": `{:version "2.0.0"}`}), "two contexts make image jq: 01-jq and 03-jq"},
		"upper-case name": {with(map[string]string{"03-JQ/Dockerfile": "FROM busybox\n", "03-JQ/info.edn": `{:version "2.0.0"}`}), "03-JQ: "},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(context.Background(), LoadOptions{Dir: writeRepo(t, tt.files)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v\nwant %q", err, tt.want)
			}
		})
	}
}

func TestCascade(t *testing.T) {
	t.Parallel()
	dir := writeRepo(t, seedRepo)
	ctx := context.Background()
	load := func() (*api.Project, []Context) {
		t.Helper()
		p, err := Load(ctx, LoadOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		_, contexts, err := Scan(dir)
		if err != nil {
			t.Fatal(err)
		}
		return p, contexts
	}
	before, contexts := load()
	applied := map[string]api.BuildSpec{}
	for _, b := range before.Builds {
		applied[b.Name] = b
	}
	if bumps := Cascade(before, contexts, applied); len(bumps) != 0 {
		t.Fatalf("nothing changed, yet %v", bumps)
	}

	// The root changes, and java-dev's owner already raised its version.
	files.Write(t, filepath.Join(dir, "contexts"), map[string]string{
		"00-debian-slim/Dockerfile": "FROM busybox\nRUN true\n",
		"02-java-dev/info.edn":      `{:version "0.4.0"}`,
	})
	now, contexts := load()
	bumps := Cascade(now, contexts, applied)
	var got []string
	for _, b := range bumps {
		got = append(got, b.String())
		if err := b.Write(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"01-base-dev: 2.1.0 → 2.1.1 (descends from 00-debian-slim, which changed)",
		"01-jq: 1.6.0 → 1.6.1 (descends from 00-debian-slim, which changed)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	after, _ := load()
	for _, b := range after.Builds {
		if b.Service == "base-dev" && b.Image != "base-dev:2.1.1" {
			t.Errorf("base-dev is %s after the cascade", b.Image)
		}
	}
	body, _ := os.ReadFile(filepath.Join(dir, "contexts/01-base-dev/info.edn"))
	if string(body) != "{:version \"2.1.1\"\n :maintainer \"me\"}" {
		t.Errorf("info.edn rewritten as %q; want only the version changed", body)
	}
}
