package endpoint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/deploy/refsvc/tokens"
	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/refsvcapi"
)

var (
	testKey  = []byte("0123456789abcdef0123456789abcdef")
	otherKey = []byte("fedcba9876543210fedcba9876543210")
)

const testAdminToken = "admin-0123456789abcdef0123456789abcdef"

type harness struct {
	server *httptest.Server
	reg    *prometheus.Registry
	ep     *Endpoint

	mu   sync.Mutex
	now  time.Time
	rand []float64 // drawn in order, then 0.999 (no fault)
}

var harnessStart = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	return newHarnessAt(t, cfg, harnessStart)
}

// newHarnessAt starts an endpoint whose clock reads now, with a Redis of
// its own unless cfg names one.
func newHarnessAt(t *testing.T, cfg Config, now time.Time) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry(), now: now}
	if cfg.Redis == nil {
		cfg.Redis = redisClient(miniredis.RunT(t))
	}
	cfg.SigningKey = testKey
	if cfg.AdminToken == "" {
		cfg.AdminToken = testAdminToken
	}
	cfg.Now = h.clock
	cfg.Random = h.random
	handler, ep, err := NewHandler(cfg, h.reg, zap.NewNop())
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	h.ep = ep
	h.server = httptest.NewServer(handler)
	t.Cleanup(func() {
		h.server.Close()
		_ = ep.Close()
	})
	return h
}

// redisClient is a client of the in-process Redis of a unit test; the
// integration tests use the stack's real Redis.
func redisClient(mr *miniredis.Miniredis) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: mr.Addr()})
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	h.now = h.now.Add(d)
	h.mu.Unlock()
}

func (h *harness) random() float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.rand) == 0 {
		return 0.999
	}
	r := h.rand[0]
	h.rand = h.rand[1:]
	return r
}

// token signs a token for client "flowproof" issued now.
func (h *harness) token(t *testing.T, ttl time.Duration, quota int64) string {
	t.Helper()
	return h.tokenFor(t, "flowproof", testKey, ttl, quota)
}

func (h *harness) tokenFor(t *testing.T, subject string, key []byte, ttl time.Duration, quota int64) string {
	t.Helper()
	signed, _, err := tokens.Sign(key, subject, h.clock(), ttl, quota)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) batch(t *testing.T) endpointapi.BatchResponse {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status = %d, body %s", r.status, r.body)
	}
	var br endpointapi.BatchResponse
	if err := json.Unmarshal(r.body, &br); err != nil {
		t.Fatalf("decode batch response %s: %v", r.body, err)
	}
	return br
}

func (r reply) errorResponse(t *testing.T) refsvcapi.ErrorResponse {
	t.Helper()
	var er refsvcapi.ErrorResponse
	if err := json.Unmarshal(r.body, &er); err != nil {
		t.Fatalf("decode error response %s: %v", r.body, err)
	}
	return er
}

// do sends a request; headers come in name, value pairs.
func (h *harness) do(t *testing.T, method, path string, body []byte, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, h.server.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: raw}
}

func (h *harness) post(t *testing.T, token string, body []byte, headers ...string) reply {
	t.Helper()
	if token != "" {
		headers = append(headers, "Authorization", "Bearer "+token)
	}
	return h.do(t, http.MethodPost, endpointapi.BatchesPath, body, headers...)
}

// admin calls the fault API with the admin token.
func (h *harness) admin(t *testing.T, method, path string, body []byte) reply {
	t.Helper()
	return h.do(t, method, path, body, "Authorization", "Bearer "+testAdminToken)
}

func batchBody(t *testing.T, batchID string, n int) []byte {
	t.Helper()
	return runBatchBody(t, "", batchID, n)
}

// runBatchBody is a batch of n messages of run runID.
func runBatchBody(t *testing.T, runID, batchID string, n int) []byte {
	t.Helper()
	req := endpointapi.BatchRequest{BatchID: batchID, RunID: runID}
	for i := 0; i < n; i++ {
		req.Messages = append(req.Messages, endpointapi.Message{
			CorrelationID: fmt.Sprintf("%s-c%d", batchID, i),
			Seq:           int64(i),
			LogicalQueue:  "orders",
			Extra:         map[string]json.RawMessage{"payload": json.RawMessage(`{"amount":` + strconv.Itoa(i) + `}`)},
		})
	}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func (h *harness) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func TestAcceptsBatchesWithIncreasingNumbersAndUniqueSendingIDs(t *testing.T) {
	h := newHarness(t, Config{})
	token := h.token(t, time.Hour, 10_000)
	sendingIDs := map[string]bool{}
	var lastNumber int64
	for b := 0; b < 3; b++ {
		batchID := fmt.Sprintf("batch-%d", b)
		resp := h.post(t, token, batchBody(t, batchID, 50)).batch(t)
		if resp.BatchID != batchID || resp.BatchNumber <= lastNumber || len(resp.Results) != 50 {
			t.Fatalf("batch %d: id %q number %d (previous %d), %d results", b, resp.BatchID, resp.BatchNumber, lastNumber, len(resp.Results))
		}
		lastNumber = resp.BatchNumber
		for i, r := range resp.Results {
			if r.CorrelationID != fmt.Sprintf("%s-c%d", batchID, i) || r.Seq != int64(i) {
				t.Fatalf("result %d = %+v, out of request order", i, r)
			}
			if r.SendingID == "" || sendingIDs[r.SendingID] {
				t.Fatalf("sending id %q empty or repeated", r.SendingID)
			}
			sendingIDs[r.SendingID] = true
		}
	}
	if got := h.metric(t, "refsvc_endpoint_messages_accepted_total", nil); got != 150 {
		t.Fatalf("messages accepted = %v, want 150", got)
	}
}

func TestRejectsMissingForgedAndExpiredTokens(t *testing.T) {
	h := newHarness(t, Config{})
	valid := h.token(t, time.Minute, 100)
	forged := h.tokenFor(t, "flowproof", otherKey, time.Hour, 100)
	body := batchBody(t, "b", 1)
	cases := []struct {
		name, authorization, wantDescription, wantReason string
	}{
		{"missing", "", "missing bearer token", "missing_token"},
		{"basic scheme", "Basic Zmxvd3Byb29mOng=", "missing bearer token", "missing_token"},
		{"empty bearer", "Bearer ", "missing bearer token", "missing_token"},
		{"forged", "Bearer " + forged, "token signature is invalid", "bad_signature"},
		{"garbage", "Bearer abc.def", "token is malformed", "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.post(t, "", body, "Authorization", tc.authorization)
			if r.status != http.StatusUnauthorized {
				t.Fatalf("status = %d (%s), want 401", r.status, r.body)
			}
			challenge := r.header.Get("WWW-Authenticate")
			if !strings.HasPrefix(challenge, "Bearer ") || !strings.Contains(challenge, `error_description="`+tc.wantDescription+`"`) {
				t.Fatalf("WWW-Authenticate = %q, want a Bearer challenge with %q", challenge, tc.wantDescription)
			}
			if er := r.errorResponse(t); er.ErrorDescription != tc.wantDescription {
				t.Fatalf("body = %+v", er)
			}
			if got := h.metric(t, "refsvc_endpoint_rejections_total", map[string]string{"reason": tc.wantReason}); got < 1 {
				t.Fatalf("rejections{reason=%s} = %v", tc.wantReason, got)
			}
		})
	}

	// The same token is fine until it expires.
	if r := h.post(t, valid, body); r.status != http.StatusOK {
		t.Fatalf("valid token: %d %s", r.status, r.body)
	}
	h.advance(time.Minute + time.Second)
	r := h.post(t, valid, batchBody(t, "after-expiry", 1))
	if r.status != http.StatusUnauthorized ||
		r.header.Get("WWW-Authenticate") != `Bearer realm="flowproof", error="invalid_token", error_description="token expired"` {
		t.Fatalf("expired token: %d, WWW-Authenticate %q", r.status, r.header.Get("WWW-Authenticate"))
	}
}

func TestQuotaIsCountedPerTokenInMessages(t *testing.T) {
	h := newHarness(t, Config{})
	token := h.token(t, time.Hour, 250)
	for i := 0; i < 2; i++ {
		h.post(t, token, batchBody(t, fmt.Sprintf("full-%d", i), 100)).batch(t)
	}
	// 200 used: 100 more would exceed 250, so the whole batch is refused.
	r := h.post(t, token, batchBody(t, "over", 100))
	if r.status != http.StatusUnauthorized ||
		r.header.Get("WWW-Authenticate") != `Bearer realm="flowproof", error="invalid_token", error_description="quota exhausted"` {
		t.Fatalf("over quota: %d, WWW-Authenticate %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	// A refused batch uses nothing: exactly the remaining 50 still fit.
	h.post(t, token, batchBody(t, "rest", 50)).batch(t)
	if r := h.post(t, token, batchBody(t, "one-more", 1)); r.status != http.StatusUnauthorized {
		t.Fatalf("after quota reached: %d, want 401", r.status)
	}
	// Another token has its own quota.
	h.post(t, h.token(t, time.Hour, 250), batchBody(t, "other-token", 100)).batch(t)
	if got := h.metric(t, "refsvc_endpoint_rejections_total", map[string]string{"reason": "quota_exhausted"}); got != 2 {
		t.Fatalf("quota rejections = %v, want 2", got)
	}
}

func TestConcurrentBatchesCannotOverrunQuota(t *testing.T) {
	h := newHarness(t, Config{})
	token := h.token(t, time.Hour, 200)
	var wg sync.WaitGroup
	statuses := make([]int, 40)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = h.post(t, token, batchBody(t, fmt.Sprintf("c%d", i), 10)).status
		}()
	}
	wg.Wait()
	accepted := 0
	for _, s := range statuses {
		switch s {
		case http.StatusOK:
			accepted++
		case http.StatusUnauthorized:
		default:
			t.Fatalf("unexpected status %d", s)
		}
	}
	if accepted != 20 {
		t.Fatalf("accepted %d batches of 10 under a quota of 200, want exactly 20", accepted)
	}
}

func TestIdempotentRetryReturnsStoredResponseWithoutUsingQuota(t *testing.T) {
	h := newHarness(t, Config{})
	token := h.token(t, time.Hour, 100)
	body := batchBody(t, "retry-me", 100)
	first := h.post(t, token, body, endpointapi.IdempotencyKeyHeader, "retry-me")
	firstBatch := first.batch(t)
	// The quota is now fully used, yet the retry succeeds with the same answer.
	for i := 0; i < 3; i++ {
		again := h.post(t, token, body, endpointapi.IdempotencyKeyHeader, "retry-me")
		if again.status != http.StatusOK || !bytes.Equal(again.body, first.body) {
			t.Fatalf("retry %d: %d %s, want the stored response %s", i, again.status, again.body, first.body)
		}
		if again.header.Get(endpointapi.ReplayedHeader) != "true" {
			t.Fatalf("retry %d lacks %s", i, endpointapi.ReplayedHeader)
		}
	}
	// A retry with a fresh token (the old one may have expired meanwhile) is
	// still a replay.
	fresh := h.token(t, time.Hour, 100)
	if again := h.post(t, fresh, body, endpointapi.IdempotencyKeyHeader, "retry-me"); again.batch(t).BatchNumber != firstBatch.BatchNumber {
		t.Fatal("retry with a fresh token created a new batch")
	}
	if got := h.metric(t, "refsvc_endpoint_batches_accepted_total", nil); got != 1 {
		t.Fatalf("batches accepted = %v, want 1", got)
	}
	// ...and the fresh token's quota is untouched by the replay.
	h.post(t, fresh, batchBody(t, "fresh", 100)).batch(t)

	// The same key with another body is a client bug, not a retry.
	if r := h.post(t, fresh, batchBody(t, "retry-me", 3), endpointapi.IdempotencyKeyHeader, "retry-me"); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("reused key with another body: %d %s, want 422", r.status, r.body)
	}
	// Keys are scoped to the client.
	stranger := h.tokenFor(t, "other-client", testKey, time.Hour, 100)
	if r := h.post(t, stranger, body, endpointapi.IdempotencyKeyHeader, "retry-me").batch(t); r.BatchNumber == firstBatch.BatchNumber {
		t.Fatal("another client's batch was answered from this client's key")
	}
}

func TestRefusedBatchIsNotStoredForReplay(t *testing.T) {
	h := newHarness(t, Config{})
	body := batchBody(t, "k", 10)
	spent := h.token(t, time.Hour, 5)
	if r := h.post(t, spent, body, endpointapi.IdempotencyKeyHeader, "k"); r.status != http.StatusUnauthorized {
		t.Fatalf("over quota: %d, want 401", r.status)
	}
	r := h.post(t, h.token(t, time.Hour, 10), body, endpointapi.IdempotencyKeyHeader, "k")
	r.batch(t)
	if r.header.Get(endpointapi.ReplayedHeader) != "" {
		t.Fatal("a batch refused earlier was replayed instead of accepted")
	}
}

func TestConcurrentRetriesOfOneKeyCreateOneBatch(t *testing.T) {
	h := newHarness(t, Config{Faults: endpointapi.Faults{LatencyMillis: 20}})
	token := h.token(t, time.Hour, 1000)
	body := batchBody(t, "dup", 10)
	var wg sync.WaitGroup
	numbers := make([]int64, 16)
	for i := range numbers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			numbers[i] = h.post(t, token, body, endpointapi.IdempotencyKeyHeader, "dup").batch(t).BatchNumber
		}()
	}
	wg.Wait()
	for _, n := range numbers {
		if n != numbers[0] {
			t.Fatalf("batch numbers %v differ: a retry created a duplicate", numbers)
		}
	}
	if got := h.metric(t, "refsvc_endpoint_messages_accepted_total", nil); got != 10 {
		t.Fatalf("messages accepted = %v, want 10", got)
	}
}

func TestValidatesBody(t *testing.T) {
	h := newHarness(t, Config{MaxBatchMessages: 5, MaxBodyBytes: 4096})
	token := h.token(t, time.Hour, 1000)
	cases := []struct {
		name        string
		body        string
		contentType string
		key         string
		wantStatus  int
		wantMention string
	}{
		{"malformed JSON", `{"batch_id":"b","messages":[`, "", "", 400, "not a valid batch"},
		{"wrong type", `{"batch_id":"b","messages":[{"correlation_id":"c","seq":"one"}]}`, "", "", 400, "seq"},
		{"empty batch", `{"batch_id":"b","messages":[]}`, "", "", 400, "messages must not be empty"},
		{"no messages field", `{"batch_id":"b"}`, "", "", 400, "messages must not be empty"},
		{"missing batch id", `{"messages":[{"correlation_id":"c","seq":1}]}`, "", "", 400, "batch_id is required"},
		{"missing correlation id", `{"batch_id":"b","messages":[{"correlation_id":"c","seq":1},{"seq":2}]}`, "", "", 400, "messages[1].correlation_id is required"},
		{"negative seq", `{"batch_id":"b","messages":[{"correlation_id":"c","seq":-1}]}`, "", "", 400, "messages[0].seq must not be negative"},
		{"too many", string(batchBody(t, "b", 6)), "", "", 400, "at most 5"},
		{"too large", `{"batch_id":"` + strings.Repeat("x", 5000) + `"}`, "", "", 413, "exceeds 4096 bytes"},
		{"not JSON content", `{}`, "text/plain", "", 415, "application/json"},
		{"long idempotency key", string(batchBody(t, "b", 1)), "", strings.Repeat("k", 300), 400, "Idempotency-Key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			headers := []string{}
			if tc.contentType != "" {
				headers = append(headers, "Content-Type", tc.contentType)
			}
			if tc.key != "" {
				headers = append(headers, endpointapi.IdempotencyKeyHeader, tc.key)
			}
			r := h.post(t, token, []byte(tc.body), headers...)
			er := r.errorResponse(t)
			if r.status != tc.wantStatus || er.Error != "invalid_request" || !strings.Contains(er.ErrorDescription, tc.wantMention) {
				t.Fatalf("got %d %+v, want %d invalid_request mentioning %q", r.status, er, tc.wantStatus, tc.wantMention)
			}
		})
	}
	if got := h.metric(t, "refsvc_endpoint_messages_accepted_total", nil); got != 0 {
		t.Fatalf("messages accepted = %v, want 0", got)
	}
}

func TestFaultsAreSetAtRunTimeAndDrawnPerRequest(t *testing.T) {
	h := newHarness(t, Config{})
	token := h.token(t, time.Hour, 1000)
	set := func(f string) reply {
		return h.admin(t, http.MethodPost, endpointapi.FaultsPath, []byte(f))
	}
	if r := set(`{"run_ids":["r1"],"throttle_rate":0.25,"retry_after_seconds":2,"error_rate":0.25,"error_status":500}`); r.status != 200 {
		t.Fatalf("set faults: %d %s", r.status, r.body)
	}
	var current endpointapi.FaultState
	if err := json.Unmarshal(h.admin(t, http.MethodGet, endpointapi.FaultsPath, nil).body, &current); err != nil {
		t.Fatal(err)
	}
	if len(current.Runs) != 1 || current.Default.Active() {
		t.Fatalf("GET faults = %+v, want one run's setting and no default", current)
	}
	if f := current.Runs[0]; f.ThrottleRate != 0.25 || f.ErrorRate != 0.25 || f.ErrorStatus != 500 || f.RetryAfterSeconds != 2 || len(f.RunIDs) != 1 || f.RunIDs[0] != "r1" {
		t.Fatalf("GET faults = %+v", f)
	}

	// Draws: below 0.25 throttles, below 0.5 fails, above passes.
	h.mu.Lock()
	h.rand = []float64{0.1, 0.3, 0.7}
	h.mu.Unlock()
	r := h.post(t, token, runBatchBody(t, "r1", "f1", 10))
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "2" {
		t.Fatalf("draw 0.1: %d Retry-After %q, want 429 with Retry-After 2", r.status, r.header.Get("Retry-After"))
	}
	if r := h.post(t, token, runBatchBody(t, "r1", "f2", 10)); r.status != http.StatusInternalServerError {
		t.Fatalf("draw 0.3: %d, want 500", r.status)
	}
	h.post(t, token, runBatchBody(t, "r1", "f3", 10)).batch(t)
	// Faulted requests have no effect: only the last batch counted.
	if got := h.metric(t, "refsvc_endpoint_messages_accepted_total", nil); got != 10 {
		t.Fatalf("messages accepted = %v, want 10", got)
	}
	for kind, want := range map[string]float64{"throttle": 1, "error": 1} {
		if got := h.metric(t, "refsvc_endpoint_injected_faults_total", map[string]string{"kind": kind}); got != want {
			t.Errorf("injected %s = %v, want %v", kind, got, want)
		}
	}

	for bad, field := range map[string]string{
		`{"run_ids":["r1"],"error_rate":1.5}`:                     "error_rate",
		`{"run_ids":["r1"],"throttle_rate":0.6,"error_rate":0.6}`: "must not exceed 1",
		`{"run_ids":["r1"],"error_status":200}`:                   "error_status",
		`{"run_ids":["r1"],"eror_rate":0.1}`:                      `unknown field "eror_rate"`,
		`{"run_ids":["r1"],"latency_ms":-1}`:                      "latency_ms",
		`{"error_rate":0.1}`:                                      "run_ids is required",
		`{"run_ids":[""],"error_rate":0.1}`:                       "run_ids[0]",
		`{"run_ids":["r1"]} {"run_ids":["r2"]}`:                   "single JSON object",
	} {
		r := set(bad)
		if er := r.errorResponse(t); r.status != http.StatusBadRequest || !strings.Contains(er.ErrorDescription, field) {
			t.Errorf("set %s: %d %q, want 400 naming %q", bad, r.status, er.ErrorDescription, field)
		}
	}
	if r := h.admin(t, http.MethodDelete, endpointapi.FaultsPath, nil); r.status != 200 {
		t.Fatalf("reset faults: %d", r.status)
	}
	if f := h.ep.Faults("r1"); f.Active() {
		t.Fatalf("faults after reset = %+v", f)
	}
}

func TestFaultsApplyOnlyToTheRunsTheyName(t *testing.T) {
	h := newHarness(t, Config{})
	token := h.token(t, time.Hour, 1000)
	if r := h.admin(t, http.MethodPost, endpointapi.FaultsPath, []byte(`{"run_ids":["a","b"],"error_rate":1}`)); r.status != 200 {
		t.Fatalf("set faults: %d %s", r.status, r.body)
	}
	for _, run := range []string{"a", "b"} {
		if r := h.post(t, token, runBatchBody(t, run, "of-"+run, 1)); r.status != http.StatusServiceUnavailable {
			t.Errorf("batch of run %s: %d, want the injected 503", run, r.status)
		}
	}
	// Another run, and a batch that names none, are served normally.
	h.post(t, token, runBatchBody(t, "c", "of-c", 1)).batch(t)
	h.post(t, token, runBatchBody(t, "", "of-none", 1)).batch(t)

	// A later setting of one run leaves the other's alone.
	if r := h.admin(t, http.MethodPost, endpointapi.FaultsPath, []byte(`{"run_ids":["b"],"latency_ms":1}`)); r.status != 200 {
		t.Fatalf("set faults: %d %s", r.status, r.body)
	}
	if f := h.ep.Faults("a"); f.ErrorRate != 1 {
		t.Errorf("run a's faults after setting b's: %+v", f)
	}
	h.post(t, token, runBatchBody(t, "b", "of-b-2", 1)).batch(t)

	if r := h.admin(t, http.MethodDelete, endpointapi.FaultsPath+"?run_id=a", nil); r.status != 200 {
		t.Fatalf("reset run a: %d", r.status)
	}
	h.post(t, token, runBatchBody(t, "a", "of-a-2", 1)).batch(t)
	if f := h.ep.Faults("b"); f.LatencyMillis != 1 {
		t.Errorf("resetting run a changed run b's faults: %+v", f)
	}
}

func TestStartTimeFaultsMayNotNameRuns(t *testing.T) {
	_, err := New(Config{SigningKey: testKey, Faults: endpointapi.Faults{RunIDs: []string{"r"}, ErrorRate: 1}}, prometheus.NewRegistry(), zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "name none") {
		t.Fatalf("New with run ids in the start-time faults: %v", err)
	}
}

func TestInjectedLatencyDelaysRequests(t *testing.T) {
	h := newHarness(t, Config{Faults: endpointapi.Faults{LatencyMillis: 60}})
	token := h.token(t, time.Hour, 1000)
	start := time.Now()
	h.post(t, token, batchBody(t, "slow", 1)).batch(t)
	if elapsed := time.Since(start); elapsed < 60*time.Millisecond {
		t.Fatalf("request took %s with 60ms injected latency", elapsed)
	}
}

func TestLostResponseIsRecoveredByIdempotentRetry(t *testing.T) {
	h := newHarness(t, Config{Faults: endpointapi.Faults{LostResponseRate: 1}})
	token := h.token(t, time.Hour, 10)
	body := batchBody(t, "lost", 10)
	if r := h.post(t, token, body, endpointapi.IdempotencyKeyHeader, "lost"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("lost response: %d, want 503", r.status)
	}
	if r := h.admin(t, http.MethodDelete, endpointapi.FaultsPath, nil); r.status != http.StatusOK {
		t.Fatalf("reset faults: %d", r.status)
	}
	// The batch was accepted (quota 10 is used), and the retry gets its answer.
	r := h.post(t, token, body, endpointapi.IdempotencyKeyHeader, "lost")
	if r.batch(t).BatchNumber != 1 || r.header.Get(endpointapi.ReplayedHeader) != "true" {
		t.Fatalf("retry after lost response: %s (replayed %q)", r.body, r.header.Get(endpointapi.ReplayedHeader))
	}
}

func TestStoredAnswersAndQuotaExpire(t *testing.T) {
	mr := miniredis.RunT(t)
	h := newHarness(t, Config{Redis: redisClient(mr), IdempotencyTTL: time.Hour})
	token := h.token(t, 2*time.Hour, 1000)
	body := runBatchBody(t, "", "run-p0-o0-9", 10)
	first := h.post(t, token, body, endpointapi.IdempotencyKeyHeader, "run-p0-o0-9").batch(t)
	for key, want := range map[string]time.Duration{
		DefaultKeyPrefix + "idempotency:9:flowproof:run-p0-o0-9": time.Hour,
		DefaultKeyPrefix + "run:run:figures":                     time.Hour,
		DefaultKeyPrefix + "run:run:seen":                        time.Hour,
		DefaultKeyPrefix + "quota:" + tokenID(t, token):          2 * time.Hour,
	} {
		if got := mr.TTL(key); got != want {
			t.Errorf("ttl of %q = %s, want %s (keys: %q)", key, got, want, mr.Keys())
		}
	}
	// The batch number is the one key without a ttl: one per store.
	for _, key := range mr.Keys() {
		if mr.TTL(key) == 0 && key != DefaultKeyPrefix+"batch-number" {
			t.Errorf("key %q has no ttl", key)
		}
	}
	mr.FastForward(time.Hour + time.Second)
	again := h.post(t, token, body, endpointapi.IdempotencyKeyHeader, "run-p0-o0-9")
	if again.header.Get(endpointapi.ReplayedHeader) != "" || again.batch(t).BatchNumber == first.BatchNumber {
		t.Fatal("a retry after the ttl was replayed; the stored answer outlived its ttl")
	}
}

// tokenID is the jti of a signed token.
func tokenID(t *testing.T, token string) string {
	t.Helper()
	claims, err := tokens.NewVerifier(testKey, func() time.Time { return harnessStart }, 0).Verify(token)
	if err != nil {
		t.Fatal(err)
	}
	return claims.ID
}

func TestStoreOutageRefusesBatchesAndDegradesHealth(t *testing.T) {
	mr := miniredis.RunT(t)
	h := newHarness(t, Config{Redis: redisClient(mr)})
	token := h.token(t, time.Hour, 1000)
	if r := h.do(t, http.MethodGet, refsvcapi.HealthPath, nil); r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"name":"store","healthy":true`)) {
		t.Fatalf("health with the store up: %d %s", r.status, r.body)
	}
	mr.Close()
	r := h.post(t, token, batchBody(t, "b", 1), endpointapi.IdempotencyKeyHeader, "b")
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("batch with the store down: %d %s, want 503 with Retry-After", r.status, r.body)
	}
	health := h.do(t, http.MethodGet, refsvcapi.HealthPath, nil)
	var answer refsvcapi.Health
	if err := json.Unmarshal(health.body, &answer); err != nil {
		t.Fatal(err)
	}
	if health.status != http.StatusServiceUnavailable || answer.Status != "degraded" || len(answer.Dependencies) != 1 ||
		answer.Dependencies[0].Healthy || !strings.Contains(answer.Dependencies[0].Detail, "redis") {
		t.Fatalf("health with the store down: %d %s", health.status, health.body)
	}
	if got := h.metric(t, "refsvc_endpoint_messages_accepted_total", nil); got != 0 {
		t.Fatalf("messages accepted = %v, want 0", got)
	}
}

func TestConfigIsValidated(t *testing.T) {
	_, err := New(Config{SigningKey: []byte("short"), MaxBatchMessages: -1, Faults: endpointapi.Faults{ErrorRate: 2}}, prometheus.NewRegistry(), zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "signing key is 5 bytes") || !strings.Contains(err.Error(), "max batch messages") ||
		!strings.Contains(err.Error(), "Redis client is required") {
		t.Fatalf("config error = %v", err)
	}
	_, err = New(Config{SigningKey: testKey, Redis: redisClient(miniredis.RunT(t)), Faults: endpointapi.Faults{ErrorRate: 2}}, prometheus.NewRegistry(), zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "error_rate must be between 0 and 1") {
		t.Fatalf("faults error = %v", err)
	}
}

func TestStateSurvivesARestart(t *testing.T) {
	mr := miniredis.RunT(t)
	first := newHarness(t, Config{Redis: redisClient(mr)})
	token := first.token(t, time.Hour, 150)
	body := batchBody(t, "kept", 100)
	accepted := first.post(t, token, body, endpointapi.IdempotencyKeyHeader, "kept")
	firstBatch := accepted.batch(t)
	first.server.Close()

	second := newHarnessAt(t, Config{Redis: redisClient(mr)}, harnessStart.Add(time.Minute))
	// The retry is answered from before the restart, byte for byte...
	if r := second.post(t, token, body, endpointapi.IdempotencyKeyHeader, "kept"); !bytes.Equal(r.body, accepted.body) {
		t.Fatalf("replay after restart: %d %s, want %s", r.status, r.body, accepted.body)
	}
	// ...the token still has only 50 messages left...
	if r := second.post(t, token, batchBody(t, "too-many", 51)); r.status != http.StatusUnauthorized {
		t.Fatalf("quota after restart: %d, want 401", r.status)
	}
	// ...and batch numbers go on.
	if next := second.post(t, token, batchBody(t, "next", 50)).batch(t); next.BatchNumber != firstBatch.BatchNumber+1 {
		t.Fatalf("batch number %d after restart, want %d", next.BatchNumber, firstBatch.BatchNumber+1)
	}
}
