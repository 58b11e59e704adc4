package produce

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/internal/activitytest"
	"github.com/flowproof/flowproof/internal/errtype"
)

func TestLogicalQueueName(t *testing.T) {
	cases := []struct {
		seq    int64
		queues int
		want   string
	}{
		{0, 1000, "q-0000"},
		{41, 1000, "q-0041"},
		{1041, 1000, "q-0041"},
		{999_999, 1000, "q-0999"},
		{7, 3, "q-0001"},
		{12_345, 100_000, "q-12345"},
	}
	for _, c := range cases {
		if got := logicalQueueName(c.seq, c.queues); got != c.want {
			t.Errorf("logicalQueueName(%d, %d) = %q, want %q", c.seq, c.queues, got, c.want)
		}
	}
}

func TestRawValueEncodingRoundTrips(t *testing.T) {
	producedAt := time.Date(2026, 11, 27, 2, 0, 1, 123_456_789, time.FixedZone("CET", 3600))
	for _, c := range []struct {
		runID   string
		payload int
	}{
		{"nightly-2026-11-27", 128},
		{"run.with_dots-and-dashes", 0},
		{`needs "escaping" \ here`, 3},
	} {
		enc := newRawValueEncoder(c.runID, c.payload)
		value := enc.appendValue(nil, 41, "q-0041", producedAt)
		if len(value) > enc.maxLen(len("q-0041")) {
			t.Errorf("value of %d bytes exceeds maxLen %d", len(value), enc.maxLen(len("q-0041")))
		}
		var got rawValue
		if err := json.Unmarshal(value, &got); err != nil {
			t.Fatalf("value %s does not parse: %v", value, err)
		}
		want := rawValue{
			RunID:        c.runID,
			Seq:          41,
			LogicalQueue: "q-0041",
			// Converted to UTC and truncated (not rounded) to microseconds.
			ProducedAt: "2026-11-27T01:00:01.123456Z",
			Payload:    appendPayloadFillerString(c.payload),
		}
		if got != want {
			t.Errorf("decoded %+v, want %+v", got, want)
		}
	}
}

func appendPayloadFillerString(n int) string { return string(appendPayloadFiller(nil, n)) }

func TestRawValueFieldOrderMatchesContract(t *testing.T) {
	value := string(newRawValueEncoder("r", 2).appendValue(nil, 7, "q-0007", time.Unix(0, 0)))
	want := `{"run_id":"r","seq":7,"logical_queue":"q-0007","produced_at":"1970-01-01T00:00:00.000000Z","payload":"ab"}`
	if value != want {
		t.Errorf("value\n got %s\nwant %s", value, want)
	}
}

func TestValueSlabKeepsValuesApart(t *testing.T) {
	enc := newRawValueEncoder("run", 16)
	maxLen := enc.maxLen(6)
	slab := valueSlab{size: 3 * maxLen}
	var values [][]byte
	for seq := range int64(10) {
		values = append(values, slab.commit(enc.appendValue(slab.next(maxLen), seq, "q-0001", time.Unix(seq, 0))))
	}
	for seq, v := range values {
		var got rawValue
		if err := json.Unmarshal(v, &got); err != nil || got.Seq != int64(seq) {
			t.Fatalf("value %d = %s (err %v): overwritten by a later one?", seq, v, err)
		}
		if cap(v) != len(v) {
			t.Errorf("value %d has spare capacity %d; an append to it would overwrite the next value", seq, cap(v)-len(v))
		}
	}
}

func TestChunkNames(t *testing.T) {
	names := activities.RunNames{RawTopic: "flowproof.r1.raw"}
	if got := chunkTransactionalID(names, 17); got != "flowproof.r1.raw.chunk-17" {
		t.Errorf("transactional id = %q", got)
	}
	if got := chunkLedgerKey(17); got != "chunk-17" {
		t.Errorf("ledger key = %q", got)
	}
}

func TestValidateProduceChunkNamesTheField(t *testing.T) {
	valid := ChunkInput{
		Names: activities.RunNames{RunID: "r", RawTopic: "raw", LedgerTopic: "ledger"},
		Chunk: 0, FirstSeq: 0, Count: 10_000, LogicalQueues: 1000, PayloadBytes: 128, RatePerSecond: 25_000,
	}
	if err := validateProduceChunk(valid); err != nil {
		t.Fatalf("valid input rejected: %v", err)
	}
	for field, mutate := range map[string]func(*ChunkInput){
		"names.raw_topic":    func(in *ChunkInput) { in.Names.RawTopic = "" },
		"names.ledger_topic": func(in *ChunkInput) { in.Names.LedgerTopic = "" },
		"chunk":              func(in *ChunkInput) { in.Chunk = -1 },
		"first_seq":          func(in *ChunkInput) { in.FirstSeq = -5 },
		"count":              func(in *ChunkInput) { in.Count = 0 },
		"logical_queues":     func(in *ChunkInput) { in.LogicalQueues = 0 },
		"payload_bytes":      func(in *ChunkInput) { in.PayloadBytes = -1 },
		"rate_per_second":    func(in *ChunkInput) { in.RatePerSecond = -1 },
		// 10,000 messages at 1/s would outlive any transaction.
		"count 10000 at rate_per_second 1": func(in *ChunkInput) { in.RatePerSecond = 1 },
	} {
		in := valid
		mutate(&in)
		err := validateProduceChunk(in)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || !appErr.NonRetryable() || appErr.Type() != errtype.InvalidInput {
			t.Errorf("%s: got %v, want a non-retryable InvalidInput error", field, err)
			continue
		}
		if !strings.Contains(err.Error(), field) {
			t.Errorf("%s: error %q does not name the field", field, err)
		}
	}
}

func TestTransactionTimeoutCoversTheChunk(t *testing.T) {
	cases := []struct {
		count int
		rate  float64
		want  time.Duration
	}{
		{10_000, 0, minTransactionTimeout},
		{10_000, 25_000, minTransactionTimeout},
		{10_000, 100, 2*100*time.Second + 30*time.Second},
		{1_000_000, 1000, maxTransactionTimeout},
	}
	for _, c := range cases {
		got := transactionTimeout(ChunkInput{Count: c.count, RatePerSecond: c.rate})
		if got != c.want {
			t.Errorf("transactionTimeout(count %d, rate %g) = %s, want %s", c.count, c.rate, got, c.want)
		}
	}
}

func BenchmarkEncodeRawMessage(b *testing.B) {
	enc := newRawValueEncoder("nightly-2026-11-27", 128)
	maxLen := enc.maxLen(len("q-0041"))
	slab := valueSlab{size: 256 << 10}
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		value := slab.commit(enc.appendValue(slab.next(maxLen), int64(i), "q-0041", now))
		b.SetBytes(int64(len(value)))
	}
}

func TestChunkPartitionerIsKafkasDefault(t *testing.T) {
	// Kafka's UtilsTest pins murmur2("21") to -973932308.
	if got := activitytest.JavaMurmur2([]byte("21")); got != -973932308 {
		t.Fatalf("activitytest.JavaMurmur2(21) = %d; the reference implementation is wrong", got)
	}
	tp := chunkPartitioner().ForTopic("raw")
	for q := range 1000 {
		key := logicalQueueName(int64(q), 1000)
		for _, partitions := range []int{1, 12, 100} {
			got := tp.Partition(&kgo.Record{Key: []byte(key)}, partitions)
			if want := activitytest.JavaDefaultPartition(key, partitions); int32(got) != want {
				t.Fatalf("key %s over %d partitions: partition %d, Kafka's default says %d", key, partitions, got, want)
			}
		}
	}
}

// The partitions added to a chunk's transaction up front must be exactly
// those its records go to: one missing costs the add it was meant to save,
// one too many a marker written for nothing at commit.
func TestChunkPartitionsAreThoseItsRecordsGoTo(t *testing.T) {
	names := activities.RunNames{RawTopic: "raw", LedgerTopic: "ledger"}
	for _, in := range []ChunkInput{
		{Names: names, Chunk: 2, FirstSeq: 20_000, Count: 10_000, LogicalQueues: 1000},
		{Names: names, Chunk: 7, FirstSeq: 70_350, Count: 2_500, LogicalQueues: 1000},
		{Names: names, Chunk: 9, FirstSeq: 45, Count: 3, LogicalQueues: 1000},
		{Names: names, Chunk: 1, FirstSeq: 5, Count: 40, LogicalQueues: 7},
	} {
		for _, ledgerPartitions := range []int{1, 3} {
			got := chunkPartitionsOf(in, 100, ledgerPartitions)
			written := map[int32]bool{}
			for seq := in.FirstSeq; seq < in.FirstSeq+int64(in.Count); seq++ {
				written[activitytest.JavaDefaultPartition(logicalQueueName(seq, in.LogicalQueues), 100)] = true
			}
			if want := slices.Sorted(maps.Keys(written)); !slices.Equal(got[names.RawTopic], want) {
				t.Errorf("chunk %+v: raw partitions %v, its records go to %v", in, got[names.RawTopic], want)
			}
			wantLedger := []int32{activitytest.JavaDefaultPartition(chunkLedgerKey(in.Chunk), ledgerPartitions)}
			if !slices.Equal(got[names.LedgerTopic], wantLedger) {
				t.Errorf("chunk %d over %d ledger partitions: %v, its ledger record goes to %v", in.Chunk, ledgerPartitions, got[names.LedgerTopic], wantLedger)
			}
			if len(got) != 2 {
				t.Errorf("chunk %d: partitions of %d topics, want the raw topic and the ledger", in.Chunk, len(got))
			}
		}
	}
}

func TestPacerCountsTheTimeItWaits(t *testing.T) {
	var waited atomic.Int64
	// 300 at 1,000/s in steps of 100, the first step paced too: 0.3 s.
	pace := pacer(ChunkInput{Count: 300, RatePerSecond: 1_000}, &waited)
	started := time.Now()
	for range 300 {
		if err := pace(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(started)
	if w := time.Duration(waited.Load()); w < 250*time.Millisecond || w > elapsed {
		t.Fatalf("waited %s in %s; want at least 250 ms, and no more than it took", w, elapsed)
	}

	waited.Store(0)
	unpaced := pacer(ChunkInput{Count: 300}, &waited)
	for range 300 {
		if err := unpaced(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if waited.Load() != 0 {
		t.Fatalf("waited %d ns without a rate", waited.Load())
	}
}
