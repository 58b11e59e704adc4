//go:build integration

package deliver

import (
	"context"
	"slices"
	"testing"
	"time"
)

// A consumer given back to the pool serves the next plan or segment from
// that one's offsets only: the fetches and buffered records of its last use,
// and the partitions it paused there, must not reach the next use, whether
// that starts further on or further back.
func TestAPooledConsumerReadsOnlyFromItsNextStarts(t *testing.T) {
	a := deliverITActivities(t)
	names := deliverITNames(t, "pool")
	deliverITTopics(t, a, names)
	fillEnriched(t, a, names, deliverITMessages)
	topic := names.EnrichedTopic
	partitions := []int32{0, 1, 2, 3, 4}

	// What each partition holds, read by a consumer of its own.
	truth := make(map[int32][]int64)
	first, err := a.clients.consumers.take(topic, nil, partitions)
	if err != nil {
		t.Fatal(err)
	}
	readOffsets(t, first, truth, deliverITMessages)
	first.giveBack(false)
	for _, p := range partitions {
		if len(truth[p]) != deliverITMessages/deliverITPartitions {
			t.Fatalf("partition %d holds %d records, want %d", p, len(truth[p]), deliverITMessages/deliverITPartitions)
		}
	}
	startsAt := func(i int) map[int32]int64 {
		starts := make(map[int32]int64)
		for _, p := range partitions {
			starts[p] = truth[p][i]
		}
		return starts
	}

	// A use that leaves records buffered and a partition paused, as a plan
	// that is full and a segment that read a partition's last record do.
	use, err := a.clients.consumers.take(topic, startsAt(10), partitions)
	if err != nil {
		t.Fatal(err)
	}
	if use.client != first.client {
		t.Fatal("the pool built a new consumer although one was given back")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if recs, err := use.poll(ctx, 1, time.Time{}); err != nil || len(recs) != 1 {
		t.Fatalf("poll: %d records, err %v", len(recs), err)
	}
	use.pause([]int32{0})
	use.giveBack(false)

	for _, from := range []int{300, 100} {
		next, err := a.clients.consumers.take(topic, startsAt(from), partitions)
		if err != nil {
			t.Fatal(err)
		}
		if next.client != first.client {
			t.Fatal("the pool built a new consumer although one was given back")
		}
		got := make(map[int32][]int64)
		readOffsets(t, next, got, len(partitions)*(len(truth[0])-from))
		for _, p := range partitions {
			if want := truth[p][from:]; !slices.Equal(got[p], want) {
				t.Errorf("started at record %d: partition %d read %d records from offset %v, want %d from offset %d",
					from, p, len(got[p]), firstOf(got[p]), len(want), want[0])
			}
		}
		next.giveBack(false)
	}
}

// readOffsets polls consumer until it has read n records, noting their
// offsets per partition.
func readOffsets(t *testing.T, consumer *partitionConsumer, into map[int32][]int64, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for read := 0; read < n; {
		recs, err := consumer.poll(ctx, n-read, time.Time{})
		if err != nil {
			t.Fatalf("after %d of %d records: %v", read, n, err)
		}
		for _, r := range recs {
			into[r.Partition] = append(into[r.Partition], r.Offset)
		}
		read += len(recs)
	}
}

func firstOf(offsets []int64) any {
	if len(offsets) == 0 {
		return "none"
	}
	return offsets[0]
}
