package deliver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/refsvcapi"
)

// discard is a logger for tests that run outside an activity.
var discard = log.NewStructuredLogger(slog.New(slog.DiscardHandler))

func msg(seq int64) deliveryMessage {
	return deliveryMessage{Seq: seq, LogicalQueue: fmt.Sprintf("q-%04d", seq%7), CorrelationID: fmt.Sprintf("cid-%d", seq), ProducedAt: "2026-11-27T02:00:01.123456Z"}
}

// record is one enriched record of a partition at an offset.
type record struct {
	partition int32
	offset    int64
}

// buildAll feeds records to a builder in the given order and returns every
// batch: those closed when full, then the flushed rest.
func buildAll(runID string, size int, records []record) []*deliveryBatch {
	b := newBatchBuilder(runID, size)
	var out []*deliveryBatch
	for _, r := range records {
		if full := b.add(r.partition, r.offset, msg(r.offset*10+int64(r.partition))); full != nil {
			out = append(out, full)
		}
	}
	return append(out, b.flush()...)
}

func TestBatchBuilderCutsEachPartitionIntoFullBatches(t *testing.T) {
	// Partition 0 has 7 records, partition 1 has 4, interleaved as a fetch
	// might return them; offsets skip where transaction markers sit.
	records := []record{
		{0, 0}, {0, 1}, {1, 5}, {0, 2}, {1, 6}, {0, 4}, {0, 5}, {1, 8}, {0, 6}, {0, 7}, {1, 9}, {0, 9},
	}
	batches := buildAll("r1", 3, records)
	type want struct {
		partition    int32
		first, last  int64
		n            int
		index        int
		expectedName string
	}
	wants := []want{
		{0, 0, 2, 3, 0, "r1-p0-o0-2"},
		// partition 1's batch fills at offset 8, before partition 0's
		// second batch fills at offset 6
		{1, 5, 8, 3, 1, "r1-p1-o5-8"},
		{0, 4, 6, 3, 2, "r1-p0-o4-6"},
		// flushed at the end, in partition order
		{0, 7, 9, 2, 3, "r1-p0-o7-9"},
		{1, 9, 9, 1, 4, "r1-p1-o9-9"},
	}
	if len(batches) != len(wants) {
		t.Fatalf("got %d batches, want %d", len(batches), len(wants))
	}
	for i, w := range wants {
		b := batches[i]
		if b.partition != w.partition || b.firstOffset != w.first || b.lastOffset != w.last || len(b.messages) != w.n || b.index != w.index || b.id != w.expectedName {
			t.Errorf("batch %d = p%d o%d-%d n=%d index=%d id=%s, want %+v", i, b.partition, b.firstOffset, b.lastOffset, len(b.messages), b.index, b.id, w)
		}
	}
	// Messages keep their partition's order.
	for _, b := range batches {
		for j := 1; j < len(b.messages); j++ {
			if b.messages[j].Seq <= b.messages[j-1].Seq {
				t.Errorf("batch %s out of order: %v", b.id, b.messages)
			}
		}
	}
}

func TestBatchIDsDoNotDependOnHowPartitionsInterleave(t *testing.T) {
	// The same records of two partitions, fetched in two different
	// interleavings (as a retried segment may see them), give the same full
	// batches per partition.
	first := []record{{0, 0}, {0, 1}, {0, 2}, {0, 3}, {1, 0}, {1, 1}, {1, 2}, {1, 3}}
	second := []record{{1, 0}, {0, 0}, {1, 1}, {0, 1}, {1, 2}, {0, 2}, {1, 3}, {0, 3}}
	ids := func(records []record) map[string][]int64 {
		out := map[string][]int64{}
		for _, b := range buildAll("run-x", 2, records) {
			for _, m := range b.messages {
				out[b.id] = append(out[b.id], m.Seq)
			}
		}
		return out
	}
	a, b := ids(first), ids(second)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("batches differ:\n%v\n%v", a, b)
	}
	if len(a) != 4 {
		t.Fatalf("want 4 batches, got %v", a)
	}
}

func TestBatchIDOfAGrownPartialBatchDiffers(t *testing.T) {
	// A segment that stopped early sent a partial batch; its retry saw more
	// records. The grown batch must not reuse the partial batch's id, which
	// the endpoint would refuse as a key reused with another body.
	short := buildAll("r", 100, []record{{3, 500}, {3, 501}})
	long := buildAll("r", 100, []record{{3, 500}, {3, 501}, {3, 502}})
	if short[0].id == long[0].id {
		t.Fatalf("partial batch and grown batch share id %s", short[0].id)
	}
	again := buildAll("r", 100, []record{{3, 500}, {3, 501}})
	if short[0].id != again[0].id {
		t.Fatalf("same records, different ids: %s vs %s", short[0].id, again[0].id)
	}
}

func TestBatchRequestBodyIsDeterministicAndCarriesTheContractFields(t *testing.T) {
	batch := buildAll("r1", 2, []record{{0, 0}, {0, 1}})[0]
	body1 := batchRequestBody("unit", batch)
	body2 := batchRequestBody("unit", batch)
	if string(body1) != string(body2) {
		t.Fatalf("two encodings differ:\n%s\n%s", body1, body2)
	}
	var decoded struct {
		BatchID  string           `json:"batch_id"`
		Messages []map[string]any `json:"messages"`
	}
	if err := json.Unmarshal(body1, &decoded); err != nil {
		t.Fatal(err)
	}
	if decoded.BatchID != "r1-p0-o0-1" || len(decoded.Messages) != 2 {
		t.Fatalf("decoded = %+v", decoded)
	}
	for _, field := range []string{"correlation_id", "seq", "logical_queue", "produced_at"} {
		if _, ok := decoded.Messages[0][field]; !ok {
			t.Errorf("message lacks %s: %v", field, decoded.Messages[0])
		}
	}
}

func TestResponseRecordEncoding(t *testing.T) {
	batch := buildAll("run-7", 2, []record{{4, 10}, {4, 11}})[0]
	answer := endpointapi.BatchResponse{BatchID: batch.id, BatchNumber: 17, Results: []endpointapi.BatchResult{
		{CorrelationID: batch.messages[0].CorrelationID, Seq: batch.messages[0].Seq, SendingID: "inst-17-0"},
		{CorrelationID: batch.messages[1].CorrelationID, Seq: batch.messages[1].Seq, SendingID: "inst-17-1"},
	}}
	rec, err := newResponseRecord("run-7", batch, answer)
	if err != nil {
		t.Fatal(err)
	}
	value := responseRecordValue(rec)
	want := `{"run_id":"run-7","batch_id":"run-7-p4-o10-11","batch_number":17,"messages":[` +
		`{"seq":104,"logical_queue":"q-0006","correlation_id":"cid-104","sending_id":"inst-17-0","produced_at":"2026-11-27T02:00:01.123456Z"},` +
		`{"seq":114,"logical_queue":"q-0002","correlation_id":"cid-114","sending_id":"inst-17-1","produced_at":"2026-11-27T02:00:01.123456Z"}]}`
	if string(value) != want {
		t.Fatalf("response record\n got %s\nwant %s", value, want)
	}
}

func TestResponseRecordRefusesAnAnswerAboutOtherMessages(t *testing.T) {
	batch := buildAll("r", 2, []record{{0, 0}, {0, 1}})[0]
	cases := map[string]endpointapi.BatchResponse{
		"other batch id": {BatchID: "r-p9-o0-1", BatchNumber: 1, Results: []endpointapi.BatchResult{
			{CorrelationID: "cid-0", Seq: 0, SendingID: "a"}, {CorrelationID: "cid-10", Seq: 10, SendingID: "b"}}},
		"one result short": {BatchID: batch.id, BatchNumber: 1, Results: []endpointapi.BatchResult{
			{CorrelationID: "cid-0", Seq: 0, SendingID: "a"}}},
		"results swapped": {BatchID: batch.id, BatchNumber: 1, Results: []endpointapi.BatchResult{
			{CorrelationID: "cid-10", Seq: 10, SendingID: "b"}, {CorrelationID: "cid-0", Seq: 0, SendingID: "a"}}},
		"no sending id": {BatchID: batch.id, BatchNumber: 1, Results: []endpointapi.BatchResult{
			{CorrelationID: "cid-0", Seq: 0}, {CorrelationID: "cid-10", Seq: 10, SendingID: "b"}}},
		"no batch number": {BatchID: batch.id, Results: []endpointapi.BatchResult{
			{CorrelationID: "cid-0", Seq: 0, SendingID: "a"}, {CorrelationID: "cid-10", Seq: 10, SendingID: "b"}}},
	}
	for name, answer := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := newResponseRecord("r", batch, answer); err == nil {
				t.Fatal("mismatching answer accepted")
			}
		})
	}
}

func enrichedRecord(value string, correlationHeader *string) *kgo.Record {
	r := &kgo.Record{Topic: "t", Partition: 2, Offset: 41, Value: []byte(value)}
	if correlationHeader != nil {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "correlation.id", Value: []byte(*correlationHeader)})
	}
	return r
}

func TestDecodeEnrichedCrossChecksHeaderAndFields(t *testing.T) {
	good := `{"run_id":"r1","seq":41,"logical_queue":"q-0041","produced_at":"2026-11-27T02:00:01.123456Z","payload":"xx","correlation_id":"abc"}`
	cid, other := "abc", "abd"
	m, err := newEnrichedDecoder("r1").decode(enrichedRecord(good, &cid))
	if err != nil {
		t.Fatalf("good record: %v", err)
	}
	if m.Seq != 41 || m.CorrelationID != "abc" || m.LogicalQueue != "q-0041" || m.ProducedAt != "2026-11-27T02:00:01.123456Z" {
		t.Fatalf("decoded %+v", m)
	}
	bad := map[string]struct {
		value  string
		header *string
		want   string
	}{
		"header differs":   {good, &other, "header correlation.id"},
		"header missing":   {good, nil, "is missing"},
		"other run":        {strings.Replace(good, `"r1"`, `"r2"`, 1), &cid, "run_id"},
		"seq missing":      {strings.Replace(good, `"seq":41,`, ``, 1), &cid, "seq"},
		"not json":         {"{", &cid, "not the contract's JSON"},
		"no correlation":   {strings.Replace(good, `"abc"`, `""`, 1), &cid, "correlation_id is empty"},
		"no produced_at":   {strings.Replace(good, `"2026-11-27T02:00:01.123456Z"`, `""`, 1), &cid, "produced_at"},
		"no logical_queue": {strings.Replace(good, `"q-0041"`, `""`, 1), &cid, "logical_queue"},
	}
	for name, c := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := newEnrichedDecoder("r1").decode(enrichedRecord(c.value, c.header))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "t[2]@41") {
				t.Fatalf("err = %v, want it to name %q and the record", err, c.want)
			}
		})
	}
}

func TestChallengeParamAndRejectionReason(t *testing.T) {
	challenge := `Bearer realm="flowproof", error="invalid_token", error_description="quota exhausted"`
	if got := challengeParam(challenge, "error"); got != "invalid_token" {
		t.Errorf("error = %q", got)
	}
	if got := challengeParam(challenge, "error_description"); got != "quota exhausted" {
		t.Errorf("error_description = %q", got)
	}
	if got := challengeParam(`Bearer error_description="say \"hi\"", error=x`, "error"); got != "x" {
		t.Errorf("unquoted error = %q", got)
	}
	if got := rejectionReason(challenge, nil); got != "quota exhausted" {
		t.Errorf("reason = %q", got)
	}
	body, _ := json.Marshal(refsvcapi.ErrorResponse{Error: "invalid_token", ErrorDescription: "token expired"})
	if got := rejectionReason("", body); got != "invalid_token: token expired" {
		t.Errorf("reason from body = %q", got)
	}
	if got := rejectionReason("", nil); got == "" {
		t.Error("empty reason")
	}
}

func TestBackoffHonoursRetryAfterWithACap(t *testing.T) {
	wait := func(status int, retryAfter string) time.Duration {
		resp := &http.Response{StatusCode: status, Header: http.Header{}}
		if retryAfter != "" {
			resp.Header.Set("Retry-After", retryAfter)
		}
		return cappedBackoff(time.Millisecond, time.Second, 0, resp)
	}
	if got := wait(http.StatusTooManyRequests, "3"); got != 3*time.Second {
		t.Errorf("Retry-After 3 waits %v, want 3s", got)
	}
	if got := wait(http.StatusServiceUnavailable, "0"); got != 0 {
		t.Errorf("Retry-After 0 waits %v, want 0", got)
	}
	if got := wait(http.StatusTooManyRequests, time.Now().Add(-5*time.Second).UTC().Format(http.TimeFormat)); got != 0 {
		t.Errorf("a Retry-After date in the past waits %v, want 0", got)
	}
	if got := wait(http.StatusTooManyRequests, time.Now().Add(20*time.Second).UTC().Format(http.TimeFormat)); got < 15*time.Second || got > 20*time.Second {
		t.Errorf("a Retry-After date 20s ahead waits %v", got)
	}
	if got := wait(http.StatusTooManyRequests, "7200"); got != maxRetryAfterWait {
		t.Errorf("a long Retry-After waits %v, want the cap %v", got, maxRetryAfterWait)
	}
	if got := wait(http.StatusTooManyRequests, "soon"); got < time.Millisecond || got > time.Second {
		t.Errorf("an unreadable Retry-After waits %v, outside [1ms, 1s]", got)
	}
	for attempt := range 40 {
		got := cappedBackoff(100*time.Millisecond, 5*time.Second, attempt, nil)
		if got < 100*time.Millisecond || got > 5*time.Second {
			t.Errorf("attempt %d waits %v, outside [100ms, 5s]", attempt, got)
		}
	}
}

func TestOffsetsFingerprint(t *testing.T) {
	a := offsetsFingerprint(map[int32]int64{0: 10, 1: 20, 2: 0})
	b := offsetsFingerprint(map[int32]int64{2: 0, 1: 20, 0: 10})
	c := offsetsFingerprint(map[int32]int64{0: 10, 1: 21, 2: 0})
	if a != b || a == c || offsetsFingerprint(nil) == a {
		t.Fatalf("fingerprints %s %s %s", a, b, c)
	}
}

// endpointFor returns an endpoint client against handler with short waits.
func endpointFor(t *testing.T, handler http.HandlerFunc) endpointClient {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	ec, err := newEndpointClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ec.retry.waitMin, ec.retry.waitMax = time.Millisecond, 5*time.Millisecond
	return ec
}

func acceptBatch(w http.ResponseWriter, r *http.Request) {
	var req endpointapi.BatchRequest
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp := endpointapi.BatchResponse{BatchID: req.BatchID, BatchNumber: 1}
	for i, m := range req.Messages {
		resp.Results = append(resp.Results, endpointapi.BatchResult{CorrelationID: m.CorrelationID, Seq: m.Seq, SendingID: fmt.Sprint("s-", i)})
	}
	_ = json.NewEncoder(w).Encode(resp)
}

func TestPostBatchCountsRetriesAndSendsHeaders(t *testing.T) {
	var calls atomic.Int32
	batch := buildAll("r", 2, []record{{1, 0}, {1, 1}})[0]
	ec := endpointFor(t, func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if got := r.Header.Get("Authorization"); got != "Bearer tok" {
			t.Errorf("Authorization = %q", got)
		}
		if got := r.Header.Get("Idempotency-Key"); got != batch.id {
			t.Errorf("Idempotency-Key = %q, want %q", got, batch.id)
		}
		switch n {
		case 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 3:
			w.WriteHeader(http.StatusBadGateway)
		default:
			acceptBatch(w, r)
		}
	})
	var retries atomic.Int64
	body := batchRequestBody("unit", batch)
	out, err := ec.poster(discard, &retries).postBatch(context.Background(), "tok", batch, body)
	if err != nil {
		t.Fatalf("postBatch: %v", err)
	}
	if out.rejectReason != "" || out.answer.BatchID != batch.id || len(out.answer.Results) != 2 {
		t.Fatalf("outcome %+v", out)
	}
	if retries.Load() != 3 || calls.Load() != 4 {
		t.Fatalf("retries = %d, calls = %d; want 3 and 4", retries.Load(), calls.Load())
	}
}

func TestPostBatch401IsARejectionWithTheChallengeReason(t *testing.T) {
	batch := buildAll("r", 1, []record{{0, 0}})[0]
	ec := endpointFor(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="flowproof", error="invalid_token", error_description="quota exhausted"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	var retries atomic.Int64
	body := batchRequestBody("unit", batch)
	out, err := ec.poster(discard, &retries).postBatch(context.Background(), "secret-token-value", batch, body)
	if err != nil {
		t.Fatalf("postBatch: %v", err)
	}
	if out.rejectReason != "quota exhausted" {
		t.Fatalf("reject reason = %q", out.rejectReason)
	}
	if retries.Load() != 0 {
		t.Fatalf("a 401 was retried %d times", retries.Load())
	}
}

func TestPostBatchGivesUpWithoutRevealingTheToken(t *testing.T) {
	batch := buildAll("r", 1, []record{{0, 0}})[0]
	ec := endpointFor(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(refsvcapi.ErrorResponse{Error: "injected_fault", ErrorDescription: "batch not accepted"})
	})
	ec.retry.retryMax = 2
	var retries atomic.Int64
	body := batchRequestBody("unit", batch)
	_, err := ec.poster(discard, &retries).postBatch(context.Background(), "secret-token-value", batch, body)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "batch not accepted") {
		t.Fatalf("err = %v, want the status and the endpoint's description", err)
	}
	if strings.Contains(err.Error(), "secret-token-value") {
		t.Fatalf("error reveals the token: %v", err)
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.NonRetryable() {
		t.Fatalf("exhausted retries must stay retryable for the activity: %v", err)
	}
	if retries.Load() != 2 {
		t.Fatalf("retries = %d, want 2", retries.Load())
	}
}

func TestPostBatchBadRequestIsNotRetried(t *testing.T) {
	var calls atomic.Int32
	batch := buildAll("r", 1, []record{{0, 0}})[0]
	ec := endpointFor(t, func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(refsvcapi.ErrorResponse{Error: "invalid_request", ErrorDescription: "Idempotency-Key was already used with a different request body"})
	})
	body := batchRequestBody("unit", batch)
	_, err := ec.poster(discard, new(atomic.Int64)).postBatch(context.Background(), "tok", batch, body)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.NonRetryable() {
		t.Fatalf("err = %v, want non-retryable", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("calls = %d", calls.Load())
	}
}

func TestValidateDeliverInputNamesEveryField(t *testing.T) {
	err := validateDeliverInput(SegmentInput{Segment: -1, Offsets: map[int32]int64{0: -5}})
	for _, field := range []string{"Names.RunID", "Names.EnrichedTopic", "Names.ResponsesTopic", "Names.DeliverGroup", "Segment", "MaxMessages", "BatchSize", "Offsets[0]", "Token"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error %v does not name %s", err, field)
		}
	}
}

func TestAnnotateKeepsRetryability(t *testing.T) {
	nonRetryable := temporal.NewNonRetryableApplicationError("record breaks the contract", errtype.ContractViolation, errors.New("cause"))
	err := annotate(nonRetryable, "segment 3")
	appErr, ok := err.(*temporal.ApplicationError) //nolint:errorlint // annotate must return it outermost
	if !ok || !appErr.NonRetryable() || appErr.Type() != errtype.ContractViolation || !strings.HasPrefix(appErr.Error(), "segment 3: record breaks") {
		t.Fatalf("annotate gave %T %v", err, err)
	}
	plain := annotate(context.DeadlineExceeded, "segment 3")
	if !errors.Is(plain, context.DeadlineExceeded) || plain.Error() != "segment 3: context deadline exceeded" {
		t.Fatalf("annotate(plain) = %v", plain)
	}
}
