package verify

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/internal/wirejson"
)

// Bounds of a verification report.
const (
	verifyViewCount = 10
	maxProblemLines = 20
	maxFirstMissing = 20
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
// keeps what the report needs: a bit per expected seq, the latencies (in a
// histogram of fixed size), the arrivals per second, and the correlation
// ids (to count duplicates of them). For a million messages that is about
// 125 KiB of bits and 16 MB of ids.
type verifier struct {
	runID    string
	expected int64

	seen       []uint64
	records    int64
	unique     int64
	duplicates int64
	bad        int64

	latency        *latencyRecorder
	perSecond      secondCounter
	correlationIDs [][md5.Size]byte
	// firstProduced and lastArrived bound the run's flow (Result.FlowMillis).
	firstProduced, lastArrived time.Time

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
		latency:        newLatencyRecorder(),
		perSecond:      secondCounter{},
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
	val, problem := v.decode(rec)
	if problem != "" {
		v.bad++
		v.addProblem("%s: %s", where(rec), problem)
		return
	}
	faults := contractFaults(rec, val)
	faults = v.checkCorrelationID(val, faults)
	faults = v.measureLatency(rec, val, faults)
	if len(faults) > 0 {
		v.bad++
		v.addProblem("%s seq %d: %s", where(rec), val.Seq, strings.Join(faults, "; "))
	}
	word, bit := val.Seq/64, uint64(1)<<(val.Seq%64)
	if v.seen[word]&bit != 0 {
		v.duplicates++
		v.addProblem("%s seq %d: duplicate, seq seen before", where(rec), val.Seq)
		return
	}
	v.seen[word] |= bit
	v.unique++
	v.keepView(rec, val)
}

// where names a record in a problem; it is built only for one.
func where(rec *kgo.Record) string {
	return fmt.Sprintf("partition %d offset %d", rec.Partition, rec.Offset)
}

// decode reads rec's value into v.value and checks that it is a message of
// this run; otherwise it says why not.
func (v *verifier) decode(rec *kgo.Record) (*finalValue, string) {
	if !readFinalValue(rec.Value, &v.value) {
		v.value = finalValue{Seq: absentNumber, BatchNumber: absentNumber}
		if err := json.Unmarshal(rec.Value, &v.value); err != nil {
			return nil, fmt.Sprintf("value is not the contract's JSON: %v", err)
		}
	}
	val := &v.value
	switch {
	case val.Seq == absentNumber:
		return nil, "value has no seq"
	case val.Seq < 0 || val.Seq >= v.expected:
		return nil, fmt.Sprintf("seq %d is outside 0..%d", val.Seq, v.expected-1)
	case val.RunID != v.runID:
		return nil, fmt.Sprintf("seq %d belongs to run %q, not %q", val.Seq, val.RunID, v.runID)
	}
	return val, ""
}

// readFinalValue reads a final value of the usual shape into v, as
// encoding/json would, at a fifth of its cost; false leaves it to
// encoding/json (see wirejson). v's strings share one copy of value.
func readFinalValue(value []byte, v *finalValue) bool {
	*v = finalValue{Seq: absentNumber, BatchNumber: absentNumber}
	text := string(value)
	str := func(r *wirejson.Reader, field *string) bool {
		start, end, ok := r.PlainString()
		*field = text[start:end]
		return ok
	}
	r := wirejson.NewReader(value)
	ok := r.Object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "run_id":
			ok = str(r, &v.RunID)
		case "seq":
			v.Seq, ok = r.Integer()
		case "logical_queue":
			ok = str(r, &v.LogicalQueue)
		case "produced_at":
			ok = str(r, &v.ProducedAt)
		case "correlation_id":
			ok = str(r, &v.CorrelationID)
		case "sending_id":
			ok = str(r, &v.SendingID)
		case "batch_number":
			v.BatchNumber, ok = r.Integer()
		default:
			ok = r.UnknownKey(key, "run_id", "seq", "logical_queue", "produced_at", "correlation_id", "sending_id", "batch_number")
		}
		return ok
	})
	return ok && r.AtEnd()
}

// contractFaults lists the fields, key and headers of rec that break the
// message contract.
func contractFaults(rec *kgo.Record, val *finalValue) []string {
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
	return faults
}

// checkCorrelationID keeps a well-formed correlation id for the duplicate
// count and adds a fault when it is not the one derived from the seq.
func (v *verifier) checkCorrelationID(val *finalValue, faults []string) []string {
	wantID := correlationSum(v.hashBuf, v.runID, val.Seq)
	var gotID [md5.Size]byte
	if len(val.CorrelationID) == 2*md5.Size && isLowerHex(val.CorrelationID) {
		// Cannot fail: the length and alphabet were just checked.
		_, _ = hex.Decode(gotID[:], []byte(val.CorrelationID))
		v.correlationIDs = append(v.correlationIDs, gotID)
	}
	if gotID != wantID {
		faults = append(faults, fmt.Sprintf("correlation_id %q, want %s", val.CorrelationID, hex.EncodeToString(wantID[:])))
	}
	return faults
}

// measureLatency keeps the time from produced_at to the record's arrival,
// and adds a fault when produced_at is not RFC 3339.
func (v *verifier) measureLatency(rec *kgo.Record, val *finalValue, faults []string) []string {
	producedAt, err := time.Parse(time.RFC3339Nano, val.ProducedAt)
	if err != nil {
		if val.ProducedAt != "" {
			faults = append(faults, fmt.Sprintf("produced_at %q is not RFC 3339", val.ProducedAt))
		}
		return faults
	}
	v.latency.record(rec.Timestamp.Sub(producedAt).Microseconds())
	v.perSecond.add(rec.Timestamp, 1)
	if v.firstProduced.IsZero() || producedAt.Before(v.firstProduced) {
		v.firstProduced = producedAt
	}
	if rec.Timestamp.After(v.lastArrived) {
		v.lastArrived = rec.Timestamp
	}
	if rec.Attrs.TimestampType() != 1 {
		v.createTimeRecords++
	}
	return faults
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
func (v *verifier) missingSeqs(limit int) []int64 { return firstUnset(v.seen, v.expected, limit) }

// duplicateCorrelationIDs counts ids that occurred before. It sorts the
// ids' first eight bytes as integers, which for a million ids takes about
// a tenth of a second, against 1.5 s for the whole ids compared as strings
// (BenchmarkDuplicateCorrelationIDs); only the ids whose first eight bytes
// another id shares, which a run without duplicates almost never has, are
// then compared whole.
func (v *verifier) duplicateCorrelationIDs() int64 {
	prefixes := make([]uint64, len(v.correlationIDs))
	for i, id := range v.correlationIDs {
		prefixes[i] = idPrefix(id)
	}
	slices.Sort(prefixes)
	shared := make(map[uint64]bool)
	for i := 1; i < len(prefixes); i++ {
		if prefixes[i] == prefixes[i-1] {
			shared[prefixes[i]] = true
		}
	}
	if len(shared) == 0 {
		return 0
	}
	var candidates [][md5.Size]byte
	for _, id := range v.correlationIDs {
		if shared[idPrefix(id)] {
			candidates = append(candidates, id)
		}
	}
	slices.SortFunc(candidates, func(a, b [md5.Size]byte) int { return bytes.Compare(a[:], b[:]) })
	var dups int64
	for i := 1; i < len(candidates); i++ {
		if candidates[i] == candidates[i-1] {
			dups++
		}
	}
	return dups
}

func idPrefix(id [md5.Size]byte) uint64 { return binary.BigEndian.Uint64(id[:8]) }

// result assembles the report. It sorts the ids, so it is called once, at
// the end.
func (v *verifier) result() Result {
	res := Result{
		Expected:                v.expected,
		Records:                 v.records,
		Unique:                  v.unique,
		Missing:                 v.expected - v.unique,
		Duplicates:              v.duplicates,
		DuplicateCorrelationIDs: v.duplicateCorrelationIDs(),
		BadRecords:              v.bad,
		Latency:                 v.latency.percentiles(),
		verifiedPerSecond:       v.perSecond,
		FlowMillis:              v.lastArrived.Sub(v.firstProduced).Milliseconds(),
		First:                   messageViews(v.first),
		Last:                    messageViews(v.last),
	}
	histogram := v.latency.histogram()
	res.LatencyHistogram = &histogram
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
	res.Problems = slices.Concat(summary, v.problems)
	total := int64(len(summary)) + v.problemCount
	if total > maxProblemLines {
		res.problemsLeftOut = total - (maxProblemLines - 1)
		res.Problems = append(res.Problems[:maxProblemLines-1], fmt.Sprintf("... and %d more problems", res.problemsLeftOut))
	}
	return res
}
