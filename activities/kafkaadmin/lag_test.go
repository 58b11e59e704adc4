package kafkaadmin

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

func listed(topic string, offsets ...int64) kadm.ListedOffsets {
	ps := make(map[int32]kadm.ListedOffset, len(offsets))
	for p, o := range offsets {
		ps[int32(p)] = kadm.ListedOffset{Topic: topic, Partition: int32(p), Offset: o}
	}
	return kadm.ListedOffsets{topic: ps}
}

func committedAt(topic string, offsets map[int32]int64) kadm.OffsetResponses {
	ps := make(map[int32]kadm.OffsetResponse, len(offsets))
	for p, o := range offsets {
		ps[p] = kadm.OffsetResponse{Offset: kadm.Offset{Topic: topic, Partition: p, At: o}}
	}
	return kadm.OffsetResponses{topic: ps}
}

func TestTopicProgress(t *testing.T) {
	starts := listed("raw", 0, 0, 100)
	ends := listed("raw", 500, 300, 400)
	cases := []struct {
		name         string
		committed    kadm.OffsetResponses
		wantLag      int64
		wantPosition int64
	}{
		// No group, or no commits: everything between start and end; the
		// position is where the partitions start.
		{"group without commits", nil, 500 + 300 + 300, 0 + 0 + 100},
		{"half consumed", committedAt("raw", map[int32]int64{0: 250, 1: 150, 2: 250}), 250 + 150 + 150, 250 + 150 + 250},
		// A partition without a commit counts from its start.
		{"one partition committed", committedAt("raw", map[int32]int64{0: 500}), 0 + 300 + 300, 500 + 0 + 100},
		// -1 is how Kafka says "no offset committed".
		{"commit of -1", committedAt("raw", map[int32]int64{0: -1, 1: 300, 2: 400}), 500, 0 + 300 + 400},
		// Committed below the start (retention removed records): those are
		// gone, not lag, and the group is at the start.
		{"commit below start", committedAt("raw", map[int32]int64{0: 500, 1: 300, 2: 50}), 300, 500 + 300 + 100},
		{"all consumed", committedAt("raw", map[int32]int64{0: 500, 1: 300, 2: 400}), 0, 1200},
		// Commits of another topic do not count for this one.
		{"other topic", committedAt("enriched", map[int32]int64{0: 500, 1: 300, 2: 400}), 1100, 100},
	}
	for _, c := range cases {
		got, err := topicProgress("raw", starts, ends, c.committed)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got.lag != c.wantLag || got.position != c.wantPosition {
			t.Errorf("%s: lag %d position %d, want %d and %d", c.name, got.lag, got.position, c.wantLag, c.wantPosition)
		}
	}
}

func TestTopicProgressErrors(t *testing.T) {
	if _, err := topicProgress("raw", listed("raw", 0), kadm.ListedOffsets{}, nil); err == nil || !strings.Contains(err.Error(), "raw") {
		t.Errorf("missing end offsets: %v", err)
	}
	ends := listed("raw", 10)
	p := ends["raw"][0]
	p.Err = kerr.NotLeaderForPartition
	ends["raw"][0] = p
	if _, err := topicProgress("raw", listed("raw", 0), ends, nil); err == nil || !strings.Contains(err.Error(), "partition 0") {
		t.Errorf("partition error: %v", err)
	}
}
