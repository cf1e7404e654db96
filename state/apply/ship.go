package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/registry/contextstore"
	"github.com/ucplane/uc/registry/regclient"
	"github.com/ucplane/uc/state"
)

// shipContexts uploads every build's local context to the internal
// registry, content-addressed, so that any node can build it. Only pieces
// the registry lacks travel. With no registry yet, builders read the
// context directories directly, and uc says so.
func shipContexts(cmd *cobra.Command, store *state.Store, p *api.Project, limit int64) error {
	if !slices.ContainsFunc(p.Builds, func(b api.BuildSpec) bool { return !api.IsGitContext(b.Context) }) {
		return nil
	}
	registry, err := store.RegistryAddress(cmd.Context(), time.Now(), api.LiveTimeout)
	if errors.Is(err, state.ErrNoRegistry) {
		fmt.Fprintf(cmd.OutOrStdout(), "contexts not shipped: %v, so builders read them from this machine's paths\n", err)
		return nil
	}
	if err != nil {
		return err
	}
	c := contextstore.New(registry)
	c.HTTP.Transport = regclient.BasicAuth(c.HTTP.Transport, store.CredentialSource(time.Minute))
	for i := range p.Builds {
		if api.IsGitContext(p.Builds[i].Context) {
			continue // BuildKit fetches it from the remote itself
		}
		if err := shipOne(cmd, c, &p.Builds[i], limit); err != nil {
			return fmt.Errorf("ship the context of %s: %w", p.Builds[i].Name, err)
		}
	}
	return nil
}

func shipOne(cmd *cobra.Command, c *contextstore.Client, b *api.BuildSpec, limit int64) error {
	// <Dockerfile>.dockerignore applies, wherever the Dockerfile lives, as
	// the context digest has it.
	ignoreRulesFor := ""
	if b.DockerfileInline == "" {
		ignoreRulesFor = b.Dockerfile
	}
	if err := inlineDockerfile(b); err != nil {
		return err
	}
	ref, st, err := c.Push(cmd.Context(), b.ContextRepository(), b.Context, ignoreRulesFor, limit)
	if err != nil {
		return err
	}
	b.ContextRef = ref
	report(cmd, b.Name, st)
	for name, v := range b.AdditionalContexts {
		if !api.IsLocalContextPath(v) {
			continue
		}
		ref, st, err := c.Push(cmd.Context(), b.ContextRepository(), v, "", limit)
		if err != nil {
			return fmt.Errorf("additional context %s: %w", name, err)
		}
		b.AdditionalContexts[name] = api.ShippedContextPrefix + ref
		report(cmd, b.Name+" ("+name+")", st)
	}
	return nil
}

func report(cmd *cobra.Command, what string, st contextstore.Stats) {
	fmt.Fprintf(cmd.OutOrStdout(), "context %s: %d pieces, %d uploaded (%s of %s)\n", what, st.Pieces, st.Uploaded,
		units.BytesSize(float64(st.BytesUploaded)), units.BytesSize(float64(st.BytesTotal)))
}

// inlineDockerfile carries the Dockerfile in the spec itself: BuildKit
// reads it apart from the context, so it may live outside the context or
// be excluded by .dockerignore, and only the context is shipped.
func inlineDockerfile(b *api.BuildSpec) error {
	if b.DockerfileInline != "" {
		return nil
	}
	body, err := os.ReadFile(dockerfilePath(*b))
	if err != nil {
		return err
	}
	b.DockerfileInline = string(body)
	return nil
}

func dockerfilePath(b api.BuildSpec) string {
	if filepath.IsAbs(b.Dockerfile) {
		return b.Dockerfile
	}
	return filepath.Join(b.Context, b.Dockerfile)
}

// pinGitContexts resolves every git context's ref to a commit, so that a
// moved branch changes the spec and all builders build the same source.
func pinGitContexts(cmd *cobra.Command, file string, p *api.Project) error {
	for i, b := range p.Builds {
		if !api.IsGitContext(b.Context) {
			continue
		}
		pinned, digest, err := api.PinGitContext(cmd.Context(), b.Context)
		if err != nil {
			return fmt.Errorf("%s: services.%s.build.context: %w", file, b.Service, err)
		}
		p.Builds[i].Context, p.Builds[i].ContextDigest = pinned, digest
	}
	return nil
}
