package image

import (
	"bytes"
	"crypto/x509"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImageRunsItsStaticBinariesAsNonRoot builds the image as `make image`
// does, reads it back from the tarball, and runs the programs taken out of
// it.
func TestImageRunsItsStaticBinariesAsNonRoot(t *testing.T) {
	begin := time.Now()
	built, err := Build(t.Context(), Options{RepoRoot: filepath.Join("..", "..", "..")})
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "flowproof-image.tar")
	if err := WriteTarball(tarPath, "flowproof:test", built); err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(tarPath, nil)
	if err != nil {
		t.Fatalf("read the tarball back: %v", err)
	}
	digest, err := built.Digest()
	if err != nil {
		t.Fatal(err)
	}
	// The tarball's manifest is written anew when read back; the config
	// and the layer are the bytes built.
	for what, pair := range map[string][2]func() (v1.Hash, error){
		"config": {built.ConfigName, img.ConfigName},
		"layer":  {func() (v1.Hash, error) { return firstLayer(built) }, func() (v1.Hash, error) { return firstLayer(img) }},
	} {
		want, err := pair[0]()
		if err != nil {
			t.Fatal(err)
		}
		if got, err := pair[1](); err != nil || got != want {
			t.Errorf("%s read back from the tarball: %s (%v), built %s", what, got, err, want)
		}
	}
	stat, err := os.Stat(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s, wrote and read back %s in %s: %.1f MB", digest, filepath.Base(tarPath), time.Since(begin).Round(time.Millisecond), float64(stat.Size())/1e6)

	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(t, cfg)

	binaries := []string{BinDir + "/worker", BinDir + "/starter"}
	files, err := Files(img, append([]string{"/etc/passwd", CABundle}, binaries...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(files["/etc/passwd"].Data), ":"+strconv.Itoa(UID)+":"+strconv.Itoa(GID)+":") {
		t.Errorf("/etc/passwd has no entry for %d:%d:\n%s", UID, GID, files["/etc/passwd"].Data)
	}
	if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(files[CABundle].Data) {
		t.Errorf("%s holds no PEM certificate", CABundle)
	}

	dir := runnableDir(t)
	for _, p := range binaries {
		f := files[p]
		// Root-owned and not writable by the user the image runs as.
		if f.Header.Uid != 0 || f.Header.Mode&0o022 != 0 || f.Header.Mode&0o111 == 0 {
			t.Errorf("%s: uid %d, mode %o; want root-owned, executable, writable by root only", p, f.Header.Uid, f.Header.Mode)
		}
		local := filepath.Join(dir, filepath.Base(p))
		if err := os.WriteFile(local, f.Data, 0o755); err != nil {
			t.Fatal(err)
		}
		checkStatic(t, local)
	}

	version := run(t, filepath.Join(dir, "worker"), "-version")
	t.Logf("worker -version: %s", strings.TrimSpace(version.stdout))
	if !strings.HasPrefix(version.stdout, "worker ") || !strings.Contains(version.stdout, cfg.Config.Labels["org.opencontainers.image.version"]) {
		t.Errorf("worker -version printed %q; want the version the image's label carries, %q", version.stdout, cfg.Config.Labels["org.opencontainers.image.version"])
	}
	if help := run(t, filepath.Join(dir, "worker"), "-h"); !strings.Contains(help.stderr, "Usage of worker") || !strings.Contains(help.stderr, "-stop-timeout") {
		t.Errorf("worker -h printed %q", help.stderr)
	}
	if starter := run(t, filepath.Join(dir, "starter"), "--version"); !strings.HasPrefix(starter.stdout, "starter ") {
		t.Errorf("starter --version printed %q", starter.stdout)
	}
}

// firstLayer is the digest of img's one layer.
func firstLayer(img v1.Image) (v1.Hash, error) {
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, err
	}
	if len(layers) != 1 {
		return v1.Hash{}, fmt.Errorf("%d layers, want 1", len(layers))
	}
	return layers[0].Digest()
}

func checkConfig(t *testing.T, cfg *v1.ConfigFile) {
	t.Helper()
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cfg.OS, cfg.Architecture, runtime.GOARCH)
	}
	user := strings.Split(cfg.Config.User, ":")
	if uid, err := strconv.Atoi(user[0]); err != nil || uid == 0 || uid != UID {
		t.Errorf("user %q: want the numeric non-root uid %d, which runAsNonRoot can check", cfg.Config.User, UID)
	}
	if want := []string{BinDir + "/worker"}; !slices.Equal(cfg.Config.Entrypoint, want) {
		t.Errorf("entrypoint %q, want %q", cfg.Config.Entrypoint, want)
	}
	if !slices.Contains(cfg.Config.Env, "FLOWPROOF_WORKER_METRICS_ADDR=:"+strconv.Itoa(MetricsPort)) {
		t.Errorf("env %q does not serve the metrics and probes on every interface", cfg.Config.Env)
	}
	if cfg.Config.Labels["org.opencontainers.image.version"] == "" {
		t.Errorf("labels %v carry no version", cfg.Config.Labels)
	}
	t.Logf("config: user %s, entrypoint %q, env %q, labels %v", cfg.Config.User, cfg.Config.Entrypoint, cfg.Config.Env, cfg.Config.Labels)
}

// checkStatic fails unless path is an ELF executable that needs no dynamic
// loader nor shared library, so it runs on an empty base.
func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer func() { _ = f.Close() }()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a %s program header: not statically linked", filepath.Base(path), prog.Type)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v (%v)", filepath.Base(path), libs, err)
	}
}

// runnableDir is a directory the image's user can run programs from.
func runnableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// The testing package makes the directory's parent private to us.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type output struct{ stdout, stderr string }

// run runs a program taken out of the image with the image's user when
// the test may switch users (as root, like CI), with an empty environment,
// and fails unless it exits 0.
func run(t *testing.T, program string, args ...string) output {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), program, args...)
	cmd.Env = []string{}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: UID, Gid: GID}}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", filepath.Base(program), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return output{stdout.String(), stderr.String()}
}

// TestDockerfileBuildsTheSameImage keeps the Dockerfile, which cannot be
// built here, describing the image Build makes: the same go build, user,
// entrypoint, programs and metrics address.
func TestDockerfileBuildsTheSameImage(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	instructions := map[string][]string{}
	for _, line := range strings.Split(strings.ReplaceAll(string(raw), "\\\n", " "), "\n") {
		keyword, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		if keyword != "" && !strings.HasPrefix(keyword, "#") {
			instructions[keyword] = append(instructions[keyword], strings.TrimSpace(rest))
		}
	}
	var build []string
	for _, run := range instructions["RUN"] {
		if words := shellWords(run); slices.Contains(words, "build") {
			build = words[slices.Index(words, "CGO_ENABLED=0"):]
		}
	}
	want := slices.Concat([]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=$TARGETARCH", "go", "build"}, GoBuildFlags, []string{"-o", "/out/", "./worker", "./starter"})
	if !slices.Equal(build, want) {
		t.Errorf("the Dockerfile builds with\n  %q\nwant\n  %q", build, want)
	}
	for keyword, want := range map[string]string{
		"USER":       strconv.Itoa(UID) + ":" + strconv.Itoa(GID),
		"ENTRYPOINT": `["` + BinDir + `/worker"]`,
		"COPY":       "--from=build /out/worker /out/starter " + BinDir + "/",
		"ENV":        "HOME=" + HomeDir + " FLOWPROOF_WORKER_METRICS_ADDR=:" + strconv.Itoa(MetricsPort),
		"EXPOSE":     strconv.Itoa(MetricsPort),
	} {
		if got := instructions[keyword]; !slices.ContainsFunc(got, func(s string) bool { return strings.Join(strings.Fields(s), " ") == want }) {
			t.Errorf("Dockerfile %s: %q, want one %q", keyword, got, want)
		}
	}
}

// shellWords splits a RUN line as the shell would, for the quoting it uses
// (single quotes).
func shellWords(s string) []string {
	var words []string
	var word strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '\'':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words
}
