package api

import (
	"errors"
	"fmt"
	"strings"
)

// validName checks that name is "<project>/<service>" and agrees with the
// Project and Service fields, since controllers key rows by name but group
// by project.
func validName(name, project, service string) error {
	p, s, ok := strings.Cut(name, "/")
	switch {
	case !ok || p == "" || s == "" || strings.Contains(s, "/"):
		return fmt.Errorf("name %q: want <project>/<service>", name)
	case p != project || s != service:
		return fmt.Errorf("name %q: does not match project %q and service %q", name, project, service)
	}
	return nil
}

// Validate checks a BuildSpec before it is stored.
func (b BuildSpec) Validate() error {
	if err := validName(b.Name, b.Project, b.Service); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	if strings.TrimSpace(b.Context) == "" {
		return fmt.Errorf("build %s: empty context", b.Name)
	}
	return nil
}

// Validate checks an ImageSpec before it is stored.
func (i ImageSpec) Validate() error {
	if err := validName(i.Name, i.Project, i.Service); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if (i.Image == "") == (i.Build == "") {
		return fmt.Errorf("image %s: %w", i.Name, errors.New("want exactly one of image and build"))
	}
	if err := i.Placement.Validate(); err != nil {
		return fmt.Errorf("image %s: %w", i.Name, err)
	}
	return nil
}
