package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ucplane/uc/api"
)

// project is one fault's Compose project: services built from a context
// with an incompressible file (so that uploads, pushes and pulls take a
// moment) and a short RUN (so that a build takes a few seconds), each
// image placed on both nodes by name.
type project struct {
	name     string
	dir      string
	services []string
}

// projectOpts shape a project.
type projectOpts struct {
	services int
	bigBytes int    // the context's incompressible file
	builder  string // x-uc-builder, if set
	sleep    int    // seconds the RUN step takes
}

func writeProject(root, name string, o projectOpts) (*project, error) {
	p := &project{name: name, dir: filepath.Join(root, name)}
	var compose strings.Builder
	fmt.Fprintf(&compose, "name: %s\nservices:\n", name)
	rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(rand.Int64()))) // fresh bytes: no build key is reused
	for i := range o.services {
		svc := fmt.Sprintf("s%d", i)
		p.services = append(p.services, svc)
		dir := filepath.Join(p.dir, svc)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		big := make([]byte, o.bigBytes)
		for j := range big {
			big[j] = byte(rng.Uint32())
		}
		df := fmt.Sprintf("FROM busybox\nCOPY big.bin /big.bin\nRUN sleep %d && md5sum /big.bin > /sum\nCOPY msg.txt /msg.txt\n", o.sleep)
		for file, body := range map[string][]byte{"Dockerfile": []byte(df), "big.bin": big, "msg.txt": []byte(name + "/" + svc + "\n")} {
			if err := os.WriteFile(filepath.Join(dir, file), body, 0o644); err != nil {
				return nil, err
			}
		}
		fmt.Fprintf(&compose, "  %s:\n    build: ./%s\n    x-machines: [%s]\n", svc, svc, strings.Join(nodeNames, ", "))
		if o.builder != "" {
			fmt.Fprintf(&compose, "    x-uc-builder: %s\n", o.builder)
		}
	}
	return p, os.WriteFile(p.file(), []byte(compose.String()), 0o644)
}

func (p *project) file() string { return filepath.Join(p.dir, "compose.yaml") }

// apply runs uc apply without waiting: the faults strike while it works.
func (c *cluster) apply(ctx context.Context, p *project) error {
	if out, err := c.uc(ctx, p.dir, "apply", "-f", p.file()); err != nil {
		return fmt.Errorf("uc apply %s: %v\n%s", p.name, err, out)
	}
	return nil
}

// losses counts what has not converged: a build whose current generation
// has no success, or whose image the registry lacks; an image not present
// with its build's digest on every node that it names.
type losses struct {
	builds, images int
	why            []string
}

func (l losses) none() bool { return l.builds == 0 && l.images == 0 }

func (l losses) err() error {
	if l.none() {
		return nil
	}
	return fmt.Errorf("%d builds, %d images not converged: %s", l.builds, l.images, strings.Join(l.why, "; "))
}

// check reads the state straight from the state server and the registry
// now serving.
func (c *cluster) check(ctx context.Context, p *project) (losses, error) {
	var l losses
	_, registry, err := c.registry(ctx)
	if err != nil {
		return l, err
	}
	builds, err := c.store.ListBuilds(ctx, "")
	if err != nil {
		return l, err
	}
	digests := map[string]string{}
	for _, b := range builds {
		if b.Spec.Project != p.name {
			continue
		}
		cur, ok := b.Current()
		switch {
		case !ok || cur.Phase != api.BuildSucceeded || cur.ObservedGeneration != b.Meta.Generation:
			l.builds++
			l.why = append(l.why, fmt.Sprintf("build %s: %s %q", b.Spec.Name, cur.Phase, cur.Message))
		case !inRegistry(registry, cur.Detail.Ref, cur.Digest):
			l.builds++
			l.why = append(l.why, fmt.Sprintf("build %s: %s not in registry %s", b.Spec.Name, cur.Digest, registry))
		default:
			digests[b.Spec.Name] = cur.Digest
		}
	}
	if len(digests)+l.builds != len(p.services) {
		l.builds = len(p.services) - len(digests)
		l.why = append(l.why, fmt.Sprintf("%d build specs of %d", len(digests), len(p.services)))
	}
	images, err := c.store.ListImages(ctx, "")
	if err != nil {
		return l, err
	}
	for _, img := range images {
		if img.Spec.Project != p.name {
			continue
		}
		want := digests[img.Spec.Build]
		var on []string
		for _, pr := range img.Presence {
			if pr.SpecUID == img.Meta.UID && pr.State == api.PresencePresent && want != "" && pr.Digest == want {
				on = append(on, pr.Node)
			}
		}
		for _, n := range nodeNames {
			if !slices.Contains(on, n) {
				l.images++
				l.why = append(l.why, fmt.Sprintf("image %s not present on %s", img.Spec.Name, n))
				break
			}
		}
	}
	return l, nil
}

// inRegistry checks a manifest by digest (HEAD).
func inRegistry(registry, ref, digest string) bool {
	_, repo, _ := api.SplitImageRef(ref)
	req, err := http.NewRequest(http.MethodHead, "http://"+registry+"/v2/"+repo+"/manifests/"+digest, nil)
	if err != nil {
		return false
	}
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "+
		"application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
