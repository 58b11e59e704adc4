package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersionFlagPrintsTheBuild(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := execute(t.Context(), []string{"--version"}, &stdout, &stderr)
	if code != 0 || !strings.HasPrefix(stdout.String(), "starter ") {
		t.Errorf("starter --version: code %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}
