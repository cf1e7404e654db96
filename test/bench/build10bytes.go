package main

// Measurement 5's bytes row: what `uc apply` uploads to the internal
// registry for a one-file change to a 50 MiB context, read from the line
// apply prints per build, on the build10 cluster after its timed rounds.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
)

// The big context: bytesFiles files of bytesFileSize random bytes, plus
// note.txt (the file the change edits) and the Dockerfile.
const (
	bytesFiles    = 50
	bytesFileSize = 1 << 20
	bytesNote     = "note.txt"
)

const bytesDockerfile = `FROM busybox
COPY . /ctx
`

// Sanity bounds on what uc apply reports: the first apply uploads at least
// every data file; the one-file change at most this much.
const (
	bytesFirstMin = bytesFiles * bytesFileSize
	bytesEditMax  = 64 << 10
)

// shippedLine is what uc apply prints per build (cmd/uc/ship.go).
var shippedLine = regexp.MustCompile(`^context (\S+): (\d+) pieces, (\d+) uploaded \((\S+) of (\S+)\)$`)

// shipped is one parsed context line. Sizes are as printed: go-units
// BytesSize, 4 significant digits.
type shipped struct {
	pieces, uploaded    int
	bytesUp, bytesTotal int64
	upText, totalText   string
}

// bytesResult is the measurement: a cold first apply of the context, then
// an apply after one small file changed.
type bytesResult struct {
	first, edit       shipped
	firstDur, editDur time.Duration // uc apply --wait, process start to exit
	changedSize       int64         // note.txt after the change
	contextSize       int64         // every file of the context: what a cold buildctl sends
	contextFiles      int
}

// bytes10 creates a one-service project whose context holds bytesFiles
// random files and note.txt, applies it with --wait, changes note.txt and
// applies again, reading what each apply uploaded. It checks the numbers
// are sane, that each apply built once and that the change gave a new
// digest.
func (c *buildCluster) bytes10(ctx context.Context, dir string) (bytesResult, error) {
	var r bytesResult
	nonce, err := newNonce()
	if err != nil {
		return r, err
	}
	project := "ucx" + nonce
	name := project + "/big"
	proj := filepath.Join(dir, "bytes-"+nonce)
	defer os.RemoveAll(proj)
	bigCtx := filepath.Join(proj, "big")
	if err := writeBytesProject(proj, bigCtx, project, nonce); err != nil {
		return r, err
	}
	if r.contextSize, r.contextFiles, err = dirSize(bigCtx); err != nil {
		return r, err
	}

	progress("%s: bytes: first apply of a %s context (%d files)", c.label, units.BytesSize(float64(r.contextSize)), r.contextFiles)
	firstDigest, err := c.bytesApply(ctx, proj, name, 1, wantActions(map[string]int{state.Created: 2}), &r.first, &r.firstDur)
	if err != nil {
		return r, fmt.Errorf("first apply: %w", err)
	}

	body := fmt.Sprintf("note %s: edited\n", nonce)
	if err := os.WriteFile(filepath.Join(bigCtx, bytesNote), []byte(body), 0o644); err != nil {
		return r, err
	}
	r.changedSize = int64(len(body))
	progress("%s: bytes: apply after changing %s (%d bytes)", c.label, bytesNote, r.changedSize)
	editDigest, err := c.bytesApply(ctx, proj, name, 2, wantActions(map[string]int{state.Configured: 1, state.Created: 0}), &r.edit, &r.editDur)
	if err != nil {
		return r, fmt.Errorf("apply after changing %s: %w", bytesNote, err)
	}
	if editDigest == firstDigest {
		return r, fmt.Errorf("digest of %s stayed %s after changing %s", name, firstDigest, bytesNote)
	}
	return r, r.check()
}

// bytesApply times `uc apply --wait`, parses its context line into s and
// waits (untimed) until the image is present on node1, so that the pull is
// logged and removed at cleanup. It checks that builds builds of name have
// started in all and returns the current build's digest.
func (c *buildCluster) bytesApply(ctx context.Context, proj, name string, builds int, want func(string) error, s *shipped, dur *time.Duration) (string, error) {
	d, out, err := c.uc(ctx, proj, "apply", "--wait", "--timeout", waitTimeout, "-f", "compose.yaml")
	if err == nil {
		err = want(out)
	}
	if err == nil {
		*s, err = parseShipped(out, name)
	}
	if err != nil {
		return "", fmt.Errorf("%w\n%s", err, c.logTails())
	}
	*dur = d
	if _, _, err := c.uc(ctx, proj, "wait", "images", name, "--timeout", waitTimeout); err != nil {
		return "", fmt.Errorf("%w\n%s", err, c.logTails())
	}
	if n := c.buildsStarted(name); n != builds {
		return "", fmt.Errorf("%d builds of %s started in all, want %d", n, name, builds)
	}
	return c.builtDigest(ctx, name)
}

// parseShipped finds the context line of build name in apply's output.
func parseShipped(out, name string) (shipped, error) {
	for _, line := range strings.Split(out, "\n") {
		m := shippedLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil || m[1] != name {
			continue
		}
		var s shipped
		var errs [4]error
		s.pieces, errs[0] = strconv.Atoi(m[2])
		s.uploaded, errs[1] = strconv.Atoi(m[3])
		s.bytesUp, errs[2] = units.RAMInBytes(m[4])
		s.bytesTotal, errs[3] = units.RAMInBytes(m[5])
		for _, err := range errs {
			if err != nil {
				return s, fmt.Errorf("uc apply: context line %q: %w", line, err)
			}
		}
		s.upText, s.totalText = m[4], m[5]
		return s, nil
	}
	return shipped{}, fmt.Errorf("uc apply printed no \"context %s: N pieces, M uploaded (X of Y)\" line:\n%s", name, lastLines(out, 8))
}

// check fails unless the parsed numbers are sane: the cold apply uploaded
// every piece and at least every data file (and not much more than the
// context), the change uploaded the changed file and the new index, at
// most bytesEditMax.
func (r bytesResult) check() error {
	var bad []string
	if r.first.bytesUp < bytesFirstMin {
		bad = append(bad, fmt.Sprintf("first apply uploaded %s, want ≥ %s", r.first.upText, units.BytesSize(bytesFirstMin)))
	}
	if r.first.bytesUp > r.contextSize+bytesEditMax {
		bad = append(bad, fmt.Sprintf("first apply uploaded %s, more than the %s context plus %s", r.first.upText,
			units.BytesSize(float64(r.contextSize)), units.BytesSize(bytesEditMax)))
	}
	if r.first.uploaded != r.first.pieces || r.first.pieces != r.contextFiles+1 {
		bad = append(bad, fmt.Sprintf("first apply uploaded %d of %d pieces, want all %d (%d files and the index)",
			r.first.uploaded, r.first.pieces, r.contextFiles+1, r.contextFiles))
	}
	if r.edit.bytesUp > bytesEditMax {
		bad = append(bad, fmt.Sprintf("one-file change uploaded %s, want ≤ %s", r.edit.upText, units.BytesSize(bytesEditMax)))
	}
	if r.edit.bytesUp < r.changedSize {
		bad = append(bad, fmt.Sprintf("one-file change uploaded %s, less than the changed file (%d bytes)", r.edit.upText, r.changedSize))
	}
	if r.edit.uploaded != 2 || r.edit.pieces != r.first.pieces {
		bad = append(bad, fmt.Sprintf("one-file change uploaded %d of %d pieces, want 2 (%s and the new index) of %d",
			r.edit.uploaded, r.edit.pieces, bytesNote, r.first.pieces))
	}
	if len(bad) > 0 {
		return fmt.Errorf("bytes uploaded are not sane: %s", strings.Join(bad, "; "))
	}
	return nil
}

// builtDigest is the digest of name's successful build of its current
// generation.
func (c *buildCluster) builtDigest(ctx context.Context, name string) (string, error) {
	_, out, err := c.uc(ctx, "", "get", "builds", name, "-o", "json")
	if err != nil {
		return "", err
	}
	var builds []state.BuildRecord
	if err := json.Unmarshal([]byte(out), &builds); err != nil || len(builds) != 1 {
		return "", fmt.Errorf("uc get builds %s -o json: %v (%d builds)", name, err, len(builds))
	}
	cur, ok := builds[0].Current()
	if !ok || cur.Phase != api.BuildSucceeded || cur.ObservedGeneration != builds[0].Meta.Generation {
		return "", fmt.Errorf("build %s has no success for generation %d: %+v", name, builds[0].Meta.Generation, cur)
	}
	return cur.Digest, nil
}

// writeBytesProject writes the context (random data files, note.txt, the
// Dockerfile) and, outside it, compose.yaml placing the image on node1.
func writeBytesProject(proj, bigCtx, project, nonce string) error {
	if err := os.MkdirAll(bigCtx, 0o755); err != nil {
		return err
	}
	buf := make([]byte, bytesFileSize)
	for i := range bytesFiles {
		if _, err := rand.Read(buf); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(bigCtx, fmt.Sprintf("data%02d.bin", i)), buf, 0o644); err != nil {
			return err
		}
	}
	compose := fmt.Sprintf(`# The bench's big-context project: %d files of random data, so every
# piece is new to the registry on the first apply.
name: %s
services:
  big:
    build:
      context: ./big
      dockerfile: Dockerfile
    x-machines: [node1]
`, bytesFiles, project)
	for path, body := range map[string]string{
		filepath.Join(bigCtx, bytesNote):    fmt.Sprintf("note %s\n", nonce),
		filepath.Join(bigCtx, "Dockerfile"): bytesDockerfile,
		filepath.Join(proj, "compose.yaml"): compose,
	} {
		if err := writeFile(path, body); err != nil {
			return err
		}
	}
	return nil
}

// dirSize sums the sizes of dir's regular files.
func dirSize(dir string) (size int64, files int, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		size += info.Size()
		files++
		return nil
	})
	return size, files, err
}
