package envconf

import (
	"slices"
	"testing"
)

func TestString(t *testing.T) {
	env := map[string]string{"SET": " value ", "BLANK": "  "}
	getenv := func(k string) string { return env[k] }
	for key, want := range map[string]string{"SET": "value", "BLANK": "fallback", "UNSET": "fallback"} {
		if got := String(getenv, key, "fallback"); got != want {
			t.Errorf("String(%s) = %q, want %q", key, got, want)
		}
	}
}

func TestSplitList(t *testing.T) {
	if got := SplitList(" k1:9092, k2:9092 ,,"); !slices.Equal(got, []string{"k1:9092", "k2:9092"}) {
		t.Errorf("SplitList = %q", got)
	}
	if got := SplitList(" , "); got != nil {
		t.Errorf("SplitList of blanks = %q, want nil", got)
	}
}
