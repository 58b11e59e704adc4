// Package version says which build of flowproof a binary is, for the
// --version flag every flowproof binary takes.
package version

import (
	"fmt"
	"runtime/debug"
)

// String is "<program> <module version> (<vcs revision>[, modified]) <go version>",
// read from the build information the Go toolchain embeds.
func String(program string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return program + " (no build information)"
	}
	revision, modified := "unknown revision", ""
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	return fmt.Sprintf("%s %s (%s%s) %s", program, info.Main.Version, revision, modified, info.GoVersion)
}
