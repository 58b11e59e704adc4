//go:build integration

package kafkaadmin

import (
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/flowproof/flowproof/activities/internal/activitytest"
)

// BenchmarkCreateRunTopics creates a default run's topics (100 raw
// partitions, 12 derived, replication 3, min ISR 2) on the stack's Kafka,
// as PrepareTopics does, and reports where the time goes by Kafka request:
// the run's first write to its new ledger (acks=all, so it waits until the
// followers fetch a partition they have only just learned of), the topic
// creations and all ledger writes, each summed per run. docs/performance.md
// ("Where a fresh run stands") has its figures. The connection takes the
// FLOWPROOF_KAFKA_TLS* and _SASL_* settings, so it measures the secure
// profile too:
//
//	eval "$(bin/stackctl env)"
//	go test -tags integration -run '^$' -bench CreateRunTopics -benchtime 3x ./activities/kafkaadmin/
func BenchmarkCreateRunTopics(b *testing.B) {
	timer := &requestTimer{}
	conn := activitytest.EnvConn(b, kgo.WithHooks(timer))
	// A worker's connections are open before its first run.
	if _, err := conn.Admin.BrokerMetadata(b.Context()); err != nil {
		b.Fatal(err)
	}
	var firstWrite, creates, writes time.Duration
	for b.Loop() {
		names := activitytest.UniqueNames(b, "preparebench")
		timer.reset()
		if _, err := CreateRunTopics(b.Context(), conn, PrepareTopicsInput{
			Names: names, Partitions: 100, DerivedPartitions: 12, ReplicationFactor: 3, MinInsyncReplicas: 2,
		}, activitytest.Discard); err != nil {
			b.Fatal(err)
		}
		activitytest.DeleteRunAtCleanup(b, conn, names)
		first, create, write := timer.totals()
		firstWrite, creates, writes = firstWrite+first, creates+create, writes+write
	}
	perRun := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N) }
	b.ReportMetric(perRun(firstWrite), "first-ledger-write-ms/op")
	b.ReportMetric(perRun(creates), "create-topics-ms/op")
	b.ReportMetric(perRun(writes), "ledger-writes-ms/op")
}

// requestTimer keeps the duration of each CreateTopics and Produce request
// since its last reset, in order.
type requestTimer struct {
	mu       sync.Mutex
	creates  []time.Duration
	produces []time.Duration
}

func (t *requestTimer) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch kmsg.Key(key) {
	case kmsg.CreateTopics:
		t.creates = append(t.creates, e2e.DurationE2E())
	case kmsg.Produce:
		t.produces = append(t.produces, e2e.DurationE2E())
	}
}

func (t *requestTimer) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.creates, t.produces = nil, nil
}

// totals returns the first Produce's duration (the ledger's first write),
// and the sums of the CreateTopics and of all Produce requests.
func (t *requestTimer) totals() (first, creates, produces time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.produces) > 0 {
		first = t.produces[0]
	}
	for _, d := range t.creates {
		creates += d
	}
	for _, d := range t.produces {
		produces += d
	}
	return first, creates, produces
}
