package compose

import (
	"fmt"
	"os"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/dockerfile"
)

// linkFromLines makes a graph edge of every FROM or COPY --from line that
// names an image another build of the project makes (see
// api.BuildSpec.Makes): a named context under the name BuildKit's frontend
// looks up replaces that image with the other build's result, by digest.
// So the child waits for its parent, is fed exactly the parent's image,
// and rebuilds when the parent's digest changes. A named context the file
// sets itself wins. A git context's Dockerfile is in the remote and is
// not read.
func linkFromLines(p *api.Project, file string) error {
	products := make([]api.Products, len(p.Builds))
	for i, b := range p.Builds {
		products[i] = b.Products()
	}
	for i := range p.Builds {
		b := &p.Builds[i]
		df, err := dockerfileOf(*b)
		if err != nil || df == nil {
			continue // an unreadable Dockerfile is the context digest's error to report
		}
		images, err := dockerfile.Images(df, b.Args)
		if err != nil {
			return fmt.Errorf("%s: services.%s.build.dockerfile: %v", file, b.Service, err)
		}
		for _, image := range images {
			link(p, products, b, image)
		}
	}
	return nil
}

// link adds the edge from b to the build that makes image, if any;
// products are each build's, in p.Builds' order.
func link(p *api.Project, products []api.Products, b *api.BuildSpec, image string) {
	key, ok := dockerfile.ContextKey(image)
	want, makeable := api.FromImage(image)
	if !ok || !makeable || dockerfile.Replaced(b.AdditionalContexts, image) {
		return
	}
	for i, parent := range p.Builds {
		if products[i].Include(want) {
			if b.AdditionalContexts == nil {
				b.AdditionalContexts = map[string]string{}
			}
			b.AdditionalContexts[key] = api.ServiceContextPrefix + parent.Name
			return
		}
	}
}

// dockerfileOf is the build's Dockerfile, or nil for a git context's.
func dockerfileOf(b api.BuildSpec) ([]byte, error) {
	if b.DockerfileInline != "" {
		return []byte(b.DockerfileInline), nil
	}
	if api.IsGitContext(b.Context) {
		return nil, nil
	}
	return os.ReadFile(b.DockerfilePath())
}
