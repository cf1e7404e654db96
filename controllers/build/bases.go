package build

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/dockerfile"
)

// Base images are part of a build's key: a tag that moved to a new digest
// makes a different image from the same sources.

// baseImages lists the images a build reads: its stages' FROM images and
// COPY --from images, with build args expanded, and its docker-image://
// contexts. Stage names, scratch and names that a named context replaces
// are not images. Images pinned by digest need no resolving and are left
// out. The Dockerfile of a git context is in the repository, which is not
// on this node, so only its named contexts count.
func baseImages(spec api.BuildSpec) ([]string, error) {
	var names []string
	df, err := dockerfileBytes(spec)
	if err != nil {
		return nil, err
	}
	if df != nil {
		if names, err = dockerfile.Images(df, spec.Args); err != nil {
			return nil, fmt.Errorf("dockerfile: %w", err)
		}
	}
	var out []string
	add := func(name string) {
		if ref, ok := unpinned(name); ok && !slices.Contains(out, ref) {
			out = append(out, ref)
		}
	}
	for _, name := range names {
		if !dockerfile.Replaced(spec.AdditionalContexts, name) {
			add(name)
		}
	}
	for _, v := range spec.AdditionalContexts {
		if img, ok := strings.CutPrefix(v, "docker-image://"); ok {
			add(img)
		}
	}
	slices.Sort(out)
	return out, nil
}

// dockerfileBytes reads the Dockerfile the build uses, or nil when it is
// not on this node (a git context's).
func dockerfileBytes(spec api.BuildSpec) ([]byte, error) {
	if spec.DockerfileInline != "" {
		return []byte(spec.DockerfileInline), nil
	}
	if api.IsGitContext(spec.Context) || spec.ContextRef != "" {
		return nil, nil
	}
	b, err := os.ReadFile(spec.DockerfilePath())
	if err != nil {
		return nil, fmt.Errorf("dockerfile: %w", err)
	}
	return b, nil
}

// unpinned normalizes an image name; ok is false when it is pinned by
// digest (nothing to resolve) or not an image name at all.
func unpinned(name string) (string, bool) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", false
	}
	if _, pinned := named.(reference.Digested); pinned {
		return "", false
	}
	return reference.TagNameOnly(named).String(), true
}

// resolveBases asks the driver's BuildKit for each image's current digest,
// with the registry configuration (mirrors, insecure registries) the solve
// itself will use. The registry is asked every time: that is the point.
func resolveBases(ctx context.Context, c *client.Client, images []string, auth session.Attachable) (map[string]string, error) {
	if len(images) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(images))
	_, err := c.Build(ctx, client.SolveOpt{Session: []session.Attachable{auth}}, "uc", func(ctx context.Context, gw gateway.Client) (*gateway.Result, error) {
		for _, img := range images {
			_, dg, _, err := gw.ResolveImageConfig(ctx, img, sourceresolver.Opt{
				ImageOpt: &sourceresolver.ResolveImageOpt{ResolveMode: "pull"},
			})
			if err != nil {
				return nil, fmt.Errorf("resolve base image %s: %w", img, err)
			}
			out[img] = dg.String()
		}
		return gateway.NewResult(), nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return out, nil
}
