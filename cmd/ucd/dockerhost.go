package main

import (
	"fmt"
	"io"
	"os"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/context/docker"
	"github.com/docker/cli/cli/context/store"
)

// localSocket is where the docker CLI finds the engine when nothing says
// otherwise.
const localSocket = "unix:///var/run/docker.sock"

// contextDockerHost finds the local Docker Engine as the docker CLI does:
// DOCKER_HOST, else the context DOCKER_CONTEXT (or the config's current
// context) names, else the default socket. For uc build on a laptop.
func contextDockerHost() (string, error) {
	if host := os.Getenv("DOCKER_HOST"); host != "" {
		return host, nil
	}
	name := os.Getenv("DOCKER_CONTEXT")
	if name == "" {
		name = config.LoadDefaultConfigFile(io.Discard).CurrentContext
	}
	if name == "" || name == "default" {
		return localSocket, nil
	}
	s := store.New(config.ContextStoreDir(), store.NewConfig(func() any { return &map[string]any{} },
		store.EndpointTypeGetter(docker.DockerEndpoint, func() any { return &docker.EndpointMeta{} })))
	md, err := s.GetMetadata(name)
	if err != nil {
		return "", fmt.Errorf("docker context %s: %w", name, err)
	}
	ep, err := docker.EndpointFromContext(md)
	if err != nil {
		return "", fmt.Errorf("docker context %s: %w", name, err)
	}
	if ep.Host == "" {
		return localSocket, nil
	}
	return ep.Host, nil
}
