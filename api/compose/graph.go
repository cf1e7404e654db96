package compose

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ucplane/uc/api"
)

// checkGraph refuses a service: context that names no build of the
// project, and any cycle through service: contexts or FROM lines (see
// linkFromLines), which would have each build wait for the next forever.
// The cycle is named in order.
func checkGraph(p *api.Project, file string) error {
	builds := map[string]api.BuildSpec{}
	for _, b := range p.Builds {
		builds[b.Name] = b
	}
	for _, b := range p.Builds {
		for _, ctxName := range sortedKeys(b.AdditionalContexts) {
			dep, ok := strings.CutPrefix(b.AdditionalContexts[ctxName], api.ServiceContextPrefix)
			if !ok {
				continue
			}
			if _, known := builds[dep]; !known {
				return fmt.Errorf("%s: services.%s.build.additional_contexts.%s: service:%s names no service of project %s that builds (service: feeds in another service's build)",
					file, b.Service, ctxName, serviceOf(dep), p.Name)
			}
		}
	}
	state := map[string]int{} // 0 unvisited, 1 on the path, 2 done
	var path []string
	var visit func(name string) error
	visit = func(name string) error {
		switch state[name] {
		case 1:
			start := slices.Index(path, name)
			cycle := append(slices.Clone(path[start:]), name)
			for i := range cycle {
				cycle[i] = serviceOf(cycle[i])
			}
			return fmt.Errorf("%s: services.%s.build.additional_contexts: a cycle through service: contexts or FROM lines, %s; each build would wait for the next one's image forever",
				file, cycle[0], strings.Join(cycle, " → "))
		case 2:
			return nil
		}
		state[name] = 1
		path = append(path, name)
		for _, dep := range builds[name].DependsOn() {
			if err := visit(dep); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		state[name] = 2
		return nil
	}
	for _, b := range p.Builds {
		if err := visit(b.Name); err != nil {
			return err
		}
	}
	return nil
}

func serviceOf(name string) string {
	_, s, _ := strings.Cut(name, "/")
	return s
}
