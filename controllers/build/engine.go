package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/docker/docker/api/types/image"
	dockerclient "github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/registry/regclient"
)

// Pushing from a Docker Engine: the docker driver's results, and images a
// node's engine still holds when the registry lost them.

// enginePush pushes ref from the engine and returns the registry's
// manifest digest, which the push stream reports.
func enginePush(ctx context.Context, engine *dockerclient.Client, creds api.CredentialSource, ref string, logw io.Writer) (string, error) {
	var cred api.Credential
	var ok bool
	if creds != nil {
		cred, ok = creds(ctx)
	}
	registry, _, _ := api.SplitImageRef(ref)
	rc, err := engine.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: regclient.EngineAuth(cred, ok, registry)})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	var digest string
	aux := func(m jsonmessage.JSONMessage) {
		var res struct{ Digest string }
		if m.Aux != nil && json.Unmarshal(*m.Aux, &res) == nil && res.Digest != "" {
			digest = res.Digest
		}
	}
	if logw == nil {
		logw = io.Discard
	}
	// A push's errors arrive inside the JSON stream, not as HTTP errors.
	if err := jsonmessage.DisplayJSONMessagesStream(rc, logw, 0, false, aux); err != nil {
		return "", err
	}
	if digest == "" {
		return "", errors.New("the engine reported no digest for the push")
	}
	return digest, nil
}

// engineCopy tags the engine's image from under every name in refs and
// pushes them; it returns the first push's digest. ok is false when the
// engine does not hold from.
func engineCopy(ctx context.Context, engine *dockerclient.Client, creds api.CredentialSource, from string, refs []string) (digest string, ok bool, err error) {
	if _, err := engine.ImageInspect(ctx, from); err != nil {
		if dockerclient.IsErrNotFound(err) {
			return "", false, nil
		}
		return "", false, err
	}
	for _, ref := range refs {
		if err := engine.ImageTag(ctx, from, ref); err != nil {
			return "", true, fmt.Errorf("tag %s as %s: %w", from, ref, err)
		}
		dg, err := enginePush(ctx, engine, creds, ref, nil)
		if err != nil {
			return "", true, fmt.Errorf("push %s: %w", ref, err)
		}
		if digest == "" {
			digest = dg
		}
	}
	return digest, true, nil
}
