// Package envconf reads settings from environment variables the same way in
// every flowproof binary: a value is trimmed, an empty value counts as
// unset, and a list is comma-separated.
package envconf

import (
	"strings"
)

// String is the trimmed value of key, or fallback when that is empty.
// getenv is os.Getenv outside tests.
func String(getenv func(string) string, key, fallback string) string {
	if v := strings.TrimSpace(getenv(key)); v != "" {
		return v
	}
	return fallback
}

// SplitList splits a comma-separated list, dropping blank entries:
// " a, b ,," is [a b].
func SplitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
