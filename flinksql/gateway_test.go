package flinksql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowproof/flowproof/internal/redact"
)

// These tests check the client's own logic (paging, retries, error
// decoding) against an in-process server speaking the gateway's JSON; the
// integration tests run the same code against the real gateway.

var fastRetries = Options{RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, RequestTimeout: 5 * time.Second}

func TestResultsFollowsNextResultURIUntilEOS(t *testing.T) {
	const base = "/v4/sessions/s1/operations/o1/result/"
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("rowFormat") != "JSON" {
			t.Errorf("%s without rowFormat=JSON", r.URL)
		}
		fetches.Add(1)
		switch r.URL.Path {
		case base + "1":
			fmt.Fprintf(w, `{"resultType":"PAYLOAD","isQueryResult":false,"jobID":"5c01a500ddd7cceb9c98fecfa8d08e98","resultKind":"SUCCESS_WITH_CONTENT","results":{"columns":[{"name":"job id","logicalType":{"type":"VARCHAR","nullable":true,"length":2147483647},"comment":null}],"rowFormat":"JSON","data":[{"kind":"INSERT","fields":["5c01a500ddd7cceb9c98fecfa8d08e98"]}]},"nextResultUri":"%s2?rowFormat=JSON"}`, base)
		case base + "2":
			fmt.Fprint(w, `{"resultType":"EOS","isQueryResult":false,"jobID":"5c01a500ddd7cceb9c98fecfa8d08e98","resultKind":"SUCCESS_WITH_CONTENT","results":{"columns":[],"rowFormat":"JSON","data":[]}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	// Token 0 answers NOT_READY once, then an empty page pointing at token 1.
	var zeroAsked atomic.Bool
	srv.Config.Handler = wrapFirst(srv.Config.Handler, base+"0", &zeroAsked, base)

	gw, err := NewGateway(srv.URL, fastRetries)
	if err != nil {
		t.Fatal(err)
	}
	op := &Operation{session: &Session{gw: gw, handle: "s1"}, handle: "o1"}
	res, err := op.Results(context.Background(), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.JobID != "5c01a500ddd7cceb9c98fecfa8d08e98" || res.ResultKind != "SUCCESS_WITH_CONTENT" {
		t.Errorf("result = %+v", res)
	}
	if len(res.Rows) != 1 || res.Rows[0].String(0) != res.JobID || res.Rows[0].Kind != "INSERT" {
		t.Errorf("rows = %+v", res.Rows)
	}
	if len(res.Columns) != 1 || res.Columns[0].Name != "job id" {
		t.Errorf("columns = %+v", res.Columns)
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches of tokens 1 and 2, want 2", n)
	}
}

// wrapFirst answers the first request for path with NOT_READY pointing at
// the same token and every later one with a page pointing at token 1.
func wrapFirst(next http.Handler, path string, asked *atomic.Bool, base string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			next.ServeHTTP(w, r)
			return
		}
		if !asked.Swap(true) {
			fmt.Fprintf(w, `{"resultType":"NOT_READY","nextResultUri":"%s0?rowFormat=JSON"}`, base)
			return
		}
		fmt.Fprintf(w, `{"resultType":"PAYLOAD","isQueryResult":false,"resultKind":"SUCCESS_WITH_CONTENT","results":{"columns":[],"rowFormat":"JSON","data":[]},"nextResultUri":"%s1?rowFormat=JSON"}`, base)
	})
}

func TestResultsRefusesForeignNextResultURI(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"resultType":"PAYLOAD","results":{"data":[{"kind":"INSERT","fields":[1]}]},"nextResultUri":"http://elsewhere.example/v4/sessions/s1/operations/o1/result/1"}`)
	}))
	defer srv.Close()
	gw, _ := NewGateway(srv.URL, fastRetries)
	op := &Operation{session: &Session{gw: gw, handle: "s1"}, handle: "o1"}
	if _, err := op.Results(context.Background(), time.Millisecond); err == nil || !strings.Contains(err.Error(), "unexpected nextResultUri") {
		t.Errorf("Results with a foreign nextResultUri: %v", err)
	}
}

func TestFailedStatementErrorReachesCaller(t *testing.T) {
	body, err := os.ReadFile("testdata/gateway_parse_eof_error.json")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "POST" && r.URL.Path == "/v4/sessions/s1/statements":
			fmt.Fprint(w, `{"operationHandle":"o1"}`)
		case strings.HasPrefix(r.URL.Path, "/v4/sessions/s1/operations/o1/result/"):
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write(body)
		case r.URL.Path == "/v4/sessions/s1/operations/o1/close":
			fmt.Fprint(w, `{"status":"CLOSED"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	gw, _ := NewGateway(srv.URL, fastRetries)
	sess := &Session{gw: gw, handle: "s1"}
	_, err = sess.Execute(context.Background(), "SELECT * FROM (VALUES (1)) AS t(x) WHERE")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 500 {
		t.Fatalf("Execute = %v, want an *APIError with status 500", err)
	}
	if !strings.Contains(err.Error(), `SqlParserEOFException: Encountered "<EOF>" at line 1, column 40.`) {
		t.Errorf("parser message lost: %v", err)
	}
}

func TestReadsAreRetriedOnUnavailable(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"errors":["Service temporarily unavailable due to an ongoing leader election. Please refresh."]}`)
			return
		}
		fmt.Fprint(w, `{"status":"RUNNING"}`)
	}))
	defer srv.Close()
	gw, _ := NewGateway(srv.URL, fastRetries)
	op := &Operation{session: &Session{gw: gw, handle: "s1"}, handle: "o1"}
	st, err := op.Status(context.Background())
	if err != nil || st != OperationRunning {
		t.Fatalf("Status = %s, %v", st, err)
	}
	if calls.Load() != 3 {
		t.Errorf("%d calls, want 3 (two 503s retried)", calls.Load())
	}
}

func TestStatementSubmissionIsNotRepeated(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"errors":["Service temporarily unavailable due to an ongoing leader election. Please refresh."]}`)
	}))
	defer srv.Close()
	gw, _ := NewGateway(srv.URL, fastRetries)
	sess := &Session{gw: gw, handle: "s1"}
	_, err := sess.Submit(context.Background(), "INSERT INTO t SELECT 1", nil)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 503 || !strings.Contains(err.Error(), "leader election") {
		t.Fatalf("Submit = %v, want the 503 with Flink's message", err)
	}
	if calls.Load() != 1 {
		t.Errorf("statement sent %d times; a submission that may have been accepted must not be repeated", calls.Load())
	}
}

func TestCheckRetry(t *testing.T) {
	safe := context.WithValue(context.Background(), idempotencyKey{}, retrySafe)
	unsafe := context.WithValue(context.Background(), idempotencyKey{}, retryOnlyUnsent)
	dial := &url.Error{Op: "Post", URL: "http://127.0.0.1:1", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	reset := &url.Error{Op: "Post", URL: "http://127.0.0.1:1", Err: &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}}
	resp := func(code int) *http.Response { return &http.Response{StatusCode: code} }
	cases := []struct {
		name string
		ctx  context.Context
		resp *http.Response
		err  error
		want bool
	}{
		{"unsent submission", unsafe, nil, dial, true},
		{"submission whose answer was lost", unsafe, nil, reset, false},
		{"submission answered 503", unsafe, resp(503), nil, false},
		{"read answered 503", safe, resp(503), nil, true},
		{"read answered 502", safe, resp(502), nil, true},
		{"read answered 500", safe, resp(500), nil, false},
		{"read answered 404", safe, resp(404), nil, false},
		{"read whose connection reset", safe, nil, reset, true},
		{"read that succeeded", safe, resp(200), nil, false},
	}
	for _, c := range cases {
		got, _ := checkRetry(c.ctx, c.resp, c.err)
		if got != c.want {
			t.Errorf("%s: retry = %v, want %v", c.name, got, c.want)
		}
	}
	cancelled, cancel := context.WithCancel(safe)
	cancel()
	if retry, err := checkRetry(cancelled, nil, dial); retry || err == nil {
		t.Errorf("cancelled context: retry = %v, err = %v; want no retry and the context's error", retry, err)
	}
}

func TestHeartbeatRunsUntilClose(t *testing.T) {
	var beats atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "POST" && r.URL.Path == "/v4/sessions":
			fmt.Fprint(w, `{"sessionHandle":"s1"}`)
		case r.Method == "POST" && r.URL.Path == "/v4/sessions/s1/heartbeat":
			beats.Add(1)
			fmt.Fprint(w, `{}`)
		case r.Method == "DELETE" && r.URL.Path == "/v4/sessions/s1":
			fmt.Fprint(w, `{"status":"CLOSED"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	gw, _ := NewGateway(srv.URL, fastRetries)
	sess, err := gw.OpenSession(context.Background(), SessionConfig{HeartbeatEvery: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for beats.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := sess.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := beats.Load()
	if after < 3 {
		t.Fatalf("%d heartbeats in 5s", after)
	}
	time.Sleep(30 * time.Millisecond)
	if beats.Load() != after {
		t.Errorf("heartbeats went on after Close")
	}
	if err := sess.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNextToken(t *testing.T) {
	p := ResultPage{ResultType: ResultPayload, NextResultURI: "/v4/sessions/s/operations/o/result/17?rowFormat=JSON"}
	if tok, ok := p.NextToken(); !ok || tok != 17 {
		t.Errorf("NextToken = %d, %v", tok, ok)
	}
	if _, ok := (ResultPage{ResultType: ResultEOS}).NextToken(); ok {
		t.Error("EOS page has a next token")
	}
}

func TestJobIDsAreCheckedBeforeUse(t *testing.T) {
	jm, err := NewJobManager("http://127.0.0.1:1", fastRetries)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "../overview", "0123456789abcdef0123456789ABCDEF", "0123456789abcdef0123456789abcde?"} {
		if _, err := jm.Job(context.Background(), id); err == nil || !strings.Contains(err.Error(), "want 32 hex digits") {
			t.Errorf("Job(%q) = %v, want a job id error", id, err)
		}
	}
}

func TestBaseURLIsChecked(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:18083", "ftp://x", "http://"} {
		if _, err := NewGateway(u, Options{}); err == nil {
			t.Errorf("NewGateway(%q) accepted", u)
		}
	}
}

// A statement Flink refuses, with an answer that quotes the statement's
// secrets back (as a careless server or connector might), yields an
// error holding the password in no form; the gateway itself got the real
// JAAS configuration.
func TestSubmitJobErrorsHoldNoSecret(t *testing.T) {
	job := securedSplitJob(t)
	var received atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/statements"):
			var req struct{ Statement string }
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				t.Error(err)
			}
			op := "ok"
			if strings.Contains(req.Statement, "sasl.jaas.config") {
				received.Store(req.Statement)
				op = "bad"
			}
			fmt.Fprintf(w, `{"operationHandle":%q}`, op)
		case strings.Contains(r.URL.Path, "/operations/bad/result/"):
			stmt, _ := received.Load().(string)
			trace := "org.apache.flink.table.gateway.service.utils.SqlExecutionException: Failed to execute the operation bad.\n" +
				"Caused by: org.apache.flink.table.api.ValidationException: Unable to create a source for reading table. Statement: " + stmt + "\n" +
				// Long enough that Error's shortened root cause would cut
				// the password in half.
				"Caused by: org.apache.kafka.common.KafkaException: " + strings.Repeat("context ", 31) + "login failed for password " + goldenPassword + "\n\tat x.y.Z(Z.java:1)"
			w.WriteHeader(http.StatusInternalServerError)
			_ = json.NewEncoder(w).Encode(map[string][]string{"errors": {"Internal server error.", trace}})
		case strings.Contains(r.URL.Path, "/result/"):
			fmt.Fprint(w, `{"resultType":"EOS","resultKind":"SUCCESS","results":{"columns":[],"data":[]}}`)
		case r.Method == http.MethodDelete:
			fmt.Fprint(w, `{"status":"CLOSED"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	gw, err := NewGateway(srv.URL, fastRetries)
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&Session{gw: gw, handle: "s1"}).SubmitJob(context.Background(), job)
	if err == nil {
		t.Fatal("SubmitJob succeeded against a gateway that refused the table")
	}
	stmt, _ := received.Load().(string)
	if !strings.Contains(stmt, `password="g0lden''pa\"ss\\word"`) {
		t.Fatalf("the gateway did not get the real JAAS configuration; it got:\n%s", stmt)
	}
	msg := err.Error()
	for _, form := range []string{goldenPassword, "g0lden", "ScramLoginModule required"} {
		if strings.Contains(msg, form) {
			t.Errorf("error holds %q: %s", form, msg)
		}
	}
	if !strings.Contains(msg, "ValidationException") || !strings.Contains(msg, redact.Placeholder) {
		t.Errorf("error lost Flink's cause or does not show where the secret was: %s", msg)
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) && strings.Contains(strings.Join(apiErr.Messages, "\n"), "g0lden") {
		t.Errorf("Flink's answer inside the error still holds the password: %q", apiErr.Messages)
	}
}
