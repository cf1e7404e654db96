package registry

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// The registry image is made from the static ucd binary itself, FROM
// scratch, so that starting a cluster never needs a public registry. It
// is written as a `docker load` archive.

// ImageRepository is the name the registry image is loaded under; its tag
// is the binary's digest, so a new ucd makes a new image.
const ImageRepository = "uc/registry"

// ImageEntrypoint runs the registry; the controller appends its flags.
var ImageEntrypoint = []string{"/ucd", "registry", "serve"}

// RegistryImage is a loadable image and its name.
type RegistryImage struct {
	Ref     string // uc/registry:<12 hex of the binary's sha256>
	Archive []byte // docker load format
}

// BuildImage makes the registry image from the ucd binary at path.
func BuildImage(path string) (RegistryImage, error) {
	if err := checkStatic(path); err != nil {
		return RegistryImage{}, err
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		return RegistryImage{}, err
	}
	sum := sha256.Sum256(bin)
	ref := ImageRepository + ":" + hex.EncodeToString(sum[:])[:12]
	layer, err := binaryLayer(bin)
	if err != nil {
		return RegistryImage{}, err
	}
	archive, err := loadArchive(ref, layer)
	return RegistryImage{Ref: ref, Archive: archive}, err
}

// checkStatic refuses a dynamically linked binary: FROM scratch has no
// libc for it.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("registry image from %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("registry image from %s: the binary is dynamically linked; build ucd with CGO_ENABLED=0 (make build)", path)
		}
	}
	return nil
}

// binaryLayer is a tar with /ucd, fixed owner and time, so the same binary
// always makes the same layer.
func binaryLayer(bin []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "ucd", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// loadArchive writes the docker-load layout: manifest.json, the config and
// the layer.
func loadArchive(ref string, layer []byte) ([]byte, error) {
	layerSum := sha256.Sum256(layer)
	diffID := "sha256:" + hex.EncodeToString(layerSum[:])
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Entrypoint": ImageEntrypoint, "Env": []string{"OTEL_TRACES_EXPORTER=none"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	if err != nil {
		return nil, err
	}
	cfgSum := sha256.Sum256(config)
	cfgName := hex.EncodeToString(cfgSum[:]) + ".json"
	layerName := hex.EncodeToString(layerSum[:]) + "/layer.tar"
	manifest, err := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{ref}, "Layers": []string{layerName}}})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{{cfgName, config}, {layerName, layer}, {"manifest.json", manifest}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := io.Copy(tw, bytes.NewReader(f.data)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
