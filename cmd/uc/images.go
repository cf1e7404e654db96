package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/go-units"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/registry/publish"
	"github.com/ucplane/uc/registry/regclient"
	"github.com/ucplane/uc/state"
)

func newImagesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "images",
		Aliases: []string{"image"},
		Short:   "Copy images between the internal registry and other registries, and pin them for deploys",
	}
	cmd.AddCommand(newImagesPublishCmd(g), newImagesImportCmd(g), newImagesPinCmd(g), newImagesPushCmd(g))
	return cmd
}

// copyFlags are what publish and import share.
type copyFlags struct {
	credential string
	jobs       int
}

func (f *copyFlags) register(cmd *cobra.Command, side string) {
	cmd.Flags().StringVar(&f.credential, "credential", "", "the "+side+" registry's credential: env:VAR (user:password) or docker-config:PATH (default: the Docker config's, if it has one)")
	cmd.Flags().IntVar(&f.jobs, "jobs", 4, "images copied at once")
}

// external is the credential for host: the one --credential names, else
// the Docker config's if it has one for host, else none.
func (f *copyFlags) external(host string) (*api.Credential, error) {
	ref := f.credential
	if ref == "" {
		path := filepath.Join(dockerConfigDir(), "config.json")
		if _, err := os.Stat(path); err != nil {
			return nil, nil
		}
		cred, err := regclient.ResolveCredential(api.CredentialDockerConfig+path, host)
		if err != nil {
			return nil, nil // anonymous, as docker push would be
		}
		return &cred, nil
	}
	cred, err := regclient.ResolveCredential(ref, host)
	if err != nil {
		return nil, fmt.Errorf("--credential %s: %w", ref, err)
	}
	return &cred, nil
}

func dockerConfigDir() string {
	if dir := os.Getenv("DOCKER_CONFIG"); dir != "" {
		return dir
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".docker")
}

// internal is the internal registry's address and how to reach it.
func internal(ctx context.Context, store *state.Store, counter *publish.Counter) (string, publish.Endpoint, error) {
	addr, err := store.RegistryAddress(ctx, time.Now(), api.LiveTimeout)
	if err != nil {
		return "", publish.Endpoint{}, err
	}
	return addr, publish.Endpoint{Insecure: true, Transport: regclient.BasicAuth(counter, store.CredentialSource(time.Minute))}, nil
}

// copyJob is one image to copy.
type copyJob struct {
	src, dst publish.Endpoint
}

// runCopies copies jobs, parallel at a time, printing each result; it
// fails when any copy failed, after trying them all. The first copy runs
// alone: the rest mount the blobs it pushed (a project's shared base)
// from its repository instead of uploading them again.
func runCopies(ctx context.Context, out io.Writer, jobs []copyJob, parallel int, counter *publish.Counter) error {
	var mu sync.Mutex
	var failed int
	mounts := &publish.Mounts{}
	copyOne := func(ctx context.Context, j copyJob) {
		digest, err := mounts.Copy(ctx, j.src, j.dst)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed++
			fmt.Fprintf(out, "failed  %s: %v\n", j.dst.Ref, err)
			return
		}
		fmt.Fprintf(out, "copied  %s → %s (%s)\n", j.src.Ref, j.dst.Ref, digest)
	}
	start := time.Now()
	copyOne(ctx, jobs[0])
	g, gctx := errgroup.WithContext(context.WithoutCancel(ctx))
	g.SetLimit(max(parallel, 1))
	for _, j := range jobs[1:] {
		g.Go(func() error { copyOne(gctx, j); return nil })
	}
	_ = g.Wait()
	fmt.Fprintf(out, "%d of %d images copied in %s, %s sent\n", len(jobs)-failed, len(jobs),
		time.Since(start).Round(10*time.Millisecond), units.BytesSize(float64(counter.Sent())))
	if failed > 0 {
		return fmt.Errorf("%d of %d copies failed", failed, len(jobs))
	}
	return nil
}

func newImagesPublishCmd(g *globals) *cobra.Command {
	var to, project string
	var f copyFlags
	cmd := &cobra.Command{
		Use:   "publish --to REGISTRY [--project P]",
		Short: "Copy the current images of every build (or a project's) to another registry, with their tags",
		Long: `Copies each build's current image, by digest, from the internal registry to
REGISTRY under its name and each of its tags (hello/web:latest becomes
REGISTRY/hello/web:latest). Only the blobs the target lacks are sent. A build
that has no successful image yet is named and skipped. To publish every build
as it happens, use x-uc-push on the service instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return fmt.Errorf("--to is required: the registry to publish to, e.g. ghcr.io/me")
			}
			store, err := g.store()
			if err != nil {
				return explain(err)
			}
			counter := &publish.Counter{}
			jobs, err := publishJobs(cmd.Context(), cmd.ErrOrStderr(), store, counter, &f, to, project)
			if err != nil {
				return explain(err)
			}
			return runCopies(cmd.Context(), cmd.OutOrStdout(), jobs, f.jobs, counter)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the registry (and optional path prefix) to publish to (required)")
	cmd.Flags().StringVar(&project, "project", "", "only this project's builds")
	f.register(cmd, "target")
	return cmd
}

// publishJobs lists a copy per built image and tag.
func publishJobs(ctx context.Context, warn io.Writer, store *state.Store, counter *publish.Counter, f *copyFlags, to, project string) ([]copyJob, error) {
	addr, src, err := internal(ctx, store, counter)
	if err != nil {
		return nil, err
	}
	cred, err := f.external(api.RegistryHost(to + "/x"))
	if err != nil {
		return nil, err
	}
	recs, err := store.ListBuilds(ctx, "")
	if err != nil {
		return nil, err
	}
	var jobs []copyJob
	for _, b := range recs {
		if project != "" && b.Spec.Project != project {
			continue
		}
		cur, ok := b.Current()
		if !ok || cur.Phase != api.BuildSucceeded || cur.Digest == "" {
			fmt.Fprintf(warn, "skipped %s: it has no successful build yet\n", b.Spec.Name)
			continue
		}
		_, repo, _ := api.SplitImageRef(cur.Detail.Ref)
		from := src
		from.Ref = addr + "/" + repo + "@" + cur.Digest
		for _, name := range append([]string{b.Spec.Image}, b.Spec.Tags...) {
			tagged, err := api.InternalName(name)
			if err != nil {
				return nil, fmt.Errorf("build %s: %w", b.Spec.Name, err)
			}
			jobs = append(jobs, copyJob{src: from, dst: publish.Endpoint{Ref: to + "/" + tagged, Credential: cred, Transport: counter}})
		}
	}
	if len(jobs) == 0 {
		return nil, fmt.Errorf("no built image to publish%s", map[bool]string{true: " in project " + project}[project != ""])
	}
	return jobs, nil
}

func newImagesImportCmd(g *globals) *cobra.Command {
	var from []string
	var f copyFlags
	cmd := &cobra.Command{
		Use:   "import --from REGISTRY/REPO:TAG...",
		Short: "Copy prebuilt images from another registry into the internal registry",
		Long: `Copies each image, by digest and with all its platforms, into the internal
registry under its path and tag (ghcr.io/me/app:v1 becomes me/app:v1), so that
nodes pull it from inside the cluster. A service then names it through the
stable address, e.g. image: 127.0.0.1:5454/me/app:v1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(from) == 0 {
				return fmt.Errorf("--from is required: the images to import, e.g. ghcr.io/me/app:v1")
			}
			store, err := g.store()
			if err != nil {
				return explain(err)
			}
			counter := &publish.Counter{}
			addr, dst, err := internal(cmd.Context(), store, counter)
			if err != nil {
				return explain(err)
			}
			var jobs []copyJob
			for _, ref := range from {
				job, err := importJob(ref, addr, dst, counter, &f)
				if err != nil {
					return err
				}
				jobs = append(jobs, job)
			}
			return runCopies(cmd.Context(), cmd.OutOrStdout(), jobs, f.jobs, counter)
		},
	}
	cmd.Flags().StringArrayVar(&from, "from", nil, "an image to import (repeatable) (required)")
	f.register(cmd, "source")
	return cmd
}

// importJob copies ref into the internal registry at addr under its path.
func importJob(ref, addr string, dst publish.Endpoint, counter *publish.Counter, f *copyFlags) (copyJob, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return copyJob{}, fmt.Errorf("--from %s: %w", ref, err)
	}
	cred, err := f.external(reference.Domain(named))
	if err != nil {
		return copyJob{}, err
	}
	named = reference.TagNameOnly(named)
	path := reference.Path(named)
	if tagged, ok := named.(reference.Tagged); ok {
		path += ":" + tagged.Tag()
	}
	dst.Ref = addr + "/" + path
	return copyJob{src: publish.Endpoint{Ref: named.String(), Credential: cred, Transport: counter}, dst: dst}, nil
}

func newImagesPushCmd(g *globals) *cobra.Command {
	var as string
	cmd := &cobra.Command{
		Use:   "push IMAGE[:TAG] [--as NAME[:TAG]]",
		Short: "Send an image from the local Docker Engine into the internal registry; only the layers it lacks travel",
		Long: `Reads the image from the local engine (DOCKER_HOST, DOCKER_CONTEXT, as docker
finds it) and writes it into the internal registry under its path and tag, or
--as: the registry is asked for each layer first, and only the ones it lacks
are sent. A service then names it through the stable address, e.g.
image: 127.0.0.1:5454/me/app:v1. It runs ucd image push, which holds the
Docker client.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			push := []string{"image", "push", args[0]}
			if as != "" {
				push = append(push, "--as", as)
			}
			return runUCD(cmd.Context(), g, push...)
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "the name to store it under (default: the image's path and tag)")
	return cmd
}
