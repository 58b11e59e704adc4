package workflows

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestSanitizeRunIDIsOneToOne walks many workflow ids built to collide
// under a plain character replacement or truncation (ids that differ only
// in characters Kafka refuses, or only after the 200th character, and ids
// that are the replaced form of another) and wants distinct run ids, each
// a valid run id, and ids that need no change kept as they are.
func TestSanitizeRunIDIsOneToOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	const alphabet = "abcXYZ019._-:/ @#é"
	randomID := func(maxLen int) string {
		var b strings.Builder
		for range 1 + rng.IntN(maxLen) {
			runes := []rune(alphabet)
			b.WriteRune(runes[rng.IntN(len(runes))])
		}
		return b.String()
	}
	var ids []string
	for range 20_000 {
		id := randomID(12)
		ids = append(ids, id, strings.Map(func(r rune) rune {
			if strings.ContainsRune("abcXYZ019._-", r) {
				return r
			}
			return '-'
		}, id))
	}
	long := strings.Repeat("n", maxRunIDLength)
	for range 2_000 {
		ids = append(ids, long+randomID(30), long[:maxRunIDLength-10]+randomID(20))
	}
	ids = append(ids, "nightly:2026-11-27", "nightly-2026-11-27", "nightly/2026-11-27", long, long+"x", long+"y")

	byRunID := map[string]string{}
	for _, id := range ids {
		run := sanitizeRunID(id)
		if other, taken := byRunID[run]; taken && other != id {
			t.Fatalf("workflow ids %q and %q both map to run id %q", other, id, run)
		}
		byRunID[run] = id
		if err := (PipelineInput{}).WithDefaults(id).Validate(); err != nil {
			t.Fatalf("workflow id %q gives run id %q, which does not validate: %v", id, run, err)
		}
		if topicAlphabet.MatchString(id) && len(id) <= maxRunIDLength && run != id {
			t.Fatalf("workflow id %q needs no change but became %q", id, run)
		}
	}
	t.Logf("%d workflow ids, each with a run id of its own", len(byRunID))
}

func TestLongestRunIDFitsEveryName(t *testing.T) {
	in := PipelineInput{RunID: strings.Repeat("r", maxRunIDLength)}.WithDefaults("wf")
	if err := in.Validate(); err != nil {
		t.Fatalf("a run id of the longest allowed length is refused: %v", err)
	}
	in.RunID += "r"
	if err := in.Validate(); err == nil {
		t.Fatalf("a run id one character longer than maxRunIDLength passes")
	}
}
