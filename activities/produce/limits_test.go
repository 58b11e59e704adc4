package produce

import (
	"strings"
	"testing"

	"github.com/flowproof/flowproof/activities"
)

// A rate so low that count/rate overflows time.Duration is refused, not
// waved through by a wrapped-around negative duration.
func TestValidateChunkInputRefusesARateTooLowForAnyDuration(t *testing.T) {
	in := ChunkInput{Names: activities.RunNames{RawTopic: "r", LedgerTopic: "l"}, Count: 10, LogicalQueues: 1, RatePerSecond: 1e-300}
	if err := ValidateChunkInput(in); err == nil || !strings.Contains(err.Error(), "longer than a Kafka transaction may stay open") {
		t.Errorf("rate 1e-300: %v, want the chunk refused as too long", err)
	}
}
