// Package verify proves (or disproves) that every message of a run reached
// the final topic exactly once and intact.
package verify

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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

// Bounds of a verification report.
const (
	verifyViewCount    = 10
	maxProblemLines    = 20
	maxFirstMissing    = 20
	maxVerifyMessages  = 100_000_000
	verifyMaxFetchWait = 500 * time.Millisecond
)

// finalValue is the JSON value of a final record. Seq and BatchNumber are
// set to absentNumber before decoding, so a missing field can be told from
// a zero.
type finalValue struct {
	RunID         string `json:"run_id"`
	Seq           int64  `json:"seq"`
	LogicalQueue  string `json:"logical_queue"`
	ProducedAt    string `json:"produced_at"`
	CorrelationID string `json:"correlation_id"`
	SendingID     string `json:"sending_id"`
	BatchNumber   int64  `json:"batch_number"`
}

const absentNumber = math.MinInt64

// correlationID is the contract's correlation id of seq: lower-case hex of
// MD5(run_id ":" seq).
func correlationID(runID string, seq int64) string {
	sum := correlationSum(make([]byte, 0, len(runID)+21), runID, seq)
	return hex.EncodeToString(sum[:])
}

// correlationSum is MD5(run_id ":" seq), using buf as scratch space.
func correlationSum(buf []byte, runID string, seq int64) [md5.Size]byte {
	buf = append(buf[:0], runID...)
	buf = append(buf, ':')
	buf = strconv.AppendInt(buf, seq, 10)
	return md5.Sum(buf)
}

// verifier checks final records one by one against the message contract and
// keeps what the report needs: a bit per expected seq, the latencies, and
// the correlation ids (to count duplicates of them). For a million messages
// that is about 125 KiB of bits, 8 MB of latencies and 16 MB of ids.
type verifier struct {
	runID    string
	expected int64

	seen       []uint64
	records    int64
	unique     int64
	duplicates int64
	bad        int64

	latencyMicros  []int64
	correlationIDs [][md5.Size]byte

	problems     []string
	problemCount int64
	// createTimeRecords counts records stamped by their writer rather than
	// by the broker; their latency is not arrival time.
	createTimeRecords int64

	first []viewCandidate // the smallest seqs seen, ascending
	last  []viewCandidate // the largest seqs seen, ascending

	value   finalValue
	hashBuf []byte
}

func newVerifier(runID string, expected int64) *verifier {
	// Preallocate for the messages expected, but not beyond what a sane
	// run holds, so a wrong Messages does not reserve gigabytes.
	capacity := min(expected, 4<<20)
	return &verifier{
		runID:          runID,
		expected:       expected,
		seen:           make([]uint64, (expected+63)/64),
		latencyMicros:  make([]int64, 0, capacity),
		correlationIDs: make([][md5.Size]byte, 0, capacity),
		hashBuf:        make([]byte, 0, len(runID)+21),
	}
}

func (v *verifier) addProblem(format string, args ...any) {
	v.problemCount++
	if len(v.problems) < maxProblemLines {
		v.problems = append(v.problems, fmt.Sprintf(format, args...))
	}
}

// observe checks one record of the final topic.
func (v *verifier) observe(rec *kgo.Record) {
	v.records++
	// where is built only for a problem; most records have none.
	where := func() string { return fmt.Sprintf("partition %d offset %d", rec.Partition, rec.Offset) }

	v.value = finalValue{Seq: absentNumber, BatchNumber: absentNumber}
	if err := json.Unmarshal(rec.Value, &v.value); err != nil {
		v.bad++
		v.addProblem("%s: value is not the contract's JSON: %v", where(), err)
		return
	}
	val := &v.value
	switch {
	case val.Seq == absentNumber:
		v.bad++
		v.addProblem("%s: value has no seq", where())
		return
	case val.Seq < 0 || val.Seq >= v.expected:
		v.bad++
		v.addProblem("%s: seq %d is outside 0..%d", where(), val.Seq, v.expected-1)
		return
	case val.RunID != v.runID:
		v.bad++
		v.addProblem("%s: seq %d belongs to run %q, not %q", where(), val.Seq, val.RunID, v.runID)
		return
	}

	var faults []string
	fault := func(format string, args ...any) { faults = append(faults, fmt.Sprintf(format, args...)) }
	for _, f := range []struct{ name, value string }{
		{"logical_queue", val.LogicalQueue},
		{"produced_at", val.ProducedAt},
		{"correlation_id", val.CorrelationID},
		{"sending_id", val.SendingID},
	} {
		if f.value == "" {
			fault("field %s missing", f.name)
		}
	}
	batchNumber := ""
	if val.BatchNumber == absentNumber {
		fault("field batch_number missing")
	} else {
		batchNumber = strconv.FormatInt(val.BatchNumber, 10)
	}
	if string(rec.Key) != val.LogicalQueue {
		fault("key %q is not the logical queue %q", rec.Key, val.LogicalQueue)
	}
	for _, h := range []struct{ header, field, want string }{
		{activities.HeaderCorrelationID, "correlation_id", val.CorrelationID},
		{activities.HeaderSendingID, "sending_id", val.SendingID},
		{activities.HeaderLogicalQueue, "logical_queue", val.LogicalQueue},
		{activities.HeaderBatchNumber, "batch_number", batchNumber},
	} {
		got, ok := recordHeader(rec, h.header)
		switch {
		case !ok:
			fault("header %s missing", h.header)
		case string(got) != h.want:
			fault("header %s is %q but %s is %q", h.header, got, h.field, h.want)
		}
	}
	wantID := correlationSum(v.hashBuf, v.runID, val.Seq)
	var gotID [md5.Size]byte
	if len(val.CorrelationID) == 2*md5.Size && isLowerHex(val.CorrelationID) {
		// Cannot fail: the length and alphabet were just checked.
		_, _ = hex.Decode(gotID[:], []byte(val.CorrelationID))
		v.correlationIDs = append(v.correlationIDs, gotID)
	}
	if gotID != wantID {
		fault("correlation_id %q, want %s", val.CorrelationID, hex.EncodeToString(wantID[:]))
	}
	producedAt, err := time.Parse(time.RFC3339Nano, val.ProducedAt)
	if err != nil && val.ProducedAt != "" {
		fault("produced_at %q is not RFC 3339", val.ProducedAt)
	}
	if err == nil {
		v.latencyMicros = append(v.latencyMicros, rec.Timestamp.Sub(producedAt).Microseconds())
		if rec.Attrs.TimestampType() != 1 {
			v.createTimeRecords++
		}
	}
	if len(faults) > 0 {
		v.bad++
		v.addProblem("%s seq %d: %s", where(), val.Seq, strings.Join(faults, "; "))
	}

	word, bit := val.Seq/64, uint64(1)<<(val.Seq%64)
	if v.seen[word]&bit != 0 {
		v.duplicates++
		v.addProblem("%s seq %d: duplicate, seq seen before", where(), val.Seq)
		return
	}
	v.seen[word] |= bit
	v.unique++
	v.keepView(rec, val)
}

// viewCandidate is a message that may end up in the report's first or last
// views; the MessageView is only built for the ones that stay.
type viewCandidate struct {
	rec *kgo.Record
	val finalValue
}

// keepView keeps rec among the first or last verifyViewCount messages by seq
// when it belongs there.
func (v *verifier) keepView(rec *kgo.Record, val *finalValue) {
	belongsFirst := len(v.first) < verifyViewCount || val.Seq < v.first[len(v.first)-1].val.Seq
	belongsLast := len(v.last) < verifyViewCount || val.Seq > v.last[0].val.Seq
	if !belongsFirst && !belongsLast {
		return
	}
	candidate := viewCandidate{rec: rec, val: *val}
	bySeq := func(c viewCandidate, seq int64) int { return int(c.val.Seq - seq) }
	if belongsFirst {
		i, _ := slices.BinarySearchFunc(v.first, val.Seq, bySeq)
		v.first = slices.Insert(v.first, i, candidate)
		if len(v.first) > verifyViewCount {
			v.first = v.first[:verifyViewCount]
		}
	}
	if belongsLast {
		i, _ := slices.BinarySearchFunc(v.last, val.Seq, bySeq)
		v.last = slices.Insert(v.last, i, candidate)
		if len(v.last) > verifyViewCount {
			v.last = slices.Delete(v.last, 0, 1)
		}
	}
}

func messageViews(candidates []viewCandidate) []activities.MessageView {
	views := make([]activities.MessageView, len(candidates))
	for i, c := range candidates {
		views[i] = messageView(c.rec, &c.val)
	}
	return views
}

func messageView(rec *kgo.Record, val *finalValue) activities.MessageView {
	headers := make(map[string]string, len(rec.Headers))
	for _, h := range rec.Headers {
		headers[h.Key] = string(h.Value)
	}
	return activities.MessageView{
		Partition:     rec.Partition,
		Offset:        rec.Offset,
		Key:           string(rec.Key),
		Headers:       headers,
		Seq:           val.Seq,
		CorrelationID: val.CorrelationID,
		SendingID:     val.SendingID,
		BatchNumber:   val.BatchNumber,
		ProducedAt:    val.ProducedAt,
		ArrivedAt:     rec.Timestamp.UTC().Format(activities.ProducedAtLayout),
	}
}

func recordHeader(rec *kgo.Record, key string) ([]byte, bool) {
	for _, h := range rec.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// missingSeqs returns up to limit seqs never seen, ascending.
func (v *verifier) missingSeqs(limit int) []int64 {
	var missing []int64
	for word, bitsSeen := range v.seen {
		for unseen := ^bitsSeen; unseen != 0 && len(missing) < limit; unseen &= unseen - 1 {
			seq := int64(word)*64 + int64(bits.TrailingZeros64(unseen))
			if seq >= v.expected {
				return missing
			}
			missing = append(missing, seq)
		}
		if len(missing) == limit {
			break
		}
	}
	return missing
}

// duplicateCorrelationIDs counts ids that occurred before; it sorts the ids.
func (v *verifier) duplicateCorrelationIDs() int64 {
	slices.SortFunc(v.correlationIDs, func(a, b [md5.Size]byte) int { return strings.Compare(string(a[:]), string(b[:])) })
	var dups int64
	for i := 1; i < len(v.correlationIDs); i++ {
		if v.correlationIDs[i] == v.correlationIDs[i-1] {
			dups++
		}
	}
	return dups
}

// result assembles the report. It sorts the latencies and ids, so it is
// called once, at the end.
func (v *verifier) result() Result {
	res := Result{
		Expected:                v.expected,
		Records:                 v.records,
		Unique:                  v.unique,
		Missing:                 v.expected - v.unique,
		Duplicates:              v.duplicates,
		DuplicateCorrelationIDs: v.duplicateCorrelationIDs(),
		BadRecords:              v.bad,
		Latency:                 latencyPercentiles(v.latencyMicros),
		First:                   messageViews(v.first),
		Last:                    messageViews(v.last),
	}
	var summary []string
	if res.Missing > 0 {
		res.FirstMissing = v.missingSeqs(maxFirstMissing)
		summary = append(summary, fmt.Sprintf("%d of %d messages missing; first missing seqs: %v", res.Missing, v.expected, res.FirstMissing))
	}
	if res.Duplicates > 0 {
		summary = append(summary, fmt.Sprintf("%d records repeat a seq seen before", res.Duplicates))
	}
	if res.DuplicateCorrelationIDs > 0 {
		summary = append(summary, fmt.Sprintf("%d records repeat a correlation id seen before", res.DuplicateCorrelationIDs))
	}
	if res.BadRecords > 0 {
		summary = append(summary, fmt.Sprintf("%d records break the message contract", res.BadRecords))
	}
	if v.createTimeRecords > 0 {
		summary = append(summary, fmt.Sprintf("%d records carry their writer's timestamp (CreateTime), not the broker's; their latency is not arrival time — is the final topic LogAppendTime?", v.createTimeRecords))
	}
	res.Problems = append(summary, v.problems...)
	total := int64(len(summary)) + v.problemCount
	if total > maxProblemLines {
		res.Problems = append(res.Problems[:maxProblemLines-1], fmt.Sprintf("... and %d more problems", total-(maxProblemLines-1)))
	}
	return res
}

// latencyPercentiles sorts micros and returns its nearest-rank percentiles
// in milliseconds.
func latencyPercentiles(micros []int64) Percentiles {
	if len(micros) == 0 {
		return Percentiles{}
	}
	slices.Sort(micros)
	at := func(p float64) float64 {
		rank := int(math.Ceil(p * float64(len(micros))))
		return float64(micros[max(rank, 1)-1]) / 1000
	}
	return Percentiles{P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: float64(micros[len(micros)-1]) / 1000}
}

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
	case in.Messages < 1 || in.Messages > maxVerifyMessages:
		return errtype.InvalidInputf("messages is %d; want 1 to %d", in.Messages, maxVerifyMessages)
	case in.IdleTimeoutMillis < 1:
		return errtype.InvalidInputf("idle_timeout_ms is %d; want at least 1", in.IdleTimeoutMillis)
	}
	return nil
}

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
