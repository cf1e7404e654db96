// Package dockerfile reads which images a Dockerfile builds from, with
// BuildKit's own parser and instructions, so that uc sees a FROM line as
// the frontend will: build args expanded, stage names and scratch left
// out. uc apply uses it to link builds of one project into a graph, and
// the build controller to put base images into the build key.
package dockerfile

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Images returns the names a Dockerfile's FROM and COPY --from lines read
// that are not stages of its own (nor scratch, nor a stage index), in
// order. FROM lines are expanded in the ARGs declared before the first
// FROM, with args over their defaults, as the frontend does.
func Images(df []byte, args map[string]string) ([]string, error) {
	res, err := parser.Parse(bytes.NewReader(df))
	if err != nil {
		return nil, err
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, err
	}
	env := metaArgEnv(metaArgs, args)
	lex := shell.NewLex(res.EscapeToken)
	var out []string
	isStage := func(name string, before int) bool {
		_, found := instructions.HasStage(stages[:before], name)
		return found
	}
	for i, st := range stages {
		base, _, err := lex.ProcessWord(st.BaseName, env)
		if err != nil {
			return nil, fmt.Errorf("FROM %s: %w", st.BaseName, err)
		}
		if !isStage(base, i) && base != "scratch" {
			out = append(out, base)
		}
		stageEnv := map[string]string{}
		for _, cmd := range st.Commands {
			switch c := cmd.(type) {
			case *instructions.ArgCommand:
				declare(stageEnv, c, args, env)
			case *instructions.CopyCommand:
				from, _, err := lex.ProcessWord(c.From, shell.EnvsFromSlice(pairs(stageEnv)))
				if err != nil {
					return nil, fmt.Errorf("COPY --from=%s: %w", c.From, err)
				}
				if from != "" && !isStage(from, i) && !isIndex(from) {
					out = append(out, from)
				}
			}
		}
	}
	return out, nil
}

// declare records a stage's ARG as the frontend sees it: the build's
// value, else the ARG's default, else the value of the same ARG before
// the first FROM.
func declare(env map[string]string, c *instructions.ArgCommand, args map[string]string, meta shell.EnvGetter) {
	for _, kv := range c.Args {
		switch v, ok := args[kv.Key]; {
		case ok:
			env[kv.Key] = v
		case kv.Value != nil:
			env[kv.Key] = *kv.Value
		default:
			if v, ok := meta.Get(kv.Key); ok {
				env[kv.Key] = v
			}
		}
	}
}

func pairs(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// metaArgEnv is the environment FROM lines expand in: the ARGs declared
// before the first FROM, with the build's values over their defaults.
func metaArgEnv(metaArgs []instructions.ArgCommand, args map[string]string) shell.EnvGetter {
	var env []string
	for _, cmd := range metaArgs {
		for _, kv := range cmd.Args {
			if v, ok := args[kv.Key]; ok {
				env = append(env, kv.Key+"="+v)
			} else if kv.Value != nil {
				env = append(env, kv.Key+"="+*kv.Value)
			}
		}
	}
	return shell.EnvsFromSlice(env)
}

func isIndex(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// Replaced reports whether one of a build's named contexts stands in for
// image, as the frontend matches them: by the name as written, or by its
// ContextKey.
func Replaced(contexts map[string]string, image string) bool {
	if _, ok := contexts[image]; ok {
		return true
	}
	key, ok := ContextKey(image)
	_, replaced := contexts[key]
	return ok && replaced
}

// ContextKey is the named-context key under which BuildKit's frontend
// looks for a replacement of image: its familiar name without ":latest"
// (so FROM docker.io/shop/base:latest and FROM shop/base share one).
// ok is false for a name that is no image reference.
func ContextKey(image string) (string, bool) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", false
	}
	return strings.TrimSuffix(reference.FamiliarString(named), ":latest"), true
}
