package deliver

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities/internal/activitytest"
)

// The partitions added to a segment's transaction up front must be those
// its response records go to, as Kafka's default partitioner places them:
// one missing costs the collision the add was meant to avoid, one too many
// a marker written for nothing at commit.
func TestResponsesPartitionsAreThoseTheRecordsGoTo(t *testing.T) {
	const topic, partitions = "responses", 12
	for _, count := range []int{1, 3, 100, 250} {
		records := make([]*kgo.Record, 0, count)
		want := map[int32]bool{}
		for i := range count {
			key := fmt.Sprintf("run-1.s7.b%d", i)
			records = append(records, &kgo.Record{Topic: topic, Key: []byte(key)})
			want[activitytest.JavaDefaultPartition(key, partitions)] = true
		}
		if got, want := recordPartitions(records, topic, partitions), slices.Sorted(maps.Keys(want)); !slices.Equal(got, want) {
			t.Errorf("%d records: partitions %v, Kafka's default partitioner puts them in %v", count, got, want)
		}
	}
}
