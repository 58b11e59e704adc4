// Package image builds flowproof's container image without a container
// engine: the worker and the starter cross-built as static binaries, one
// layer on an empty base with a CA bundle and a non-root user, written as a
// tarball that `docker load`, `podman load` and `crane push` take. It is the
// image the Dockerfile at the repository's root describes, for machines
// without Docker (and for the tests, which run the binaries taken out of it).
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's layout, shared with the Dockerfile and the manifests under
// deploy/k8s.
const (
	// UID and GID of the user the image runs as: distroless' "nonroot",
	// numeric so that Kubernetes' runAsNonRoot can check it.
	UID = 65532
	GID = 65532
	// BinDir holds the programs; the entrypoint is BinDir/worker.
	BinDir = "/usr/local/bin"
	// HomeDir is the user's home and working directory.
	HomeDir = "/home/nonroot"
	// CABundle is where Go's crypto/x509 looks first on Linux.
	CABundle = "/etc/ssl/certs/ca-certificates.crt"
	// MetricsPort is where the worker serves /metrics, /healthz and /readyz
	// in the image (FLOWPROOF_WORKER_METRICS_ADDR): every interface, since
	// the probes and Prometheus come from outside the container.
	MetricsPort = 9464
)

// Programs are the commands built into the image, relative to the
// repository's root; the first is the entrypoint.
var Programs = []string{"worker", "starter"}

// Options say what to build from.
type Options struct {
	// RepoRoot is the flowproof checkout to build.
	RepoRoot string
	// Arch is the GOARCH of the image; empty means the building machine's.
	Arch string
	// CABundleFile is the PEM bundle copied to CABundle; empty means the
	// building machine's (Debian's ca-certificates).
	CABundleFile string
}

// Build compiles the programs and assembles the image. The layer's files
// carry a fixed time, so the same sources and CA bundle give the same
// image digest.
func Build(ctx context.Context, opts Options) (v1.Image, error) {
	arch := opts.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	caFile := opts.CABundleFile
	if caFile == "" {
		caFile = CABundle
	}
	caBundle, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle (install Debian's ca-certificates, or name another bundle): %w", err)
	}
	binDir, err := os.MkdirTemp("", "flowproof-image-")
	if err != nil {
		return nil, fmt.Errorf("temp dir for the binaries: %w", err)
	}
	defer func() { _ = os.RemoveAll(binDir) }()
	if err := compile(ctx, opts.RepoRoot, arch, binDir); err != nil {
		return nil, err
	}

	layerTar, err := filesystem(binDir, caBundle)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	labels, err := versionLabels(filepath.Join(binDir, Programs[0]))
	if err != nil {
		return nil, err
	}
	cfgFile, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cfgFile = cfgFile.DeepCopy()
	cfgFile.OS, cfgFile.Architecture = "linux", arch
	cfgFile.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cfgFile.Config = v1.Config{
		User:       strconv.Itoa(UID) + ":" + strconv.Itoa(GID),
		Entrypoint: []string{BinDir + "/" + Programs[0]},
		WorkingDir: HomeDir,
		Env: []string{
			"PATH=" + BinDir,
			"HOME=" + HomeDir,
			"FLOWPROOF_WORKER_METRICS_ADDR=:" + strconv.Itoa(MetricsPort),
		},
		ExposedPorts: map[string]struct{}{strconv.Itoa(MetricsPort) + "/tcp": {}},
		Labels:       labels,
	}
	img, err = mutate.ConfigFile(img, cfgFile)
	if err != nil {
		return nil, fmt.Errorf("set image config: %w", err)
	}
	return img, nil
}

// WriteTarball writes img as a tarball with one tag, e.g. "flowproof:dev".
func WriteTarball(path, tag string, img v1.Image) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("image tag %q: %w", tag, err)
	}
	if err := tarball.WriteToFile(path, ref, img); err != nil {
		return fmt.Errorf("write image tarball %s: %w", path, err)
	}
	return nil
}

// GoBuildFlags are what both builds, this one and the Dockerfile's, give
// go build besides CGO_ENABLED=0: no build machine's paths in the
// binaries, the version control state stamped when the checkout has one
// (internal/version prints it), no symbol table or debug information
// (panics still print their stacks).
var GoBuildFlags = []string{"-trimpath", "-buildvcs=auto", "-ldflags=-s -w"}

// compile cross-builds the programs as the Dockerfile does.
func compile(ctx context.Context, repoRoot, arch, outDir string) error {
	args := append(append([]string{"build"}, GoBuildFlags...), "-o", outDir+string(filepath.Separator))
	for _, p := range Programs {
		args = append(args, "./"+p)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %v in %s: %w\n%s", args, repoRoot, err, out)
	}
	return nil
}

// versionLabels are the OCI labels of the build, read from what the Go
// toolchain embedded in the entrypoint, so they say what `worker -version`
// says.
func versionLabels(binary string) (map[string]string, error) {
	info, err := buildinfo.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("build information of %s: %w", binary, err)
	}
	labels := map[string]string{
		"org.opencontainers.image.title":       "flowproof",
		"org.opencontainers.image.description": "flowproof worker (entrypoint) and starter",
		"org.opencontainers.image.version":     info.Main.Version,
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			labels["org.opencontainers.image.revision"] = s.Value
		}
	}
	return labels, nil
}

// filesystem is the layer: the programs, root-owned and not writable by
// the user; the user's passwd and group entries and home; a sticky /tmp;
// and the CA bundle.
func filesystem(binDir string, caBundle []byte) ([]byte, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:%s:/sbin/nologin\n", UID, GID, HomeDir)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", GID)
	entries := []entry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: CABundle[1:], mode: 0o644, data: caBundle},
		{name: "home/", mode: 0o755, dir: true},
		{name: HomeDir[1:] + "/", mode: 0o700, dir: true, uid: UID, gid: GID},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/local/", mode: 0o755, dir: true},
		{name: BinDir[1:] + "/", mode: 0o755, dir: true},
	}
	for _, p := range Programs {
		data, err := os.ReadFile(filepath.Join(binDir, p))
		if err != nil {
			return nil, fmt.Errorf("read built %s: %w", p, err)
		}
		entries = append(entries, entry{name: BinDir[1:] + "/" + p, mode: 0o755, data: data})
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := e.write(tw); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer: %w", err)
	}
	return buf.Bytes(), nil
}

type entry struct {
	name     string
	mode     int64
	dir      bool
	data     []byte
	uid, gid int
}

func (e entry) write(tw *tar.Writer) error {
	hdr := &tar.Header{
		Name:    e.name,
		Mode:    e.mode,
		Uid:     e.uid,
		Gid:     e.gid,
		ModTime: time.Unix(0, 0),
	}
	if e.dir {
		hdr.Typeflag = tar.TypeDir
	} else {
		hdr.Typeflag = tar.TypeReg
		hdr.Size = int64(len(e.data))
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := tw.Write(e.data)
	return err
}

// Files returns the regular files of img's flattened filesystem under the
// given paths (absolute, as in the image) with their tar headers, for
// checking and running what the image holds.
func Files(img v1.Image, paths ...string) (map[string]File, error) {
	want := map[string]bool{}
	for _, p := range paths {
		want[p] = true
	}
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	files := map[string]File{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read image filesystem: %w", err)
		}
		p := "/" + filepath.Clean(hdr.Name)
		if !want[p] {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read %s from the image: %w", p, err)
		}
		files[p] = File{Header: *hdr, Data: data}
	}
	for p := range want {
		if _, ok := files[p]; !ok {
			return nil, fmt.Errorf("the image has no %s", p)
		}
	}
	return files, nil
}

// File is a file taken out of an image.
type File struct {
	Header tar.Header
	Data   []byte
}
