package e2e

import (
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

const privateCompose = `name: priv
services:
  envcred:
    image: %[1]s
    x-uc-pull-credential: env:UC_E2E_PRIV
  filecred:
    image: %[1]s
    x-uc-pull-credential: docker-config:%[2]s
  wrong:
    image: %[1]s
    x-uc-pull-credential: env:UC_E2E_PRIV_WRONG
    x-machines: [node1]
  none:
    image: %[1]s
    x-machines: [node1]
`

// TestPrivateRegistry pulls from a registry with basic auth using
// credential references that each node resolves (an environment variable,
// a Docker config file); the secret never reaches state. A wrong or
// missing credential fails with the registry and the reference named.
func TestPrivateRegistry(t *testing.T) {
	env := requireInfra(t)
	t.Setenv("UC_E2E_PRIV", "uc:s3cret-pass") // the nodes' ucd inherit it
	t.Setenv("UC_E2E_PRIV_WRONG", "uc:not-it")
	addr := authRegistry(t, "uc", "s3cret-pass")
	ref := addr + "/priv/busybox:v1"
	if out, err := runTool(t, nil, "skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
		"--dest-creds", "uc:s3cret-pass", "docker://"+env["UC_BASE_IMAGE"], "docker://"+ref); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "config.json")
	writeFile(t, config, fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, addr, base64.StdEncoding.EncodeToString([]byte("uc:s3cret-pass"))))
	compose := filepath.Join(dir, "compose.yaml")
	writeFile(t, compose, fmt.Sprintf(privateCompose, ref, config))

	c := sliceCluster(t, env)
	c.ok(t, "apply", "-f", compose)
	c.ok(t, "wait", "images", "priv/envcred", "priv/filecred", "--timeout", "3m")
	if a, b := sameDigestOnBoth(t, c, "priv/envcred"), sameDigestOnBoth(t, c, "priv/filecred"); a != b {
		t.Errorf("one image, two digests: %s and %s", a, b)
	}
	for name, want := range map[string]string{
		"priv/wrong": "registry " + addr + " refused credential env:UC_E2E_PRIV_WRONG",
		"priv/none":  "registry " + addr + " wants a credential and the image spec names none",
	} {
		r := c.uc("wait", "images", name, "--timeout", "1m")
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("wait %s: %v\nwant %q", name, r, want)
		}
	}
	if snap := c.snapshot(t); strings.Contains(snap, "s3cret-pass") {
		t.Error("the registry password is in state")
	}

	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "name: privbad\nservices:\n  web:\n    image: "+ref+"\n    x-uc-pull-credential: \"uc:s3cret-pass\"\n")
	if r := c.uc("apply", "-f", bad); r.code == 0 || !strings.Contains(r.stderr, "bad.yaml: services.web.x-uc-pull-credential") {
		t.Errorf("apply with a literal secret: %v", r)
	}
}
