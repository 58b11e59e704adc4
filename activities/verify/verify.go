// Package verify proves (or disproves) that every message of a run passed
// every hop exactly once and intact: the raw and enriched topics, the
// endpoint and the final topic, each counted per seq from the data itself.
package verify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// Activities holds the shared Kafka connection and, when the run's
// endpoint is the reference one, its address.
type Activities struct {
	kafka     *kafkaeos.Conn
	reference *referenceEndpoint // nil: no cross-check
}

// New returns the verify activity.
func New(kafka *kafkaeos.Conn) *Activities { return &Activities{kafka: kafka} }

// CrossCheckWith makes Verify ask the reference endpoint at endpointURL
// for its own count of each run (endpointapi.RunStatsPath) and report it
// as one more hop. An empty endpointURL leaves a unchanged; an endpoint
// without that route is reported as not available, not as a failure.
func (a *Activities) CrossCheckWith(endpointURL string) (*Activities, error) {
	if endpointURL == "" {
		return a, nil
	}
	reference, err := newReferenceEndpoint(endpointURL)
	if err != nil {
		return nil, err
	}
	return &Activities{kafka: a.kafka, reference: reference}, nil
}

// Input checks the hops of a run.
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
	// P999 is p99.9; results recorded before it was measured read 0.
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
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
	BadRecords int64 `json:"bad_records"`
	// Hops are the run's hops, each counted per seq: raw, enriched, the
	// endpoint (from the accepted topic, and the reference endpoint's own
	// count when there is one) and final. The fields above are the final
	// topic's; a verification recorded before hops were counted has none.
	Hops         []HopCount  `json:"hops,omitempty"`
	FirstMissing []int64     `json:"first_missing,omitempty"`
	Problems     []string    `json:"problems,omitempty"`
	Latency      Percentiles `json:"latency"`
	// LatencyHistogram is the distribution behind Latency; nil in results
	// recorded before it was kept.
	LatencyHistogram *LatencyHistogram `json:"latency_histogram,omitempty"`
	// Series are the messages per interval at every hop; nil in results
	// recorded before they were counted, and for FinalTopic.
	Series *Series `json:"series,omitempty"`
	// FlowMillis is the time from the earliest produced_at to the latest
	// arrival in the final topic, over every record of the run that carried
	// both: the span the messages took to cross the pipeline end to end. It
	// is on the same clocks as the latency (the worker's and the brokers').
	FlowMillis     int64                    `json:"flow_ms,omitempty"`
	First          []activities.MessageView `json:"first"`
	Last           []activities.MessageView `json:"last"`
	DurationMillis int64                    `json:"duration_ms"`

	// problemsLeftOut counts the problems the last line of Problems stands
	// for ("... and N more problems"); zero when every problem is listed.
	problemsLeftOut int64
	// verifiedPerSecond are the final topic's arrivals, for Series.
	verifiedPerSecond secondCounter
}

// Passed is true when every message arrived exactly once and intact, and
// passed every hop counted exactly once.
func (v Result) Passed() bool {
	finalExact := v.Expected > 0 && v.Unique == v.Expected && v.Missing == 0 && v.Duplicates == 0 && v.BadRecords == 0
	return finalExact && len(v.FailedHops()) == 0
}

// FailedHops names the hops that were not exact, in the order a message
// passes them.
func (v Result) FailedHops() []string {
	var failed []string
	for _, h := range v.Hops {
		if !h.Exact(v.Expected) {
			failed = append(failed, h.Hop)
		}
	}
	return failed
}

// Bounds of a verification.
const (
	// MaxMessages is the most messages one verification checks.
	MaxMessages = 100_000_000
	// MaxIdleTimeout is the longest wait for missing messages: it must
	// leave most of the activity's timeout to reading the final topic.
	MaxIdleTimeout     = 10 * time.Minute
	verifyMaxFetchWait = 500 * time.Millisecond
	// finalRoundBytes is what the final topic's reader fetches from a
	// leader in one round. It is the last of Verify's readers to finish,
	// and it spent most of its time waiting for rounds of 4 MiB; the split
	// job writes uncompressed records, so a round's memory is about its
	// size.
	finalRoundBytes = 16 << 20
)

// verifyProgress is the heartbeat detail of Verify.
type verifyProgress struct {
	Records int64 `json:"records"`
	Unique  int64 `json:"unique"`
	// HopRecords are the records read from the other hops' topics.
	HopRecords int64 `json:"hop_records,omitempty"`
}

// finalProgress is what the final topic's reader has counted so far.
type finalProgress struct {
	records, unique atomic.Int64
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

// Verify counts every hop of the run per seq, reading the topics in
// parallel, each from the start (read_committed, straight from the
// partitions, no consumer group) to its last stable offset: the raw and
// enriched topics, the accepted topic (what the endpoint accepted) and the
// final topic, whose records it also checks against the message contract.
// The final topic is read until every expected message has been seen and
// every partition to its last stable offset — so duplicates already
// committed are counted too — or until no record arrived for
// IdleTimeoutMillis. With a reference endpoint (CrossCheckWith), its own
// count is one more hop.
func (a *Activities) Verify(ctx context.Context, in Input) (Result, error) {
	if err := validateVerify(in); err != nil {
		return Result{}, err
	}
	rep := activities.ReporterOf(ctx)
	started := time.Now()
	var final finalProgress
	var hopRecords atomic.Int64
	defer rep.HeartbeatEvery(ctx, func() any {
		return verifyProgress{Records: final.records.Load(), Unique: final.unique.Load(), HopRecords: hopRecords.Load()}
	})()

	counts := newHopCounts(in, a.reference)
	var (
		wg       sync.WaitGroup
		res      Result
		finalErr error
	)
	wg.Go(func() { res, finalErr = readFinal(ctx, a.kafka, in, rep, &final) })
	hopsErr := counts.read(ctx, a.kafka, &hopRecords)
	wg.Wait()
	if err := errors.Join(finalErr, hopsErr); err != nil {
		return Result{}, err
	}
	res = counts.judge(res)
	res.DurationMillis = time.Since(started).Milliseconds()
	rep.Log.Info("verification done", "Passed", res.Passed(), "FailedHops", res.FailedHops(),
		"Records", res.Records, "Unique", res.Unique, "Missing", res.Missing,
		"Duplicates", res.Duplicates, "Bad", res.BadRecords, "DurationMillis", res.DurationMillis)
	return res, nil
}

// FinalTopic verifies the final topic only, for a caller that is no
// activity (the benchmark): it reports to rep.
func FinalTopic(ctx context.Context, kafka *kafkaeos.Conn, in Input, rep activities.Reporter) (Result, error) {
	if err := validateVerify(in); err != nil {
		return Result{}, err
	}
	started := time.Now()
	var progress finalProgress
	defer rep.HeartbeatEvery(ctx, func() any {
		return verifyProgress{Records: progress.records.Load(), Unique: progress.unique.Load()}
	})()
	res, err := readFinal(ctx, kafka, in, rep, &progress)
	if err != nil {
		return Result{}, err
	}
	res.DurationMillis = time.Since(started).Milliseconds()
	rep.Log.Info("verification done", "Topic", in.Names.FinalTopic, "Passed", res.Passed(),
		"Records", res.Records, "Unique", res.Unique, "Missing", res.Missing,
		"Duplicates", res.Duplicates, "Bad", res.BadRecords, "DurationMillis", res.DurationMillis)
	return res, nil
}

// readFinal reads and checks the final topic, counting into progress.
func readFinal(ctx context.Context, kafka *kafkaeos.Conn, in Input, rep activities.Reporter, progress *finalProgress) (Result, error) {
	reader, err := kafkaeos.NewCommittedReader(ctx, kafka, in.Names.FinalTopic)
	if err != nil {
		return Result{}, fmt.Errorf("verify %s: %w", in.Names.FinalTopic, err)
	}
	reader.SetRoundBytes(finalRoundBytes)
	v := newVerifier(in.Names.RunID, in.Messages)
	idle := time.Duration(in.IdleTimeoutMillis) * time.Millisecond
	lastArrival := time.Now()
	for {
		n, err := reader.FetchRound(ctx, min(verifyMaxFetchWait, idle), false, v.observe)
		if err != nil {
			return Result{}, fmt.Errorf("verify %s after %d records: %w", in.Names.FinalTopic, v.records, err)
		}
		progress.records.Store(v.records)
		progress.unique.Store(v.unique)
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
	return v.result(), nil
}
