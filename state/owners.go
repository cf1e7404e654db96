package state

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state/corrosion"
)

// RepositoryConflict refuses a build into a repository of the internal
// registry that another project owns: one whose builds wrote it first.
// --force does not override it; the owner lets others in with
// x-uc-allow-writers.
type RepositoryConflict struct {
	Project, Build, Repository string
	Owner, OwnerBuild          string
}

func (e *RepositoryConflict) Error() string {
	return fmt.Sprintf("build %s writes repository %s, which project %s owns (its build %s writes it); project %s may write it only if %s lists %s in x-uc-allow-writers",
		e.Build, e.Repository, e.Owner, e.OwnerBuild, e.Project, e.Owner, e.Project)
}

// checkRepositories refuses p's builds into repositories other projects
// own and have not opened to p. The writers of a repository that some
// writer let in (x-uc-allow-writers, as stored) are its guests; every
// other writer owns it, and each owner must let p in. An owner's re-apply
// is not blocked by its guests, and a guest cannot let itself in.
func (s *Store) checkRepositories(ctx context.Context, p *api.Project) error {
	if len(p.Builds) == 0 {
		return nil
	}
	writers, err := s.repositoryWriters(ctx)
	if err != nil {
		return err
	}
	for _, b := range p.Builds {
		for _, repo := range b.Repositories() {
			if o, ok := blockingOwner(writers[repo], p.Name); ok {
				return &RepositoryConflict{Project: p.Name, Build: b.Name, Repository: repo, Owner: o.Project, OwnerBuild: o.Name}
			}
		}
	}
	return nil
}

// blockingOwner is an owner of the repository, among its writers, that
// has not let project in.
func blockingOwner(writers []api.BuildSpec, project string) (api.BuildSpec, bool) {
	guests := map[string]bool{}
	for _, w := range writers {
		for _, g := range w.AllowWriters {
			if g != w.Project {
				guests[g] = true
			}
		}
	}
	for _, w := range writers {
		if w.Project != project && !guests[w.Project] && !slices.Contains(w.AllowWriters, project) {
			return w, true
		}
	}
	return api.BuildSpec{}, false
}

// repositoryWriters maps each repository to the stored builds that write
// it, by name.
func (s *Store) repositoryWriters(ctx context.Context) (map[string][]api.BuildSpec, error) {
	_, rows, err := s.c.QueryAll(ctx, corrosion.Stmt("SELECT spec FROM build_specs ORDER BY name"))
	if err != nil {
		return nil, fmt.Errorf("read the builds' repositories: %w", err)
	}
	out := map[string][]api.BuildSpec{}
	for _, r := range rows {
		var b api.BuildSpec
		if json.Unmarshal([]byte(corrosion.AsString(r[0])), &b) != nil {
			continue
		}
		for _, repo := range b.Repositories() {
			out[repo] = append(out[repo], b)
		}
	}
	return out, nil
}
