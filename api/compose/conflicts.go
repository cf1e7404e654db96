package compose

import (
	"fmt"

	"github.com/distribution/reference"

	"github.com/ucplane/uc/api"
)

// resolveImageNames settles which service owns each image name. Two builds
// pushing one name is refused: which one the name holds would depend on
// which finished last. A service that pulls a name another service builds
// gets that build, as docker compose would use the image built on the same
// engine; that is a warning. Services whose repository name differs from
// their service name (upper case) get a note saying so.
func resolveImageNames(p *api.Project, file string) error {
	type pusher struct{ service, field string }
	pushed := map[string]pusher{} // internal name -> the build pushing it
	byFull := map[string]string{} // full name -> build spec name
	for _, b := range p.Builds {
		names := append([]string{b.Image}, b.Tags...)
		for i, name := range names {
			field := "services." + b.Service + ".image"
			if i > 0 {
				field = "services." + b.Service + ".build.tags"
			}
			key := internalName(name)
			if other, taken := pushed[key]; taken && other.service != b.Service {
				return fmt.Errorf("%s: %s: %s is also pushed by %s: two builds would write one image name, and it would hold whichever finished last (give one of them another name)",
					file, field, name, other.field)
			}
			pushed[key] = pusher{b.Service, field}
			byFull[fullName(name)] = b.Name
		}
		if b.Image == api.DefaultImage(b.Project, b.Service) && api.RepositoryComponent(b.Service) != b.Service {
			p.Notes = append(p.Notes, fmt.Sprintf("services.%s builds into repository %s (registry names are lower case: see the README's naming rule)", b.Service, b.Image))
		}
	}
	for i, img := range p.Images {
		if img.Image == "" {
			continue
		}
		build, ok := byFull[fullName(img.Image)]
		if !ok {
			continue
		}
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s: services.%s.image: %s is built by services.%s; %s pre-pulls that build, as docker compose would use the image built on its engine",
			file, img.Service, img.Image, serviceOf(build), img.Service))
		p.Images[i].Image, p.Images[i].Build = "", build
	}
	return nil
}

// internalName is InternalName, or image itself when it does not parse
// (the loader has refused it by then, or will).
func internalName(image string) string {
	if name, err := api.InternalName(image); err == nil {
		return name
	}
	return image
}

// fullName is an external image's name as an engine resolves it, tag
// included ("docker.io/library/nginx:latest" for "nginx").
func fullName(image string) string {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return image
	}
	return reference.TagNameOnly(named).String()
}
