package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/controllers/build"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/corrosion"
)

// newBuildCmd is `ucd build`: the half of `uc build` that runs BuildKit,
// which uc itself does not link.
func newBuildCmd() *cobra.Command {
	var apiURL, ca, builder, dockerHost string
	cmd := &cobra.Command{
		Use:   "build BUILD... [--builder ADDR]",
		Short: "Build specs in this process, off the cluster, and record them (what uc build runs)",
		Long: `Builds each named BuildSpec (project/service), in the order given, with the
Docker Engine's BuildKit (--docker-host, default DOCKER_HOST or the local
socket) or the buildkitd at --builder, pushes it into the internal registry
and records its status as node local:<hostname>. uc build applies the specs
first, marked x-uc-build: local, and runs this; the token comes from
UC_CORROSION_TOKEN.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, names []string) error {
			store, err := stateStore(apiURL, ca, os.Getenv("UC_CORROSION_TOKEN"))
			if err != nil {
				return err
			}
			if dockerHost == "" && builder == "" {
				if dockerHost, err = contextDockerHost(); err != nil {
					return err
				}
			}
			cfg, err := localBuildConfig(cmd.Context(), store, builder, dockerHost)
			if err != nil {
				return err
			}
			defer os.RemoveAll(cfg.ContextCacheDir)
			// The outcome is printed; the controller's progress logs are not.
			quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			for _, name := range names {
				st, err := build.BuildHere(cmd.Context(), store, name, cfg, quiet)
				if err != nil {
					return fmt.Errorf("build %s: %w", name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "build %s %s on %s: %s (%s)\n", name, st.Phase, cfg.Node, st.Message, st.Digest)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&apiURL, "corrosion-api", "http://127.0.0.1:51002", "the state API")
	cmd.Flags().StringVar(&ca, "corrosion-ca", "", "PEM file of CA certificates to trust for an https:// --corrosion-api")
	cmd.Flags().StringVar(&builder, "builder", "", "build with the buildkitd at this address instead of the Docker Engine's BuildKit")
	cmd.Flags().StringVar(&dockerHost, "docker-host", "", "the Docker Engine whose BuildKit builds, without --builder (default: DOCKER_HOST, DOCKER_CONTEXT or the docker CLI's current context, as docker finds it)")
	return cmd
}

func stateStore(apiURL, ca, token string) (*state.Store, error) {
	opts := []corrosion.Option{corrosion.WithCAFile(ca)}
	if token != "" {
		opts = append(opts, corrosion.WithToken(token))
	}
	c, err := corrosion.New(apiURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("--corrosion-api: %w", err)
	}
	return state.NewStore(c), nil
}

// localBuildConfig is how this machine builds: its driver, the registry's
// address and credential, and a node name for the status rows.
func localBuildConfig(ctx context.Context, store *state.Store, builder, dockerHost string) (build.Config, error) {
	registry, err := store.RegistryAddress(ctx, time.Now(), api.LiveTimeout)
	if err != nil {
		return build.Config{}, err
	}
	creds := store.CredentialSource(time.Minute)
	var driver build.Driver
	switch {
	case builder != "":
		driver, err = build.NewDriver(build.DriverBuildkit, builder, "", creds)
	case dockerHost != "":
		driver, err = build.NewDriver(build.DriverDocker, "", dockerHost, creds)
	default:
		err = errors.New("no builder: --builder names a buildkitd, or --docker-host an engine")
	}
	if err != nil {
		return build.Config{}, err
	}
	host, _ := os.Hostname()
	cache, err := os.MkdirTemp("", "uc-build-")
	if err != nil {
		return build.Config{}, err
	}
	return build.Config{Node: api.LocalBuilderPrefix + host, Driver: driver, MaxBuilds: 1, Registry: registry,
		Credentials: creds, ContextCacheDir: cache, BaseWatch: -1}, nil
}
