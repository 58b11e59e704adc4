package verify

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities"
)

func TestCorrelationIDIsMD5OfRunAndSeq(t *testing.T) {
	// From coreutils: printf 'nightly-2026-11-27:41' | md5sum
	if got, want := correlationID("nightly-2026-11-27", 41), "e394f7a7fe80413e5dee6b1d44eb36ba"; got != want {
		t.Errorf("correlationID = %s, want %s", got, want)
	}
	if got := correlationID("r", 0); got != md5Hex("r:0") {
		t.Errorf("correlationID(r, 0) = %s, want %s", got, md5Hex("r:0"))
	}
}

// finalRecord builds a final-topic record that follows the contract, as the
// split job writes it, with LogAppendTime latencyMillis after produced_at.
func finalRecord(runID string, seq int64, latencyMillis int64) *kgo.Record {
	producedAt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(seq) * time.Millisecond)
	queue := fmt.Sprintf("q-%04d", seq%100)
	value := finalValue{
		RunID:         runID,
		Seq:           seq,
		LogicalQueue:  queue,
		ProducedAt:    producedAt.Format(activities.ProducedAtLayout),
		CorrelationID: correlationID(runID, seq),
		SendingID:     "s-" + strconv.FormatInt(seq, 10),
		BatchNumber:   seq / 10,
	}
	encoded, err := json.Marshal(value)
	if err != nil {
		panic(err)
	}
	return &kgo.Record{
		Key:   []byte(queue),
		Value: encoded,
		Headers: []kgo.RecordHeader{
			{Key: activities.HeaderCorrelationID, Value: []byte(value.CorrelationID)},
			{Key: activities.HeaderSendingID, Value: []byte(value.SendingID)},
			{Key: activities.HeaderLogicalQueue, Value: []byte(queue)},
			{Key: activities.HeaderBatchNumber, Value: []byte(strconv.FormatInt(value.BatchNumber, 10))},
		},
		Timestamp: producedAt.Add(time.Duration(latencyMillis) * time.Millisecond),
		Attrs:     kgo.NewRecordAttrs(kgo.RecordAttrsOpts{TimestampType: 1}),
		Partition: int32(seq % 7),
		Offset:    seq,
	}
}

func TestVerifierPassesACompleteRun(t *testing.T) {
	v := newVerifier("run", 100)
	for seq := range int64(100) {
		v.observe(finalRecord("run", seq, seq+1))
	}
	res := v.result()
	if !res.Passed() {
		t.Fatalf("complete run did not pass: %+v", res)
	}
	if res.Records != 100 || res.Unique != 100 || res.Missing != 0 || res.Duplicates != 0 || res.BadRecords != 0 || res.DuplicateCorrelationIDs != 0 {
		t.Errorf("counts: %+v", res)
	}
	if len(res.Problems) != 0 {
		t.Errorf("problems: %q", res.Problems)
	}
	// Latencies are 1..100 ms: 50, 95, 99, 100 (p99.9 of 100 values is the
	// largest), within the histogram's precision.
	if want := (Percentiles{P50: 50, P95: 95, P99: 99, P999: 100, Max: 100}); !nearPercentiles(res.Latency, want) {
		t.Errorf("latency %+v, want %+v", res.Latency, want)
	}
	// seq 0 was produced first; seq 99, produced 99 ms later, arrived
	// last, 100 ms after that.
	if res.FlowMillis != 199 {
		t.Errorf("flow %d ms, want 199", res.FlowMillis)
	}
	if got := viewSeqs(res.First); !slices.Equal(got, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Errorf("first seqs %v", got)
	}
	if got := viewSeqs(res.Last); !slices.Equal(got, []int64{90, 91, 92, 93, 94, 95, 96, 97, 98, 99}) {
		t.Errorf("last seqs %v", got)
	}
	first := res.First[0]
	if first.Headers[activities.HeaderCorrelationID] != correlationID("run", 0) || first.Key != "q-0000" || first.BatchNumber != 0 || first.SendingID != "s-0" {
		t.Errorf("first view %+v", first)
	}
}

func TestVerifierViewsIgnoreArrivalOrder(t *testing.T) {
	v := newVerifier("run", 50)
	order := []int64{}
	for seq := int64(49); seq >= 0; seq -= 2 {
		order = append(order, seq)
	}
	for seq := int64(0); seq < 50; seq += 2 {
		order = append(order, seq)
	}
	for _, seq := range order {
		v.observe(finalRecord("run", seq, 5))
	}
	res := v.result()
	if got := viewSeqs(res.First); !slices.Equal(got, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Errorf("first seqs %v", got)
	}
	if got := viewSeqs(res.Last); !slices.Equal(got, []int64{40, 41, 42, 43, 44, 45, 46, 47, 48, 49}) {
		t.Errorf("last seqs %v", got)
	}
}

func viewSeqs(views []activities.MessageView) []int64 {
	var seqs []int64
	for _, v := range views {
		seqs = append(seqs, v.Seq)
	}
	return seqs
}

func TestVerifierCountsDuplicatesAndMissing(t *testing.T) {
	v := newVerifier("run", 10)
	for seq := range int64(10) {
		if seq == 4 || seq == 7 {
			continue // missing
		}
		v.observe(finalRecord("run", seq, 3))
	}
	v.observe(finalRecord("run", 2, 9)) // duplicate
	res := v.result()
	if res.Passed() {
		t.Fatal("run with missing and duplicate messages passed")
	}
	if res.Records != 9 || res.Unique != 8 || res.Missing != 2 || res.Duplicates != 1 || res.DuplicateCorrelationIDs != 1 || res.BadRecords != 0 {
		t.Errorf("counts: records %d unique %d missing %d duplicates %d dup ids %d bad %d",
			res.Records, res.Unique, res.Missing, res.Duplicates, res.DuplicateCorrelationIDs, res.BadRecords)
	}
	if !slices.Equal(res.FirstMissing, []int64{4, 7}) {
		t.Errorf("first missing %v, want [4 7]", res.FirstMissing)
	}
	joined := strings.Join(res.Problems, "\n")
	for _, want := range []string{"2 of 10 messages missing", "seq 2: duplicate"} {
		if !strings.Contains(joined, want) {
			t.Errorf("problems lack %q:\n%s", want, joined)
		}
	}
}

func TestVerifierFlagsContractBreaks(t *testing.T) {
	cases := map[string]struct {
		mutate  func(*kgo.Record)
		problem string
	}{
		"not json": {func(r *kgo.Record) { r.Value = []byte("{nope") }, "not the contract's JSON"},
		"header missing": {func(r *kgo.Record) {
			r.Headers = slices.DeleteFunc(r.Headers, func(h kgo.RecordHeader) bool { return h.Key == activities.HeaderSendingID })
		}, "header sending.id missing"},
		"header differs": {func(r *kgo.Record) { setHeader(r, activities.HeaderBatchNumber, "999") }, `header batch.number is "999" but batch_number is`},
		"wrong correlation id": {func(r *kgo.Record) {
			rewriteValue(r, func(v *finalValue) { v.CorrelationID = correlationID("run", 99) })
			setHeader(r, activities.HeaderCorrelationID, correlationID("run", 99))
		}, "correlation_id"},
		"upper-case correlation id": {func(r *kgo.Record) {
			upper := strings.ToUpper(correlationID("run", 3))
			rewriteValue(r, func(v *finalValue) { v.CorrelationID = upper })
			setHeader(r, activities.HeaderCorrelationID, upper)
		}, "correlation_id"},
		"seq out of range": {func(r *kgo.Record) { rewriteValue(r, func(v *finalValue) { v.Seq = 10 }) }, "outside 0..9"},
		"other run":        {func(r *kgo.Record) { rewriteValue(r, func(v *finalValue) { v.RunID = "other" }) }, `belongs to run "other"`},
		"key differs":      {func(r *kgo.Record) { r.Key = []byte("q-0077") }, "key"},
		"bad produced_at": {func(r *kgo.Record) {
			rewriteValue(r, func(v *finalValue) { v.ProducedAt = "yesterday" })
		}, "produced_at"},
		"batch_number absent": {func(r *kgo.Record) {
			var m map[string]any
			_ = json.Unmarshal(r.Value, &m)
			delete(m, "batch_number")
			r.Value, _ = json.Marshal(m)
		}, "field batch_number missing"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			v := newVerifier("run", 10)
			for seq := range int64(10) {
				rec := finalRecord("run", seq, 2)
				if seq == 3 {
					c.mutate(rec)
				}
				v.observe(rec)
			}
			res := v.result()
			if res.Passed() || res.BadRecords != 1 {
				t.Fatalf("bad records %d, passed %v; want exactly one bad record", res.BadRecords, res.Passed())
			}
			if joined := strings.Join(res.Problems, "\n"); !strings.Contains(joined, c.problem) {
				t.Errorf("problems lack %q:\n%s", c.problem, joined)
			}
		})
	}
}

func TestVerifierCountsDuplicateCorrelationIDsOfDifferentSeqs(t *testing.T) {
	v := newVerifier("run", 3)
	v.observe(finalRecord("run", 0, 1))
	v.observe(finalRecord("run", 1, 1))
	forged := finalRecord("run", 2, 1)
	rewriteValue(forged, func(fv *finalValue) { fv.CorrelationID = correlationID("run", 0) })
	setHeader(forged, activities.HeaderCorrelationID, correlationID("run", 0))
	v.observe(forged)
	res := v.result()
	if res.DuplicateCorrelationIDs != 1 || res.Duplicates != 0 || res.BadRecords != 1 {
		t.Errorf("dup ids %d, duplicates %d, bad %d; want 1, 0, 1", res.DuplicateCorrelationIDs, res.Duplicates, res.BadRecords)
	}
}

// Ids that share their first eight bytes are compared whole: only equal
// ones count, however many share the prefix.
func TestDuplicateCorrelationIDsTellIDsOfASharedPrefixApart(t *testing.T) {
	id := func(prefix, rest byte) [md5.Size]byte {
		var b [md5.Size]byte
		b[0], b[md5.Size-1] = prefix, rest
		return b
	}
	cases := []struct {
		name string
		ids  [][md5.Size]byte
		want int64
	}{
		{"distinct prefixes", [][md5.Size]byte{id(1, 0), id(2, 0), id(3, 0)}, 0},
		{"a shared prefix, different ids", [][md5.Size]byte{id(1, 1), id(2, 0), id(1, 2), id(1, 3)}, 0},
		{"an id twice among others of its prefix", [][md5.Size]byte{id(1, 1), id(1, 2), id(2, 0), id(1, 1)}, 1},
		{"an id three times, another twice", [][md5.Size]byte{id(4, 4), id(3, 0), id(4, 4), id(3, 0), id(4, 4)}, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newVerifier("run", 1)
			v.correlationIDs = c.ids
			if got := v.duplicateCorrelationIDs(); got != c.want {
				t.Errorf("duplicateCorrelationIDs() = %d, want %d", got, c.want)
			}
		})
	}
}

func TestVerifierNotesCreateTimeRecords(t *testing.T) {
	v := newVerifier("run", 1)
	rec := finalRecord("run", 0, 1)
	rec.Attrs = kgo.NewRecordAttrs(kgo.RecordAttrsOpts{TimestampType: 0})
	v.observe(rec)
	res := v.result()
	if !res.Passed() {
		t.Errorf("a CreateTime record is not a contract break: %+v", res)
	}
	if len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "CreateTime") {
		t.Errorf("problems %q, want one about CreateTime", res.Problems)
	}
}

func TestVerifierCapsProblemLines(t *testing.T) {
	v := newVerifier("run", 100)
	for seq := range int64(100) {
		rec := finalRecord("run", seq, 1)
		rec.Value = []byte("garbage")
		v.observe(rec)
	}
	res := v.result()
	if len(res.Problems) != maxProblemLines {
		t.Fatalf("%d problem lines, want %d", len(res.Problems), maxProblemLines)
	}
	// 2 summary lines (missing, bad) + 100 record lines, 19 shown.
	if last := res.Problems[maxProblemLines-1]; last != "... and 83 more problems" {
		t.Errorf("last line %q", last)
	}
	if res.BadRecords != 100 || res.Missing != 100 || len(res.FirstMissing) != maxFirstMissing {
		t.Errorf("bad %d missing %d first missing %v", res.BadRecords, res.Missing, res.FirstMissing)
	}
}

func TestMissingSeqsAcrossWords(t *testing.T) {
	v := newVerifier("run", 130)
	for seq := range int64(130) {
		if seq != 0 && seq != 63 && seq != 64 && seq != 129 {
			v.observe(finalRecord("run", seq, 1))
		}
	}
	if got := v.missingSeqs(10); !slices.Equal(got, []int64{0, 63, 64, 129}) {
		t.Errorf("missing %v", got)
	}
	if got := v.missingSeqs(2); !slices.Equal(got, []int64{0, 63}) {
		t.Errorf("missing, limit 2: %v", got)
	}
}

// recordedPercentiles records micros and returns their percentiles.
func recordedPercentiles(micros []int64) Percentiles {
	r := newLatencyRecorder()
	for _, m := range micros {
		r.record(m)
	}
	return r.percentiles()
}

// nearPercentiles says whether got is want within the histogram's 0.1 %,
// with the max exact.
func nearPercentiles(got, want Percentiles) bool {
	near := func(a, b float64) bool { return math.Abs(a-b) <= b*0.001 }
	return near(got.P50, want.P50) && near(got.P95, want.P95) && near(got.P99, want.P99) && near(got.P999, want.P999) && got.Max == want.Max
}

func TestLatencyPercentiles(t *testing.T) {
	if got := recordedPercentiles(nil); got != (Percentiles{}) {
		t.Errorf("empty: %+v", got)
	}
	if got := recordedPercentiles([]int64{7500}); got != (Percentiles{P50: 7.5, P95: 7.5, P99: 7.5, P999: 7.5, Max: 7.5}) {
		t.Errorf("single: %+v", got)
	}
	// 1000 values 1..1000 ms, shuffled.
	micros := make([]int64, 1000)
	for i := range micros {
		micros[i] = int64((i*7919)%1000+1) * 1000
	}
	if got, want := recordedPercentiles(micros), (Percentiles{P50: 500, P95: 950, P99: 990, P999: 999, Max: 1000}); !nearPercentiles(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// Out of range: negative (clocks apart) and over an hour.
	if got := recordedPercentiles([]int64{-5, 2 * latencyHighestMicros}); got.P50 != 0 || got.Max != 2*latencyHighestMicros/1000 {
		t.Errorf("out of range: %+v", got)
	}
}

func TestLatencyHistogramIsBoundedAndMerges(t *testing.T) {
	r := newLatencyRecorder()
	// A million latencies from 10 µs to 100 s: the buckets stay at most 81.
	for i := range int64(1_000_000) {
		r.record(10 + i*100)
	}
	h := r.histogram()
	if h.Count != 1_000_000 || len(h.Buckets) == 0 || len(h.Buckets) > len(latencyBucketBounds) {
		t.Fatalf("count %d, %d buckets", h.Count, len(h.Buckets))
	}
	var sum int64
	for i, b := range h.Buckets {
		sum += b.Count
		if i > 0 && b.UpToMillis <= h.Buckets[i-1].UpToMillis {
			t.Errorf("bucket %d bound %v not ascending", i, b.UpToMillis)
		}
	}
	if sum != h.Count {
		t.Errorf("buckets sum to %d, want %d", sum, h.Count)
	}
	if h.HDR == "" || len(h.HDR) > maxEncodedHistogram {
		t.Fatalf("hdr encoding of %d bytes", len(h.HDR))
	}
	decoded, err := hdrhistogram.Decode([]byte(h.HDR))
	if err != nil || decoded.TotalCount() != h.Count {
		t.Fatalf("decoded hdr: %v, %d values", err, decoded.TotalCount())
	}
	merged := h.Merge(h)
	if merged.Count != 2*h.Count || len(merged.Buckets) != len(h.Buckets) || merged.Buckets[3].Count != 2*h.Buckets[3].Count {
		t.Errorf("merged %d values in %d buckets", merged.Count, len(merged.Buckets))
	}
}

func TestValidateVerifyNamesTheField(t *testing.T) {
	valid := Input{Names: activities.RunNames{RunID: "r", FinalTopic: "final"}, Messages: 10, IdleTimeoutMillis: 1000}
	if err := validateVerify(valid); err != nil {
		t.Fatalf("valid input rejected: %v", err)
	}
	for field, mutate := range map[string]func(*Input){
		"names.final_topic": func(in *Input) { in.Names.FinalTopic = "" },
		"names.run_id":      func(in *Input) { in.Names.RunID = "" },
		"messages":          func(in *Input) { in.Messages = 0 },
		"idle_timeout_ms":   func(in *Input) { in.IdleTimeoutMillis = 0 },
	} {
		in := valid
		mutate(&in)
		err := validateVerify(in)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || !appErr.NonRetryable() || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: got %v", field, err)
		}
	}
}

func setHeader(r *kgo.Record, key, value string) {
	for i := range r.Headers {
		if r.Headers[i].Key == key {
			r.Headers[i].Value = []byte(value)
			return
		}
	}
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

func rewriteValue(r *kgo.Record, edit func(*finalValue)) {
	var v finalValue
	if err := json.Unmarshal(r.Value, &v); err != nil {
		panic(fmt.Sprintf("rewriteValue: %v", err))
	}
	edit(&v)
	r.Value, _ = json.Marshal(v)
}

func BenchmarkVerifierObserve(b *testing.B) {
	records := benchFinalRecords()
	n := len(records)
	b.ReportAllocs()
	v := newVerifier(benchRunID, int64(n))
	for i := 0; b.Loop(); i++ {
		if i%n == 0 {
			v = newVerifier(benchRunID, int64(n))
		}
		v.observe(records[i%n])
	}
}

// BenchmarkDuplicateCorrelationIDs counts the duplicates among a million
// distinct ids, which Verify does once at the end of a run's verification.
func BenchmarkDuplicateCorrelationIDs(b *testing.B) {
	const ids = 1_000_000
	distinct := make([][md5.Size]byte, ids)
	for i := range distinct {
		distinct[i] = correlationSum(make([]byte, 0, 64), benchRunID, int64(i))
	}
	v := newVerifier(benchRunID, ids)
	v.correlationIDs = make([][md5.Size]byte, ids)
	for b.Loop() {
		copy(v.correlationIDs, distinct)
		if dups := v.duplicateCorrelationIDs(); dups != 0 {
			b.Fatalf("%d duplicates among distinct ids", dups)
		}
	}
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
