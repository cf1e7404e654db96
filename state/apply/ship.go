package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/docker/go-units"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/registry/contextstore"
	"github.com/ucplane/uc/registry/regclient"
	"github.com/ucplane/uc/state"
)

// shipContexts uploads every build's local context to the internal
// registry, content-addressed, so that any node can build it. Only pieces
// the registry lacks travel. With no registry yet, builders read the
// context directories directly, and progress says so.
func shipContexts(ctx context.Context, store *state.Store, p *api.Project, limit int64, progress io.Writer) error {
	if !slices.ContainsFunc(p.Builds, shipped) {
		return nil
	}
	registry, err := store.RegistryAddress(ctx, time.Now(), api.LiveTimeout)
	if errors.Is(err, state.ErrNoRegistry) {
		fmt.Fprintf(progress, "contexts not shipped: %v, so builders read them from this machine's paths\n", err)
		return nil
	}
	if err != nil {
		return err
	}
	c := contextstore.New(registry)
	c.HTTP.Transport = regclient.BasicAuth(c.HTTP.Transport, store.CredentialSource(time.Minute))
	for i := range p.Builds {
		if !shipped(p.Builds[i]) {
			continue
		}
		if err := shipOne(ctx, c, &p.Builds[i], limit, progress); err != nil {
			return fmt.Errorf("ship the context of %s: %w", p.Builds[i].Name, err)
		}
	}
	return nil
}

// shipped reports whether a build's context travels to the registry:
// not a git context (BuildKit fetches it from the remote itself), nor one
// built off the cluster (uc build reads it where it is).
func shipped(b api.BuildSpec) bool {
	return !api.IsGitContext(b.Context) && b.BuildOn != api.BuildOnLocal
}

func shipOne(ctx context.Context, c *contextstore.Client, b *api.BuildSpec, limit int64, progress io.Writer) error {
	// <Dockerfile>.dockerignore applies, wherever the Dockerfile lives, as
	// the context digest has it.
	ignoreRulesFor := ""
	if b.DockerfileInline == "" {
		ignoreRulesFor = b.Dockerfile
	}
	if err := inlineDockerfile(b); err != nil {
		return err
	}
	ref, st, err := c.Push(ctx, b.ContextRepository(), b.Context, ignoreRulesFor, limit)
	if err != nil {
		return err
	}
	b.ContextRef = ref
	report(progress, b.Name, st)
	for name, v := range b.AdditionalContexts {
		if !api.IsLocalContextPath(v) {
			continue
		}
		ref, st, err := c.Push(ctx, b.ContextRepository(), v, "", limit)
		if err != nil {
			return fmt.Errorf("additional context %s: %w", name, err)
		}
		b.AdditionalContexts[name] = api.ShippedContextPrefix + ref
		report(progress, b.Name+" ("+name+")", st)
	}
	return nil
}

func report(w io.Writer, what string, st contextstore.Stats) {
	fmt.Fprintf(w, "context %s: %d pieces, %d uploaded (%s of %s)\n", what, st.Pieces, st.Uploaded,
		units.BytesSize(float64(st.BytesUploaded)), units.BytesSize(float64(st.BytesTotal)))
}

// inlineDockerfile carries the Dockerfile in the spec itself: BuildKit
// reads it apart from the context, so it may live outside the context or
// be excluded by .dockerignore, and only the context is shipped.
func inlineDockerfile(b *api.BuildSpec) error {
	if b.DockerfileInline != "" {
		return nil
	}
	body, err := os.ReadFile(b.DockerfilePath())
	if err != nil {
		return err
	}
	b.DockerfileInline = string(body)
	return nil
}
