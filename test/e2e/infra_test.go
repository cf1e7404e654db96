package e2e

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// infra is what hack/up.sh brought up, read from its env file.
type infra map[string]string

var (
	infraOnce sync.Once
	infraEnv  infra
	infraErr  string
)

// requireInfra runs hack/up.sh once per test binary. Under CI=true a
// missing part fails the test; locally it skips with how to bring it up.
func requireInfra(t *testing.T) infra {
	t.Helper()
	infraOnce.Do(bringUp)
	if infraErr == "" {
		return infraEnv
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("infrastructure is required under CI=true: %s", infraErr)
	}
	t.Skipf("skipping: real Docker Engines and BuildKit are not up (run `hack/up.sh` as root on Debian): %s", infraErr)
	return nil
}

func bringUp() {
	cmd := exec.Command(filepath.Join(repoRoot, "hack", "up.sh"))
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		infraErr = "hack/up.sh: " + err.Error() + "\n" + lastLines(string(out), 20)
		return
	}
	env, err := readEnvFile(filepath.Join(runDir(), "env"))
	if err != nil {
		infraErr = err.Error()
		return
	}
	infraEnv = env
}

func runDir() string {
	if d := os.Getenv("UC_RUN_DIR"); d != "" {
		return d
	}
	return "/run/uc-hack"
}

func readEnvFile(path string) (infra, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := infra{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[strings.TrimPrefix(k, "export ")] = strings.Trim(v, `"'`)
		}
	}
	return env, sc.Err()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// waitLong bounds waits for builds and pulls on the real infrastructure.
const waitLong = 3 * time.Minute

var errNotYet = errors.New("not yet")
