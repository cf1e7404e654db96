// Package buildcontext reads a local build context as a build sees it:
// the files .dockerignore lets through, walked in a stable order and
// hashed into a digest that changes when (and only when) what the build
// can see changes. The Compose loader hashes contexts with it, uc apply
// ships them with it (registry/contextstore), and a builder node finds a
// context's root with it. It does file I/O, so it is not part of api.
package buildcontext

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// DefaultMaxSize limits a local context's size when the caller
// sets no limit: a larger one usually means a missing .dockerignore.
const DefaultMaxSize = 1 << 30

// Digest hashes what a build can see of a local context: every file
// .dockerignore lets through (path, mode, content or link target) plus the
// Dockerfile (dockerfile "" means the Dockerfile is inline in the spec).
// Editing a source file changes the digest, so the BuildSpec changes and
// is rebuilt; touching a file without changing it does not. A symlink that
// leads out of the context, or a context over limit bytes, is refused.
func Digest(dir, dockerfile string, limit int64) (string, error) {
	h := sha256.New()
	err := Walk(dir, dockerfile, limit, func(path, rel string, info fs.FileInfo) error {
		return hashEntry(h, path, rel, info)
	})
	if err != nil {
		return "", err
	}
	if err := hashDockerfile(h, dir, dockerfile); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// Walk calls each, in lexical order, for every entry of a local
// context that .dockerignore lets through (rel uses forward slashes). It
// refuses a symlink that leads out of the context and a context over limit
// bytes (0: DefaultMaxSize).
func Walk(dir, dockerfile string, limit int64, each func(path, rel string, info fs.FileInfo) error) error {
	dir, err := Root(dir)
	if err != nil {
		return err
	}
	pm, err := ignoreMatcher(dir, dockerfile)
	if err != nil {
		return err
	}
	w := &contextWalker{dir: dir, pm: pm, each: each, limit: cmp.Or(limit, DefaultMaxSize)}
	if err := filepath.WalkDir(dir, w.visit); err != nil {
		return fmt.Errorf("read build context %s: %w", dir, err)
	}
	return nil
}

// Root is the directory a local context's files are read from. A
// symlink at the root is followed, as docker build does: a context named
// through a link (or a Compose file opened through a linked directory)
// holds the linked tree. Links inside the context are not followed.
func Root(dir string) (string, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("read build context %s: %w", dir, err)
	}
	info, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("read build context %s: %w", dir, err)
	}
	if !info.IsDir() {
		return "", fmt.Errorf("build context %s is a file: the context must be a directory (name the file with dockerfile: and its directory with context:)", dir)
	}
	return real, nil
}

// contextWalker walks a context tree and enforces its limits.
type contextWalker struct {
	dir   string
	pm    *patternmatcher.PatternMatcher
	each  func(path, rel string, info fs.FileInfo) error
	limit int64
	size  int64
}

func (w *contextWalker) visit(path string, d fs.DirEntry, err error) error {
	if err != nil {
		return err
	}
	rel, _ := filepath.Rel(w.dir, path)
	if rel == "." {
		return nil
	}
	if skip, err := excluded(w.pm, rel, d); skip || err != nil {
		return err
	}
	info, err := d.Info()
	if err != nil {
		return err
	}
	if err := w.check(path, rel, info); err != nil {
		return err
	}
	return w.each(path, filepath.ToSlash(rel), info)
}

// check refuses what would escape the context or blow its size limit.
func (w *contextWalker) check(path, rel string, info fs.FileInfo) error {
	if info.Mode()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(path)
		if err != nil {
			return err
		}
		resolved := target
		if !filepath.IsAbs(target) {
			resolved = filepath.Join(filepath.Dir(path), target)
		}
		if r, err := filepath.Rel(w.dir, resolved); err != nil || r == ".." || strings.HasPrefix(r, "../") {
			return fmt.Errorf("%s is a symlink to %s, outside the context", rel, target)
		}
	}
	if info.Mode().IsRegular() {
		w.size += info.Size()
		if w.size > w.limit {
			return fmt.Errorf("context is larger than the %d-byte limit (add a .dockerignore, or raise --max-context-size)", w.limit)
		}
	}
	return nil
}

// ignoreMatcher reads <dockerfile>.dockerignore, else .dockerignore, as
// BuildKit's dockerfile frontend does.
func ignoreMatcher(dir, dockerfile string) (*patternmatcher.PatternMatcher, error) {
	candidates := []string{filepath.Join(dir, ".dockerignore")}
	if dockerfile != "" && !filepath.IsAbs(dockerfile) {
		candidates = append([]string{filepath.Join(dir, dockerfile+".dockerignore")}, candidates...)
	}
	for _, name := range candidates {
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		patterns, err := ignorefile.ReadAll(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		return patternmatcher.New(patterns)
	}
	return nil, nil
}

// excluded reports whether .dockerignore leaves rel out. A directory is
// skipped whole only when no exception pattern could bring a child back.
func excluded(pm *patternmatcher.PatternMatcher, rel string, d fs.DirEntry) (bool, error) {
	if pm == nil {
		return false, nil
	}
	skip, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
	if err != nil || !skip {
		return false, err
	}
	if d.IsDir() && !pm.Exclusions() {
		return true, filepath.SkipDir
	}
	return true, nil
}

func hashEntry(h io.Writer, path, rel string, info fs.FileInfo) error {
	fmt.Fprintf(h, "%s\x00%o\x00", rel, info.Mode())
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "link:%s\x00", target)
	case info.Mode().IsRegular():
		return hashFile(h, path)
	}
	return nil
}

func hashFile(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(h, f)
	_, _ = h.Write([]byte{0})
	return err
}

// hashDockerfile covers a Dockerfile that .dockerignore excludes or that
// lives outside the context: BuildKit reads it either way.
func hashDockerfile(h io.Writer, dir, dockerfile string) error {
	if dockerfile == "" {
		return nil // inline: it is part of the spec itself
	}
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(dir, dockerfile)
	}
	fmt.Fprintf(h, "dockerfile\x00")
	if err := hashFile(h, dockerfile); err != nil {
		return &DockerfileError{Err: err}
	}
	return nil
}

// DockerfileError is a Dockerfile that cannot be read, so that callers
// name the dockerfile field rather than the context.
type DockerfileError struct{ Err error }

func (e *DockerfileError) Error() string { return "read Dockerfile: " + e.Err.Error() }
func (e *DockerfileError) Unwrap() error { return e.Err }
