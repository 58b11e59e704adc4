package flinksql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flowproof/flowproof/internal/redact"
)

// OperationStatus is the state of a gateway operation.
type OperationStatus string

// The states of an operation; FINISHED, CANCELED, CLOSED, ERROR and TIMEOUT
// are final.
const (
	OperationInitialized OperationStatus = "INITIALIZED"
	OperationPending     OperationStatus = "PENDING"
	OperationRunning     OperationStatus = "RUNNING"
	OperationFinished    OperationStatus = "FINISHED"
	OperationCanceled    OperationStatus = "CANCELED"
	OperationClosed      OperationStatus = "CLOSED"
	OperationError       OperationStatus = "ERROR"
	OperationTimeout     OperationStatus = "TIMEOUT"
)

// Terminal reports whether the operation can no longer change.
func (st OperationStatus) Terminal() bool {
	switch st {
	case OperationFinished, OperationCanceled, OperationClosed, OperationError, OperationTimeout:
		return true
	}
	return false
}

// Operation is one statement being executed by the gateway.
type Operation struct {
	session *Session
	handle  string
}

// Handle is the gateway's id of the operation.
func (o *Operation) Handle() string { return o.handle }

// Submit hands one statement to the gateway and returns without waiting
// for it. executionConfig, when not empty, adds Flink options for this
// statement only. The request is never repeated once it may have reached
// the gateway: a second copy of an INSERT would be a second job.
func (s *Session) Submit(ctx context.Context, statement string, executionConfig map[string]string) (*Operation, error) {
	return s.submit(ctx, statement, statement, executionConfig)
}

func (s *Session) submit(ctx context.Context, statement, shown string, executionConfig map[string]string) (*Operation, error) {
	req := struct {
		Statement       string            `json:"statement"`
		ExecutionConfig map[string]string `json:"executionConfig,omitempty"`
	}{statement, executionConfig}
	var out struct {
		OperationHandle string `json:"operationHandle"`
	}
	if err := s.gw.rest.do(ctx, "POST", s.path("/statements"), retryOnlyUnsent, req, &out); err != nil {
		return nil, fmt.Errorf("submit statement %q: %w", abbreviate(shown), err)
	}
	if out.OperationHandle == "" {
		return nil, fmt.Errorf("flinksql: submit statement %q: answer has no operationHandle", abbreviate(shown))
	}
	return &Operation{session: s, handle: out.OperationHandle}, nil
}

func (o *Operation) path(suffix string) string {
	return o.session.path("/operations/" + url.PathEscape(o.handle) + suffix)
}

// Status asks for the operation's state.
func (o *Operation) Status(ctx context.Context) (OperationStatus, error) {
	var out struct {
		Status OperationStatus `json:"status"`
	}
	if err := o.session.gw.rest.do(ctx, "GET", o.path("/status"), retrySafe, nil, &out); err != nil {
		return "", fmt.Errorf("status of operation %s: %w", o.handle, err)
	}
	return out.Status, nil
}

// WaitDone polls the status until it is final (FINISHED, ERROR, ...) and
// returns it. A streaming query never finishes: fetch its results instead.
func (o *Operation) WaitDone(ctx context.Context, poll time.Duration) (OperationStatus, error) {
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	for {
		st, err := o.Status(ctx)
		if err != nil {
			return "", err
		}
		if st.Terminal() {
			return st, nil
		}
		if err := sleep(ctx, poll); err != nil {
			return st, fmt.Errorf("wait for operation %s (%s): %w", o.handle, st, err)
		}
	}
}

// Cancel stops an operation that is still executing: planning, or an
// INSERT run with table.dml-sync=true. Whether the job of such an INSERT
// ends with it has varied between runs on Flink 2.2.0: end jobs with
// JobManager.Cancel. A query's operation is already FINISHED once its job
// runs, and the gateway refuses to cancel a FINISHED operation.
func (o *Operation) Cancel(ctx context.Context) (OperationStatus, error) {
	var out struct {
		Status OperationStatus `json:"status"`
	}
	if err := o.session.gw.rest.do(ctx, "POST", o.path("/cancel"), retryOnlyUnsent, nil, &out); err != nil {
		return "", fmt.Errorf("cancel operation %s: %w", o.handle, err)
	}
	return out.Status, nil
}

// Close releases the operation and its results on the gateway. Closing a
// query's operation cancels the query's job; the job of an asynchronous
// INSERT, the default and what SubmitJob runs, belongs to the cluster and
// runs on until JobManager.Cancel or StopWithSavepoint.
func (o *Operation) Close(ctx context.Context) (OperationStatus, error) {
	var out struct {
		Status OperationStatus `json:"status"`
	}
	if err := o.session.gw.rest.do(ctx, "DELETE", o.path("/close"), retryOnlyUnsent, nil, &out); err != nil {
		return "", fmt.Errorf("close operation %s: %w", o.handle, err)
	}
	return out.Status, nil
}

// ResultType says whether a fetched page has rows, is not ready yet, or is
// the end of the results.
type ResultType string

// The result types of a fetched page.
const (
	ResultNotReady ResultType = "NOT_READY"
	ResultPayload  ResultType = "PAYLOAD"
	ResultEOS      ResultType = "EOS"
)

// Column describes one result column.
type Column struct {
	Name        string          `json:"name"`
	LogicalType json.RawMessage `json:"logicalType"`
	Comment     string          `json:"comment,omitempty"`
}

// Row is one result row in the JSON row format: Kind is the change kind
// (INSERT, UPDATE_BEFORE, UPDATE_AFTER, DELETE) and Fields the values in
// column order as Flink encoded them.
type Row struct {
	Kind   string            `json:"kind"`
	Fields []json.RawMessage `json:"fields"`
}

// String returns field i as text: the JSON string unquoted, any other JSON
// value as written, "" for null or a missing field.
func (r Row) String(i int) string {
	if i < 0 || i >= len(r.Fields) {
		return ""
	}
	raw := r.Fields[i]
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	if string(raw) == "null" {
		return ""
	}
	return string(raw)
}

// ResultPage is one answer of the result endpoint.
type ResultPage struct {
	ResultType    ResultType `json:"resultType"`
	IsQueryResult bool       `json:"isQueryResult"`
	// JobID is set when the statement submitted a Flink job (INSERT,
	// STATEMENT SET, a SELECT on a cluster).
	JobID      string `json:"jobID"`
	ResultKind string `json:"resultKind"`
	Results    struct {
		Columns   []Column `json:"columns"`
		RowFormat string   `json:"rowFormat"`
		Data      []Row    `json:"data"`
	} `json:"results"`
	NextResultURI string `json:"nextResultUri"`
}

// NextToken is the token of the page after this one, from NextResultURI;
// false at the end of the results.
func (p ResultPage) NextToken() (int64, bool) {
	if p.ResultType == ResultEOS || p.NextResultURI == "" {
		return 0, false
	}
	u, err := url.Parse(p.NextResultURI)
	if err != nil {
		return 0, false
	}
	token, err := strconv.ParseInt(u.Path[strings.LastIndexByte(u.Path, '/')+1:], 10, 64)
	return token, err == nil
}

// FetchPage fetches one page of results by token (0 first; then the token
// at the end of the previous page's NextResultURI).
func (o *Operation) FetchPage(ctx context.Context, token int64) (ResultPage, error) {
	return o.fetch(ctx, o.path("/result/"+strconv.FormatInt(token, 10)+"?rowFormat=JSON"))
}

func (o *Operation) fetch(ctx context.Context, path string) (ResultPage, error) {
	var page ResultPage
	if err := o.session.gw.rest.do(ctx, "GET", path, retrySafe, nil, &page); err != nil {
		return page, fmt.Errorf("fetch results of operation %s: %w", o.handle, err)
	}
	return page, nil
}

// Result is everything a finished statement returned.
type Result struct {
	ResultKind    string
	IsQueryResult bool
	JobID         string
	Columns       []Column
	Rows          []Row
}

// Results fetches every page, waiting on NOT_READY pages, following
// nextResultUri until the end of the stream. A failed statement comes back
// here as an *APIError holding Flink's exception. For an unbounded query
// this only returns when ctx ends.
func (o *Operation) Results(ctx context.Context, poll time.Duration) (*Result, error) {
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	res := &Result{}
	path := o.path("/result/0?rowFormat=JSON")
	for {
		page, err := o.fetch(ctx, path)
		if err != nil {
			return res, err
		}
		if page.JobID != "" {
			res.JobID = page.JobID
		}
		if page.ResultKind != "" {
			res.ResultKind = page.ResultKind
		}
		res.IsQueryResult = res.IsQueryResult || page.IsQueryResult
		if len(page.Results.Columns) > 0 {
			res.Columns = page.Results.Columns
		}
		res.Rows = append(res.Rows, page.Results.Data...)
		if page.ResultType == ResultEOS || page.NextResultURI == "" {
			return res, nil
		}
		next, err := o.nextPath(page.NextResultURI)
		if err != nil {
			return res, err
		}
		// Not ready, or a query's page that came back empty: ask again a
		// little later rather than in a tight loop.
		if page.ResultType == ResultNotReady || len(page.Results.Data) == 0 {
			if err := sleep(ctx, poll); err != nil {
				return res, fmt.Errorf("fetch results of operation %s: %w", o.handle, err)
			}
		}
		path = next
	}
}

// nextPath turns the gateway's nextResultUri into a request path, keeping
// the JSON row format, and refuses a URI that leaves this operation.
func (o *Operation) nextPath(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("flinksql: operation %s: nextResultUri %q: %w", o.handle, uri, err)
	}
	prefix := o.path("/result/")
	if u.IsAbs() || !strings.HasPrefix(u.Path, prefix) {
		return "", fmt.Errorf("flinksql: operation %s: unexpected nextResultUri %q", o.handle, uri)
	}
	q := u.Query()
	if q.Get("rowFormat") == "" {
		q.Set("rowFormat", "JSON")
	}
	return u.Path + "?" + q.Encode(), nil
}

// Execute submits one statement, fetches all its results and closes the
// operation. For an INSERT the result carries the Flink job id; the job
// itself runs on.
func (s *Session) Execute(ctx context.Context, statement string) (*Result, error) {
	return s.execute(ctx, statement, statement)
}

// execute runs statement; its errors quote shown, the statement as it may
// be shown.
func (s *Session) execute(ctx context.Context, statement, shown string) (*Result, error) {
	op, err := s.submit(ctx, statement, shown, nil)
	if err != nil {
		return nil, err
	}
	res, err := op.Results(ctx, 0)
	// The operation's results are no longer needed whatever happened; the
	// close uses its own deadline so a cancelled ctx still frees them.
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, closeErr := op.Close(closeCtx); closeErr != nil && err == nil {
		return res, closeErr
	}
	if err != nil {
		return res, fmt.Errorf("statement %q: %w", abbreviate(shown), err)
	}
	return res, nil
}

// SQLJob is a job's SQL: the statements to run in order, the last one
// submitting the job, and the secrets they hold (credentials of the
// job's Kafka clients), which must reach Flink and nothing else. EnrichJob
// and SplitJob are SQLJobs.
type SQLJob interface {
	Statements() ([]string, error)
	Secrets() []string
}

// SubmitJob runs a job's statements in this session and returns the id of
// the Flink job the last one submitted. Its errors never hold the job's
// secrets: a statement they quote is shown with the secrets replaced, and
// so is whatever Flink answered.
func (s *Session) SubmitJob(ctx context.Context, job SQLJob) (string, error) {
	stmts, err := job.Statements()
	if err != nil {
		return "", err
	}
	if len(stmts) == 0 {
		return "", errors.New("flinksql: job has no statements")
	}
	secrets := job.Secrets()
	ctx = withSecrets(ctx, secrets)
	var res *Result
	for _, stmt := range stmts {
		if res, err = s.execute(ctx, stmt, redact.Values(stmt, secrets...)); err != nil {
			return "", err
		}
	}
	if res.JobID == "" {
		return "", fmt.Errorf("flinksql: statement %q submitted no Flink job", abbreviate(redact.Values(stmts[len(stmts)-1], secrets...)))
	}
	return res.JobID, nil
}

func abbreviate(stmt string) string {
	stmt = strings.Join(strings.Fields(stmt), " ")
	const limit = 80
	if len(stmt) > limit {
		return stmt[:limit] + "..."
	}
	return stmt
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
