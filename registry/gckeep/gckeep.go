// Package gckeep reads from desired state and status what the internal
// registry's garbage collection must keep. uc registry gc and the registry
// controller (package managedregistry) both use it, so a collection asked
// for from the CLI keeps exactly what a scheduled one keeps. It needs only
// the state client, not the registry server or any controller.
package gckeep

import (
	"context"
	"slices"
	"strings"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/registry/regclient"
	"github.com/ucplane/uc/state"
)

// FromState reads from desired state and status everything the internal
// registry must keep: every build's current and last successful images,
// every image an ImageSpec names or a node holds for it, every context
// index a spec references, and every cache ref in use. The registry's
// address does not matter: digests name content, and cache tags are
// matched by repository.
func FromState(ctx context.Context, store *state.Store) (regclient.KeepSet, error) {
	var keep regclient.KeepSet
	builds, err := store.ListBuilds(ctx, "")
	if err != nil {
		return keep, err
	}
	digests := map[string]bool{}
	for _, b := range builds {
		keepBuild(b, digests, &keep)
	}
	images, err := store.ListImages(ctx, "")
	if err != nil {
		return keep, err
	}
	for _, img := range images {
		if _, d, ok := strings.Cut(img.Spec.Image, "@"); ok {
			digests[d] = true
		}
		for _, p := range img.Presence {
			digests[p.Digest] = true
		}
	}
	delete(digests, "")
	for d := range digests {
		keep.Digests = append(keep.Digests, d)
	}
	slices.Sort(keep.Digests)
	return keep, nil
}

func keepBuild(b state.BuildRecord, digests map[string]bool, keep *regclient.KeepSet) {
	for _, st := range b.Status {
		digests[st.Digest] = true
		for _, d := range st.Detail.History {
			digests[d] = true
		}
	}
	for _, ref := range b.Spec.ShippedContexts() {
		if _, d, ok := strings.Cut(ref, "@"); ok {
			digests[d] = true
		}
	}
	// Any registry name will do: only the repository and tag are compared.
	cache, err := b.Spec.CacheRefs("registry.invalid")
	if err != nil {
		return // a spec whose image name does not parse never built a cache
	}
	for _, ref := range cache {
		_, repo, tag := api.SplitImageRef(ref)
		keep.Tags = append(keep.Tags, regclient.RepoTag{Repo: repo, Tag: tag})
	}
}
