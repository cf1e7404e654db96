package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/apply"
)

func newImagesPinCmd(g *globals) *cobra.Command {
	var cf composeFlags
	var output string
	cmd := &cobra.Command{
		Use:   "pin -f compose.yaml [-o pinned.yaml]",
		Short: "Write the Compose file with every image pinned to the digest the nodes pulled",
		Long: `Writes the Compose file back with each service's image: replaced by the exact
reference its nodes pulled (127.0.0.1:5454/shop/web@sha256:… for a build,
nginx@sha256:… for an external image) and build: removed, so that uc deploy or
docker compose up runs exactly what was built and pre-pulled. Everything else,
comments included, is kept. A service its nodes do not all hold at one digest
yet is an error: run uc wait images first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(cf.files) != 1 {
				return errors.New("-f: pin rewrites one Compose file; name exactly one")
			}
			p, err := apply.LoadName(cmd.Context(), cf.options())
			if err != nil {
				return err
			}
			store, err := g.store()
			if err != nil {
				return explain(err)
			}
			pinned, err := pinFile(cmd.Context(), store, cf.files[0], p.Name)
			if err != nil {
				return explain(err)
			}
			if output == "" || output == "-" {
				_, err = cmd.OutOrStdout().Write(pinned)
				return err
			}
			return os.WriteFile(output, pinned, 0o644)
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "write here instead of standard output")
	return cmd
}

// pinFile rewrites a Compose file's services with pinned images.
func pinFile(ctx context.Context, store *state.Store, file, project string) ([]byte, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	services := mappingValue(documentRoot(&doc), "services")
	if services == nil || services.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: no services", file)
	}
	for i := 0; i+1 < len(services.Content); i += 2 {
		name, svc := services.Content[i].Value, services.Content[i+1]
		ref, err := pulledRef(ctx, store, project+"/"+name)
		if err != nil {
			return nil, fmt.Errorf("%s: services.%s: %w", file, name, err)
		}
		setImage(svc, ref)
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return out.Bytes(), enc.Close()
}

// pulledRef is the one reference every node holding the image pulled.
func pulledRef(ctx context.Context, store *state.Store, image string) (string, error) {
	img, err := store.GetImage(ctx, image)
	if errors.Is(err, state.ErrNotFound) {
		return "", fmt.Errorf("image %s is not in the state: apply the file first", image)
	}
	if err != nil {
		return "", err
	}
	byRef := map[string][]string{}
	for _, p := range img.Presence {
		if p.State == api.PresencePresent && p.SpecUID == img.Meta.UID && p.Detail.Ref != "" {
			byRef[p.Detail.Ref] = append(byRef[p.Detail.Ref], p.Node)
		}
	}
	switch len(byRef) {
	case 0:
		return "", fmt.Errorf("image %s is present on no node yet (uc wait images %s)", image, image)
	case 1:
		for ref := range byRef {
			return ref, nil
		}
	}
	var seen []string
	for ref, nodes := range byRef {
		slices.Sort(nodes)
		seen = append(seen, strings.Join(nodes, ",")+" hold "+ref)
	}
	slices.Sort(seen)
	return "", fmt.Errorf("the nodes of image %s hold different digests (%s): wait until they agree (uc wait images %s)", image, strings.Join(seen, "; "), image)
}

func documentRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		return doc.Content[0]
	}
	return doc
}

// mappingValue is the value under key in a mapping node, or nil.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// setImage sets a service's image: and drops its build:.
func setImage(svc *yaml.Node, ref string) {
	kept := svc.Content[:0]
	found := false
	for i := 0; i+1 < len(svc.Content); i += 2 {
		key, val := svc.Content[i], svc.Content[i+1]
		switch key.Value {
		case "build":
			continue
		case "image":
			*val = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: ref, LineComment: val.LineComment}
			found = true
		}
		kept = append(kept, key, val)
	}
	svc.Content = kept
	if !found {
		svc.Content = append([]*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: "image"}, {Kind: yaml.ScalarNode, Tag: "!!str", Value: ref}}, svc.Content...)
	}
}
