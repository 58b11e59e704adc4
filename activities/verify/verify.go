// Package verify proves (or disproves) that every message of a run reached
// the final topic exactly once and intact.
package verify

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// Activities holds the shared Kafka connection.
type Activities struct {
	kafka *kafkaeos.Conn
}

// New returns the verify activity.
func New(kafka *kafkaeos.Conn) *Activities { return &Activities{kafka: kafka} }

// Input checks the final topic of a run.
type Input struct {
	Names    activities.RunNames `json:"names"`
	Messages int64               `json:"messages"`
	// IdleTimeoutMillis ends verification when no new record arrived for
	// that long before all messages were seen.
	IdleTimeoutMillis int64 `json:"idle_timeout_ms"`
}

// Percentiles of end-to-end latency, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// Result proves (or disproves) exactly-once arrival.
type Result struct {
	Expected int64 `json:"expected"`
	Records  int64 `json:"records"`
	Unique   int64 `json:"unique"`
	Missing  int64 `json:"missing"`
	// Duplicates counts records whose seq had been seen before.
	Duplicates int64 `json:"duplicates"`
	// DuplicateCorrelationIDs counts records whose correlation id had been
	// seen before. With derived ids it can only be non-zero together with
	// Duplicates or BadRecords; it is counted on its own so the report
	// shows uniqueness of the ids directly.
	DuplicateCorrelationIDs int64 `json:"duplicate_correlation_ids"`
	// BadRecords counts records that break the contract: unparsable value,
	// a header missing or differing from its field, a wrong correlation id.
	BadRecords     int64                    `json:"bad_records"`
	FirstMissing   []int64                  `json:"first_missing,omitempty"`
	Problems       []string                 `json:"problems,omitempty"`
	Latency        Percentiles              `json:"latency"`
	First          []activities.MessageView `json:"first"`
	Last           []activities.MessageView `json:"last"`
	DurationMillis int64                    `json:"duration_ms"`
}

// Passed is true when every message arrived exactly once and intact.
func (v Result) Passed() bool {
	return v.Expected > 0 && v.Unique == v.Expected && v.Missing == 0 && v.Duplicates == 0 && v.BadRecords == 0
}

// Bounds of a verification.
const (
	// MaxMessages is the most messages one verification checks.
	MaxMessages = 100_000_000
	// MaxIdleTimeout is the longest wait for missing messages: it must
	// leave most of the activity's timeout to reading the final topic.
	MaxIdleTimeout     = 10 * time.Minute
	verifyMaxFetchWait = 500 * time.Millisecond
)

// verifyProgress is the heartbeat detail of Verify.
type verifyProgress struct {
	Records int64 `json:"records"`
	Unique  int64 `json:"unique"`
}

func validateVerify(in Input) error {
	switch {
	case in.Names.FinalTopic == "":
		return errtype.InvalidInputf("names.final_topic is empty")
	case in.Names.RunID == "":
		return errtype.InvalidInputf("names.run_id is empty")
	case in.Messages < 1 || in.Messages > MaxMessages:
		return errtype.InvalidInputf("messages is %d; want 1 to %d", in.Messages, MaxMessages)
	case in.IdleTimeoutMillis < 1 || in.IdleTimeoutMillis > MaxIdleTimeout.Milliseconds():
		return errtype.InvalidInputf("idle_timeout_ms is %d; want 1 to %d", in.IdleTimeoutMillis, MaxIdleTimeout.Milliseconds())
	}
	return nil
}

// ValidateInput is Verify's own check of its input, which the workflows'
// input checks are tested against.
func ValidateInput(in Input) error { return validateVerify(in) }

// Verify reads the final topic from the start (read_committed, straight from
// the partitions, no consumer group) and checks every record against the
// message contract. It stops when every expected message has been seen and
// every partition has been read to its last stable offset — so duplicates
// already committed are counted too — or when no record arrived for
// IdleTimeoutMillis, and then reports what is missing.
func (a *Activities) Verify(ctx context.Context, in Input) (Result, error) {
	return FinalTopic(ctx, a.kafka, in, activities.ReporterOf(ctx))
}

// FinalTopic is Verify for a caller that is no activity (the benchmark): it
// reports to rep.
func FinalTopic(ctx context.Context, kafka *kafkaeos.Conn, in Input, rep activities.Reporter) (Result, error) {
	if err := validateVerify(in); err != nil {
		return Result{}, err
	}
	started := time.Now()
	reader, err := kafkaeos.NewCommittedReader(ctx, kafka, in.Names.FinalTopic)
	if err != nil {
		return Result{}, fmt.Errorf("verify %s: %w", in.Names.FinalTopic, err)
	}
	v := newVerifier(in.Names.RunID, in.Messages)

	var records, unique atomic.Int64
	defer rep.HeartbeatEvery(ctx, func() any {
		return verifyProgress{Records: records.Load(), Unique: unique.Load()}
	})()

	idle := time.Duration(in.IdleTimeoutMillis) * time.Millisecond
	lastArrival := time.Now()
	for {
		n, err := reader.FetchRound(ctx, min(verifyMaxFetchWait, idle), false, v.observe)
		if err != nil {
			return Result{}, fmt.Errorf("verify %s after %d records: %w", in.Names.FinalTopic, v.records, err)
		}
		records.Store(v.records)
		unique.Store(v.unique)
		if n > 0 {
			lastArrival = time.Now()
		}
		if v.unique == in.Messages && reader.CaughtUp() {
			break
		}
		if time.Since(lastArrival) >= idle {
			rep.Log.Warn("final topic idle; verification ends with messages missing",
				"Topic", in.Names.FinalTopic, "Unique", v.unique, "Expected", in.Messages, "Idle", idle)
			break
		}
	}
	res := v.result()
	res.DurationMillis = time.Since(started).Milliseconds()
	rep.Log.Info("verification done", "Topic", in.Names.FinalTopic, "Passed", res.Passed(),
		"Records", res.Records, "Unique", res.Unique, "Missing", res.Missing,
		"Duplicates", res.Duplicates, "Bad", res.BadRecords, "DurationMillis", res.DurationMillis)
	return res, nil
}
