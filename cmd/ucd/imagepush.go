package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	dockerclient "github.com/docker/docker/client"
	"github.com/docker/go-units"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/spf13/cobra"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/registry/publish"
	"github.com/ucplane/uc/registry/regclient"
	"github.com/ucplane/uc/state"
)

// newImageCmd is `ucd image push`: the half of `uc image push` that talks
// to the Docker Engine, which uc itself does not link.
func newImageCmd() *cobra.Command {
	img := &cobra.Command{Use: "image", Short: "Move images from a local engine into the internal registry (what uc image push runs)"}
	var apiURL, ca, dockerHost, as string
	push := &cobra.Command{
		Use:   "push IMAGE[:TAG] [--as NAME[:TAG]]",
		Short: "Send an image from the local Docker Engine into the internal registry; only the layers it lacks travel",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := stateStore(apiURL, ca, os.Getenv("UC_CORROSION_TOKEN"))
			if err != nil {
				return err
			}
			if dockerHost == "" {
				if dockerHost, err = contextDockerHost(); err != nil {
					return err
				}
			}
			return pushFromEngine(cmd.Context(), cmd.OutOrStdout(), store, dockerHost, args[0], as)
		},
	}
	push.Flags().StringVar(&apiURL, "corrosion-api", "http://127.0.0.1:51002", "the state API")
	push.Flags().StringVar(&ca, "corrosion-ca", "", "PEM file of CA certificates to trust for an https:// --corrosion-api")
	push.Flags().StringVar(&dockerHost, "docker-host", "", "the Docker Engine that holds the image (default: DOCKER_HOST, DOCKER_CONTEXT or the docker CLI's current context)")
	push.Flags().StringVar(&as, "as", "", "the name to store it under in the internal registry (default: the image's path and tag)")
	img.AddCommand(push)
	return img
}

// pushFromEngine saves image from the engine and writes it into the
// internal registry, blob by blob: the registry is asked for each first.
func pushFromEngine(ctx context.Context, out io.Writer, store *state.Store, dockerHost, image, as string) error {
	start := time.Now()
	src, err := name.NewTag(image)
	if err != nil {
		return fmt.Errorf("image %q: %w", image, err)
	}
	saved, cleanup, err := saveImage(ctx, dockerHost, image)
	if err != nil {
		return err
	}
	defer cleanup()
	img, err := tarball.ImageFromPath(saved, &src)
	if err != nil {
		return fmt.Errorf("read the saved image %s: %w", image, err)
	}
	registry, err := store.RegistryAddress(ctx, time.Now(), api.LiveTimeout)
	if err != nil {
		return err
	}
	target, err := api.InternalRef(registry, cmp.Or(as, image))
	if err != nil {
		return err
	}
	dst, err := name.ParseReference(target, name.Insecure)
	if err != nil {
		return err
	}
	counter := &publish.Counter{}
	tr := regclient.BasicAuth(counter, store.CredentialSource(time.Minute))
	if err := remote.Write(dst, img, remote.WithContext(ctx), remote.WithTransport(tr)); err != nil {
		return fmt.Errorf("push %s: %w", target, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "pushed %s → %s (%s): %s sent in %s\n", image, target, digest, units.BytesSize(float64(counter.Sent())),
		time.Since(start).Round(10*time.Millisecond))
	return nil
}

// saveImage has the engine save image (docker save) into a temporary file.
func saveImage(ctx context.Context, dockerHost, image string) (string, func(), error) {
	engine, err := dockerclient.NewClientWithOpts(dockerclient.WithHost(dockerHost), dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		return "", nil, fmt.Errorf("docker engine %s: %w", dockerHost, err)
	}
	defer engine.Close()
	rc, err := engine.ImageSave(ctx, []string{image})
	if err != nil {
		return "", nil, fmt.Errorf("docker engine %s: save %s: %w", dockerHost, image, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp("", "uc-image-*.tar")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		cleanup()
		return "", nil, fmt.Errorf("docker engine %s: save %s: %w", dockerHost, image, err)
	}
	return f.Name(), cleanup, f.Close()
}
