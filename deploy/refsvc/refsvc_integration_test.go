//go:build integration

// These tests talk to the running token service and endpoint of the local
// stack (bin/stackctl up --only refsvc). The fault tests start an endpoint
// of their own, built from this checkout, beside it.
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowproof/flowproof/deploy/refsvc/tokens"
	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/refsvcapi"
	"github.com/flowproof/flowproof/internal/tokenapi"
)

var httpClient = &http.Client{Timeout: 30 * time.Second}

func clientSecret() string {
	if s := os.Getenv(EnvClientSecret); s != "" {
		return s
	}
	return "flowproof-local-secret" // what stackctl gives the local stack
}

type stackURLs struct{ token, endpoint string }

func urls(t *testing.T) stackURLs {
	t.Helper()
	a := localstack.FromEnv()
	u := stackURLs{token: strings.TrimRight(a.TokenURL, "/"), endpoint: strings.TrimRight(a.EndpointURL, "/")}
	for _, base := range []string{u.token, u.endpoint} {
		resp, err := httpClient.Get(base + refsvcapi.HealthPath)
		if err != nil {
			t.Fatalf("reference services not reachable (run bin/stackctl up --only refsvc): %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s%s = %d", base, refsvcapi.HealthPath, resp.StatusCode)
		}
	}
	return u
}

// getToken asks the token service for a token; extra form fields come in
// name, value pairs.
func getToken(t testing.TB, u stackURLs, secret string, extra ...string) (tokenapi.TokenResponse, int, refsvcapi.ErrorResponse) {
	t.Helper()
	form := url.Values{tokenapi.FormGrantType: {tokenapi.GrantTypeClientCredentials}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	req, err := http.NewRequest(http.MethodPost, u.token+tokenapi.TokenPath, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("flowproof", url.QueryEscape(secret))
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var tr tokenapi.TokenResponse
	var er refsvcapi.ErrorResponse
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &tr); err != nil {
			t.Fatalf("token response %s: %v", body, err)
		}
	} else {
		_ = json.Unmarshal(body, &er)
	}
	return tr, resp.StatusCode, er
}

func mustToken(t testing.TB, u stackURLs, extra ...string) tokenapi.TokenResponse {
	t.Helper()
	tr, status, er := getToken(t, u, clientSecret(), extra...)
	if status != http.StatusOK {
		t.Fatalf("token request: %d %+v", status, er)
	}
	return tr
}

type batchReply struct {
	status int
	header http.Header
	body   []byte
}

func newBatch(prefix string, n int) endpointapi.BatchRequest {
	id := prefix + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	req := endpointapi.BatchRequest{BatchID: id}
	for i := 0; i < n; i++ {
		req.Messages = append(req.Messages, endpointapi.Message{
			CorrelationID: fmt.Sprintf("%s-%d", id, i),
			Seq:           int64(i),
			LogicalQueue:  "it-queue",
			Extra:         map[string]json.RawMessage{"payload": json.RawMessage(`"integration"`)},
		})
	}
	return req
}

func postBatch(t testing.TB, u stackURLs, token string, batch endpointapi.BatchRequest, idempotent bool) batchReply {
	t.Helper()
	body, err := json.Marshal(batch)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, u.endpoint+endpointapi.BatchesPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if idempotent {
		req.Header.Set(endpointapi.IdempotencyKeyHeader, batch.BatchID)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("batch request: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return batchReply{status: resp.StatusCode, header: resp.Header, body: raw}
}

func (r batchReply) accepted(t testing.TB) endpointapi.BatchResponse {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("batch: status %d, body %s", r.status, r.body)
	}
	var br endpointapi.BatchResponse
	if err := json.Unmarshal(r.body, &br); err != nil {
		t.Fatalf("batch response %s: %v", r.body, err)
	}
	return br
}

func (r batchReply) wantUnauthorized(t *testing.T, description string) {
	t.Helper()
	if r.status != http.StatusUnauthorized {
		t.Fatalf("status %d (%s), want 401 %q", r.status, r.body, description)
	}
	challenge := r.header.Get("WWW-Authenticate")
	if !strings.HasPrefix(challenge, "Bearer ") || !strings.Contains(challenge, `error_description="`+description+`"`) {
		t.Fatalf("WWW-Authenticate = %q, want a Bearer challenge with error_description %q", challenge, description)
	}
}

func TestTokenServiceIssuesTokensAndRefusesWrongCredentials(t *testing.T) {
	u := urls(t)
	tr := mustToken(t, u)
	if tr.TokenType != "Bearer" || tr.ExpiresIn <= 0 || tr.Quota <= 0 || strings.Count(tr.AccessToken, ".") != 2 {
		t.Fatalf("token response = %+v", tr)
	}
	_, status, er := getToken(t, u, "not-the-secret")
	if status != http.StatusUnauthorized || er.Error != "invalid_client" {
		t.Fatalf("wrong secret: %d %+v, want 401 invalid_client", status, er)
	}
}

func TestEndpointAcceptsValidBatchAndReplaysRetries(t *testing.T) {
	u := urls(t)
	token := mustToken(t, u).AccessToken
	batch := newBatch("it-valid", 20)
	first := postBatch(t, u, token, batch, true).accepted(t)
	if first.BatchID != batch.BatchID || first.BatchNumber < 1 || len(first.Results) != 20 {
		t.Fatalf("response = %+v", first)
	}
	seen := map[string]bool{}
	for i, r := range first.Results {
		if r.CorrelationID != batch.Messages[i].CorrelationID || r.Seq != int64(i) || r.SendingID == "" || seen[r.SendingID] {
			t.Fatalf("result %d = %+v", i, r)
		}
		seen[r.SendingID] = true
	}
	retry := postBatch(t, u, token, batch, true)
	again := retry.accepted(t)
	if retry.header.Get(endpointapi.ReplayedHeader) != "true" || again.BatchNumber != first.BatchNumber || again.Results[0].SendingID != first.Results[0].SendingID {
		t.Fatalf("retry was not a replay: %+v (first batch %d)", again, first.BatchNumber)
	}
	next := postBatch(t, u, token, newBatch("it-next", 1), true).accepted(t)
	if next.BatchNumber <= first.BatchNumber {
		t.Fatalf("batch number %d after %d: not increasing", next.BatchNumber, first.BatchNumber)
	}
}

func TestEndpointRejectsMissingForgedAndExpiredTokens(t *testing.T) {
	u := urls(t)
	postBatch(t, u, "", newBatch("it-missing", 1), false).wantUnauthorized(t, "missing bearer token")

	otherKey := make([]byte, tokens.MinKeyBytes)
	if _, err := rand.Read(otherKey); err != nil {
		t.Fatal(err)
	}
	forged, _, err := tokens.Sign(otherKey, "flowproof", time.Now(), time.Hour, 100)
	if err != nil {
		t.Fatal(err)
	}
	postBatch(t, u, forged, newBatch("it-forged", 1), false).wantUnauthorized(t, "token signature is invalid")

	short := mustToken(t, u, tokenapi.FormTTLSeconds, "1")
	if short.ExpiresIn != 1 {
		t.Fatalf("asked for ttl_seconds=1, got expires_in %d", short.ExpiresIn)
	}
	postBatch(t, u, short.AccessToken, newBatch("it-before-expiry", 1), false).accepted(t)
	// exp has whole-second precision, so the token lasts up to 2 s.
	time.Sleep(2200 * time.Millisecond)
	postBatch(t, u, short.AccessToken, newBatch("it-expired", 1), false).wantUnauthorized(t, "token expired")
}

func TestEndpointEnforcesQuota(t *testing.T) {
	u := urls(t)
	tr := mustToken(t, u, tokenapi.FormQuota, "250")
	if tr.Quota != 250 {
		t.Fatalf("asked for quota 250, got %d", tr.Quota)
	}
	for i := 0; i < 2; i++ {
		postBatch(t, u, tr.AccessToken, newBatch(fmt.Sprintf("it-quota-%d", i), 100), true).accepted(t)
	}
	postBatch(t, u, tr.AccessToken, newBatch("it-quota-over", 100), true).wantUnauthorized(t, "quota exhausted")
	postBatch(t, u, tr.AccessToken, newBatch("it-quota-rest", 50), true).accepted(t)
	postBatch(t, u, tr.AccessToken, newBatch("it-quota-one-more", 1), true).wantUnauthorized(t, "quota exhausted")
}

func TestEndpointRejectsInvalidBodies(t *testing.T) {
	u := urls(t)
	token := mustToken(t, u).AccessToken
	empty := endpointapi.BatchRequest{BatchID: "it-empty"}
	if r := postBatch(t, u, token, empty, false); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "messages must not be empty") {
		t.Fatalf("empty batch: %d %s", r.status, r.body)
	}
	noCorrelation := newBatch("it-no-correlation", 2)
	noCorrelation.Messages[1].CorrelationID = ""
	if r := postBatch(t, u, token, noCorrelation, false); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "messages[1].correlation_id is required") {
		t.Fatalf("missing correlation_id: %d %s", r.status, r.body)
	}
}

// ownEndpoint builds refsvc from this checkout and starts its endpoint on a
// free loopback port with a fresh admin token, the stack's signing key (so
// that the stack's token service issues tokens it accepts) and the stack's
// Redis. The stack's own endpoint is left alone. The process's log is
// checked for the admin token and the Redis password when the test ends.
func ownEndpoint(t *testing.T) (baseURL, adminToken string) {
	t.Helper()
	ep := startOwnEndpoint(t)
	return ep.baseURL, ep.adminToken
}

// endpointProcess is an endpoint a test started, and may kill and restart.
type endpointProcess struct {
	bin, addr, baseURL, adminToken string
	args                           []string
	cmd                            *exec.Cmd
	logs                           *syncBuffer
}

func startOwnEndpoint(t *testing.T, extraArgs ...string) *endpointProcess {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "refsvc")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build refsvc: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	ep := &endpointProcess{bin: bin, addr: addr, baseURL: "http://" + addr, adminToken: fmt.Sprintf("%x", secret), logs: &syncBuffer{}}
	ep.args = append([]string{"endpoint", "--listen", addr,
		"--signing-key-file", filepath.Join(localstack.StackDir(), "data", "refsvc", "signing.key"),
		"--redis-password-file", localstack.RedisPasswordFile(localstack.StackDir())}, extraArgs...)
	t.Cleanup(func() {
		if ep.cmd != nil {
			_ = ep.cmd.Process.Signal(syscall.SIGTERM)
			_ = ep.cmd.Wait()
		}
		password, _ := localstack.RedisPassword(localstack.StackDir())
		logs := ep.logs.String()
		if strings.Contains(logs, ep.adminToken) || (password != "" && strings.Contains(logs, password)) {
			t.Errorf("the endpoint logged a credential:\n%s", logs)
		}
	})
	ep.start(t)
	return ep
}

// start runs the endpoint and waits until it is healthy.
func (ep *endpointProcess) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(ep.bin, ep.args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), endpointapi.EnvAdminToken + "=" + ep.adminToken}
	cmd.Stdout, cmd.Stderr = ep.logs, ep.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ep.cmd = cmd
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := httpClient.Get(ep.baseURL + refsvcapi.HealthPath)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("own endpoint at %s not healthy: %v\n%s", ep.baseURL, err, ep.logs.String())
		}
	}
}

// kill sends SIGKILL: nothing of the process's memory survives, and it
// gets no chance to flush or close anything.
func (ep *endpointProcess) kill(t *testing.T) {
	t.Helper()
	if err := ep.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = ep.cmd.Wait()
	ep.cmd = nil
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// adminStatus sends a fault API request with the given Authorization
// header and returns the status.
func adminStatus(t *testing.T, method, target, authorization, contentType, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestEndpointFaultAPIIsClosedWithoutTheAdminToken(t *testing.T) {
	live := urls(t)
	base, adminToken := ownEndpoint(t)
	target := base + endpointapi.FaultsPath
	setting := `{"run_ids":["it-admin"],"error_rate":1}`
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		if got := adminStatus(t, method, target, "", "application/json", setting); got != http.StatusUnauthorized {
			t.Errorf("%s without a credential: %d, want 401", method, got)
		}
		if got := adminStatus(t, method, target, "Bearer not-the-admin-token-0123456789abcdef", "application/json", setting); got != http.StatusForbidden {
			t.Errorf("%s with a wrong token: %d, want 403", method, got)
		}
		// A token the token service issued is a batch credential, not an
		// admin one.
		if got := adminStatus(t, method, target, "Bearer "+mustToken(t, live).AccessToken, "application/json", setting); got != http.StatusForbidden {
			t.Errorf("%s with a batch token: %d, want 403", method, got)
		}
	}
	if got := adminStatus(t, http.MethodPost, target, "Bearer "+adminToken, "text/plain", setting); got != http.StatusUnsupportedMediaType {
		t.Errorf("POST as text/plain: %d, want 415", got)
	}
	if got := adminStatus(t, http.MethodPost, target, "Bearer "+adminToken, "application/json", `{"run_ids":["r"],"eror_rate":1}`); got != http.StatusBadRequest {
		t.Errorf("POST with an unknown field: %d, want 400", got)
	}
	state, err := endpointapi.AdminClient{BaseURL: base, Token: adminToken, HTTP: httpClient}.State(t.Context())
	if err != nil || state.Active() {
		t.Fatalf("faults after refused requests: %+v, %v", state, err)
	}
}

func TestEndpointInjectsFaultsIntoTheNamedRunOnly(t *testing.T) {
	live := urls(t)
	base, adminToken := ownEndpoint(t)
	u := stackURLs{token: live.token, endpoint: base}
	admin := endpointapi.AdminClient{BaseURL: base, Token: adminToken, HTTP: httpClient}
	ctx := t.Context()
	token := mustToken(t, u).AccessToken
	ofRun := func(run, prefix string, n int) endpointapi.BatchRequest {
		b := newBatch(prefix, n)
		b.RunID = run
		return b
	}

	if _, err := admin.SetFaults(ctx, endpointapi.Faults{RunIDs: []string{"it-faulty"}, ThrottleRate: 1, RetryAfterSeconds: 2}); err != nil {
		t.Fatal(err)
	}
	r := postBatch(t, u, token, ofRun("it-faulty", "it-throttled", 1), true)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "2" {
		t.Fatalf("throttled: %d Retry-After %q, want 429 with Retry-After 2", r.status, r.header.Get("Retry-After"))
	}
	// Another run's batches, and batches naming no run, are served.
	postBatch(t, u, token, ofRun("it-healthy", "it-other-run", 1), true).accepted(t)
	postBatch(t, u, token, newBatch("it-no-run", 1), true).accepted(t)

	if _, err := admin.SetFaults(ctx, endpointapi.Faults{RunIDs: []string{"it-faulty"}, ErrorRate: 1, ErrorStatus: 502}); err != nil {
		t.Fatal(err)
	}
	if r := postBatch(t, u, token, ofRun("it-faulty", "it-error", 1), true); r.status != http.StatusBadGateway {
		t.Fatalf("error fault: %d, want 502", r.status)
	}

	// A lost response: the batch is accepted, the client sees 503, and its
	// retry gets the stored answer instead of a duplicate.
	if _, err := admin.SetFaults(ctx, endpointapi.Faults{RunIDs: []string{"it-faulty"}, LostResponseRate: 1}); err != nil {
		t.Fatal(err)
	}
	lost := ofRun("it-faulty", "it-lost", 3)
	if r := postBatch(t, u, token, lost, true); r.status != http.StatusServiceUnavailable {
		t.Fatalf("lost response: %d, want 503", r.status)
	}
	if err := admin.Reset(ctx, "it-faulty"); err != nil {
		t.Fatal(err)
	}
	if state, err := admin.State(ctx); err != nil || state.Active() {
		t.Fatalf("faults after reset = %+v, %v", state, err)
	}
	retry := postBatch(t, u, token, lost, true)
	retry.accepted(t)
	if retry.header.Get(endpointapi.ReplayedHeader) != "true" {
		t.Fatal("retry after a lost response was accepted anew instead of replayed")
	}
}

// TestEndpointThroughput sends batches of 100 from a few concurrent clients
// for a bounded time and reports the rate; every batch must be accepted with
// distinct sending ids.
func TestEndpointThroughput(t *testing.T) {
	u := urls(t)
	const (
		workers      = 4
		batchSize    = 100
		duration     = 3 * time.Second
		maxPerWorker = 2000
	)
	var (
		mu         sync.Mutex
		sendingIDs = map[string]bool{}
		messages   int
	)
	start := time.Now()
	deadline := start.Add(duration)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var token string
			remaining := int64(0)
			for i := 0; i < maxPerWorker && time.Now().Before(deadline); i++ {
				if remaining < batchSize {
					tr, status, er := getToken(t, u, clientSecret())
					if status != http.StatusOK {
						errs <- fmt.Errorf("token request: %d %+v", status, er)
						return
					}
					token, remaining = tr.AccessToken, tr.Quota
				}
				r := postBatch(t, u, token, newBatch(fmt.Sprintf("it-load-%d-%d", w, i), batchSize), true)
				if r.status != http.StatusOK {
					errs <- fmt.Errorf("batch %d of worker %d: %d %s", i, w, r.status, r.body)
					return
				}
				var resp endpointapi.BatchResponse
				if err := json.Unmarshal(r.body, &resp); err != nil {
					errs <- fmt.Errorf("batch response: %w", err)
					return
				}
				remaining -= batchSize
				mu.Lock()
				for _, res := range resp.Results {
					if sendingIDs[res.SendingID] {
						mu.Unlock()
						errs <- fmt.Errorf("sending id %s repeated", res.SendingID)
						return
					}
					sendingIDs[res.SendingID] = true
				}
				messages += len(resp.Results)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	elapsed := time.Since(start)
	if messages == 0 {
		t.Fatal("no batch was accepted")
	}
	t.Logf("endpoint throughput: %d messages in %s = %.0f messages/s (%d clients, batches of %d)",
		messages, elapsed.Round(time.Millisecond), float64(messages)/elapsed.Seconds(), workers, batchSize)
}
