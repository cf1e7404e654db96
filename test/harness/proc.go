// Package harness holds what the programs under test/ (bench, chaos) share
// to run uc for real: building the binaries, starting and killing their
// processes, and reading hack/up.sh's environment.
package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Progress prints what a program is doing; each program sets its prefix.
var Progress = func(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// Binaries are the uc and ucd built from this checkout.
type Binaries struct{ UC, UCD string }

// BuildBinaries builds cmd/uc and cmd/ucd as `make build` does (static,
// CGO-free), so the numbers are those of the shipped binaries.
func BuildBinaries(ctx context.Context, dir string) (Binaries, error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return Binaries{}, err
	}
	Progress("building uc and ucd into %s", dir)
	return buildFrom(ctx, root, dir)
}

func buildFrom(ctx context.Context, src, dir string) (Binaries, error) {
	b := Binaries{UC: filepath.Join(dir, "uc"), UCD: filepath.Join(dir, "ucd")}
	for out, pkg := range map[string]string{b.UC: "./cmd/uc", b.UCD: "./cmd/ucd"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if o, err := cmd.CombinedOutput(); err != nil {
			return Binaries{}, fmt.Errorf("go build %s in %s: %w\n%s", pkg, src, err, o)
		}
	}
	return b, nil
}

// BuildBinariesAt builds uc and ucd as they were at a git commit, from a
// temporary work tree of this checkout's repository, to measure a change
// against the code before it in the same run.
func BuildBinariesAt(ctx context.Context, dir, ref string) (Binaries, error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return Binaries{}, err
	}
	src := filepath.Join(dir, "src")
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", root}, args...)...)
		if o, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, o)
		}
		return nil
	}
	if err := git("worktree", "add", "--detach", src, ref); err != nil {
		return Binaries{}, err
	}
	defer func() { _ = git("worktree", "remove", "--force", src) }()
	Progress("building uc and ucd as of %s into %s", ref, dir)
	return buildFrom(ctx, src, dir)
}

// ModuleRoot is the directory of the uc module the program runs in.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run from inside the uc module (go run ./test/...)")
	}
	return filepath.Dir(gomod), nil
}

// Proc is a child process a program started and must stop.
type Proc struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartProc runs bin with its output appended to logPath (a restarted
// process keeps its earlier log).
func StartProc(name, logPath, bin string, args ...string) (*Proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Args are the program and arguments it was started with.
func (p *Proc) Args() []string { return p.cmd.Args }

// Exited reports an early exit, with the end of the log to say why.
func (p *Proc) Exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited early (%v):\n%s", p.Name, p.err, p.Tail())
	default:
		return nil
	}
}

// Kill ends the process at once (SIGKILL), as a dying machine would.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM to this pid only and waits; SIGKILL after 10 s. ucd
// shuts down cleanly on SIGTERM (marks its node gone, closes the state).
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		Progress("%s (pid %d) ignored SIGTERM; killing it", p.Name, p.Pid())
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Tail is the last lines of the process's log.
func (p *Proc) Tail() string {
	b, _ := os.ReadFile(p.Log)
	return LastLines(string(b), 15)
}

// LastLines is the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// FreeAddr picks a free loopback port. The port is released before the
// process binds it, so another process could take it in between; on a
// test machine that is unlikely and shows up as a clear bind error.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// ReadEnvFile reads KEY=VALUE lines, skipping comments (hack/up.sh's env).
func ReadEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading hack/up.sh's env file: %w", err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = strings.Trim(v, `"'`)
		}
	}
	return env, nil
}
