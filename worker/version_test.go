package main

import (
	"bytes"
	"testing"
)

func TestVersionFlagSkipsTheRestOfTheConfiguration(t *testing.T) {
	// Without a client secret for a remote token service the configuration
	// is invalid; -version must not care.
	env := envMap(map[string]string{"FLOWPROOF_TOKEN_URL": "https://tokens.invalid"})
	cfg, err := parseConfig([]string{"-version"}, env, &bytes.Buffer{})
	if err != nil || !cfg.showVersion {
		t.Fatalf("parseConfig(-version) = %+v, %v; want showVersion", cfg, err)
	}
}
