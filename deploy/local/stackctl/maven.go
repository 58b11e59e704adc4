package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// resolveJars copies the runtime dependencies of a pinned pom (under deploy/)
// into the cache and returns the directory holding the jars. The directory is
// keyed by the pom's content, so editing a version resolves anew while an
// unchanged pom costs nothing.
func (s *stack) resolveJars(ctx context.Context, name, pomRelPath string) (string, error) {
	pom := filepath.Join(s.repoDir, pomRelPath)
	raw, err := os.ReadFile(pom)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", pomRelPath, err)
	}
	sum := sha256.Sum256(raw)
	dir := filepath.Join(s.cacheDir, "jars", name+"-"+hex.EncodeToString(sum[:6]))
	done := filepath.Join(dir, ".complete")
	if _, err := os.Stat(done); err == nil {
		return dir, nil
	}
	tmp := dir + ".partial"
	_ = os.RemoveAll(tmp)
	logf("resolving %s jars with mvn (first time only)", name)
	cmd := exec.CommandContext(ctx, "mvn", "-B", "-q", "-f", pom,
		"dependency:copy-dependencies", "-DincludeScope=runtime", "-DoutputDirectory="+tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mvn dependency:copy-dependencies for %s: %w\n%s", pomRelPath, err, lastLines(string(out), 30))
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return "", err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// classpath joins every jar of dir.
func classpath(dir string) (string, error) {
	jars, err := filepath.Glob(filepath.Join(dir, "*.jar"))
	if err != nil {
		return "", err
	}
	if len(jars) == 0 {
		return "", fmt.Errorf("no jars in %s", dir)
	}
	return strings.Join(jars, string(os.PathListSeparator)), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
