package main

import "testing"

func TestVersionFlagSkipsValidation(t *testing.T) {
	s, err := parseSettings([]string{"-version", "-records", "0"})
	if err != nil || !s.showVersion {
		t.Fatalf("parseSettings(-version) = %v; want showVersion without a validation error", err)
	}
}
