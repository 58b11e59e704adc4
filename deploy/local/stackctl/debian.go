package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// installDebianPackage installs pkg with apt-get unless binary is already
// there; binary may be a glob pattern, for packages that put the version
// in the path. The package's maintainer scripts would start Debian's own service
// (say, Redis on 6379); the stack runs its own instance instead, so a
// policy-rc.d that answers 101 forbids service starts during the install.
// An existing policy is the machine's choice and stays as it is.
func installDebianPackage(ctx context.Context, pkg, binary string) error {
	if debianBinaryFound(binary) {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s is missing and installing Debian's %s package needs root: run `apt-get install %s` as root", binary, pkg, pkg)
	}
	const policyRC = "/usr/sbin/policy-rc.d"
	if _, err := os.Stat(policyRC); os.IsNotExist(err) {
		policy := "#!/bin/sh\n# written by flowproof stackctl while installing " + pkg + "\nexit 101\n"
		if err := os.WriteFile(policyRC, []byte(policy), 0o755); err != nil {
			return fmt.Errorf("write %s to keep the package from starting its service: %w", policyRC, err)
		}
		defer func() { _ = os.Remove(policyRC) }()
	}
	logf("installing Debian's %s package (first time only)", pkg)
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, argv := range [][]string{
		{"apt-get", "update"},
		{"apt-get", "install", "-y", "--no-install-recommends", pkg},
	} {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, lastLines(string(out), 30))
		}
	}
	if !debianBinaryFound(binary) {
		return fmt.Errorf("%s package installed but %s is missing", pkg, binary)
	}
	return nil
}

func debianBinaryFound(pattern string) bool {
	matches, _ := filepath.Glob(pattern)
	for _, m := range matches {
		if info, err := os.Stat(m); err == nil && info.Mode().IsRegular() {
			return true
		}
	}
	return false
}
