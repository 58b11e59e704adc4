package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"time"
)

// goBuild builds a package of the checkout into binary on every call: go's
// build cache makes an unchanged build take a second, and a stale binary
// would run old code.
func goBuild(ctx context.Context, s *stack, binary, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", binary, pkg)
	cmd.Dir = s.repoDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, lastLines(string(out), 30))
	}
	return nil
}

// goInstalled is a binary that `go install module@version` builds into the
// cache, outside the flowproof module: such tools pin their own
// dependencies (a Temporal server pins its own SDK and API), which must not
// be coupled to those in our go.mod.
type goInstalled struct {
	what    string // for messages: "the temporal CLI"
	pkg     string // the main package's import path
	version string
	binary  string // where the binary ends up
}

func (g goInstalled) installed() bool {
	info, err := os.Stat(g.binary)
	return err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0
}

// install builds the binary unless it is there. The build goes to a
// scratch GOBIN and is renamed into place only when complete, so an
// interrupted build never passes for an installed binary.
func (g goInstalled) install(ctx context.Context) error {
	if g.installed() {
		return nil
	}
	if _, err := exec.LookPath("go"); err != nil {
		return fmt.Errorf("building %s needs the go tool: %w", g.what, err)
	}
	dir := filepath.Dir(g.binary)
	scratch := dir + ".partial-" + strconv.Itoa(os.Getpid())
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return fmt.Errorf("create build dir: %w", err)
	}
	defer func() { _ = os.RemoveAll(scratch) }()
	logf("building %s %s from Go modules into %s (first time only; takes several minutes)", g.what, g.version, g.binary)
	began := time.Now()
	cmd := exec.CommandContext(ctx, "go", "install", g.pkg+"@"+g.version)
	cmd.Dir = scratch // outside the flowproof module, so its go.mod plays no part
	cmd.Env = append(os.Environ(), "GOBIN="+scratch, "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go install %s@%s: %w\n%s", g.pkg, g.version, err, lastLines(string(out), 30))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Rename(filepath.Join(scratch, path.Base(g.pkg)), g.binary); err != nil {
		return fmt.Errorf("move built %s into place: %w", g.what, err)
	}
	logf("built %s in %s", g.what, time.Since(began).Round(time.Second))
	return nil
}
