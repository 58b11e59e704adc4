package main

import (
	"context"
	"fmt"
	"os/exec"
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
