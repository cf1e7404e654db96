package dockerfile

import (
	"slices"
	"testing"
)

func TestImages(t *testing.T) {
	t.Parallel()
	df := `ARG BASE=busybox
ARG TAG=1.36
FROM ${BASE}:${TAG} AS deps
FROM scratch AS empty
FROM deps AS app
COPY --from=deps /a /a
COPY --from=0 /b /b
COPY --from=127.0.0.1:5100/tools:v1 /c /c
FROM app
`
	got, err := Images([]byte(df), map[string]string{"TAG": "1.37"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"busybox:1.37", "127.0.0.1:5100/tools:v1"}
	if !slices.Equal(got, want) {
		t.Errorf("images = %q, want %q", got, want)
	}
	if _, err := Images([]byte("RUN true\n"), nil); err == nil {
		t.Error("a Dockerfile without FROM parsed")
	}
}

func TestContextKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"shop/base":                       "shop/base",
		"docker.io/shop/base:latest":      "shop/base",
		"busybox":                         "busybox",
		"docker.io/library/busybox:1.37":  "busybox:1.37",
		"127.0.0.1:5454/shop/base":        "127.0.0.1:5454/shop/base",
		"127.0.0.1:5454/shop/base:latest": "127.0.0.1:5454/shop/base",
	} {
		if got, ok := ContextKey(in); !ok || got != want {
			t.Errorf("ContextKey(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if _, ok := ContextKey("Not A Name"); ok {
		t.Error("an invalid name has a key")
	}
}

// A COPY --from in a stage expands the ARGs that stage declares, as the
// frontend does; one it does not declare is empty there.
func TestImagesCopyFromArgs(t *testing.T) {
	t.Parallel()
	df := "ARG REGISTRY=r.example\nFROM ${REGISTRY}/base\nARG REGISTRY\nARG TOOL=jq\nCOPY --from=${REGISTRY}/${TOOL}:1 /a /a\n"
	got, err := Images([]byte(df), map[string]string{"TOOL": "yq"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"r.example/base", "r.example/yq:1"}; !slices.Equal(got, want) {
		t.Errorf("images = %q, want %q", got, want)
	}
}
