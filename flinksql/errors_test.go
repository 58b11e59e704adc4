package flinksql

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures are error bodies captured from the local stack's Flink 2.2.0
// (SQL Gateway on 18083, JobManager on 18081) with curl, unchanged.
func TestAPIErrorFromRealBodies(t *testing.T) {
	cases := []struct {
		fixture   string
		status    int
		wantError string // the whole Error() text
		wantRoot  string // a prefix of RootCause()
	}{
		{
			fixture:   "gateway_parse_error.json", // SELEC 1
			status:    500,
			wantError: "flinksql: GET /v4/s/o/result/0: HTTP 500: SqlParserException: SQL parse failed. Non-query expression encountered in illegal context",
			wantRoot:  "CalciteException: Non-query expression encountered in illegal context",
		},
		{
			fixture:   "gateway_parse_eof_error.json", // SELECT * FROM (VALUES (1)) AS t(x) WHERE
			status:    500,
			wantError: `flinksql: GET /v4/s/o/result/0: HTTP 500: SqlParserEOFException: Encountered "<EOF>" at line 1, column 40.`,
			wantRoot:  "ParseException: Encountered \"<EOF>\" at line 1, column 40.\nWas expecting one of:",
		},
		{
			fixture:   "gateway_validation_error.json", // SELECT * FROM no_such_table
			status:    500,
			wantError: "flinksql: GET /v4/s/o/result/0: HTTP 500: ValidationException: SQL validation failed. From line 1, column 15 to line 1, column 27: Object 'no_such_table' not found",
			wantRoot:  "SqlValidatorException: Object 'no_such_table' not found",
		},
		{
			fixture: "gateway_unsupported_option_error.json", // a kafka table with 'no.such.option'
			status:  500,
			wantError: "flinksql: GET /v4/s/o/result/0: HTTP 500: ValidationException: Unable to create a source for reading table 'default_catalog.default_database.bad'.: " +
				"root cause: ValidationException: Unsupported options found for 'kafka'. Unsupported options: no.such.option Supported options: connector format",
			wantRoot: "ValidationException: Unsupported options found for 'kafka'.\nUnsupported options:\nno.such.option\n",
		},
		{
			fixture:   "gateway_unknown_session_error.json", // heartbeat of a session that does not exist
			status:    500,
			wantError: "flinksql: GET /v4/s/o/result/0: HTTP 500: SqlGatewayException: Session '00000000-0000-0000-0000-000000000000' does not exist.",
			wantRoot:  "SqlGatewayException: Session '00000000-0000-0000-0000-000000000000' does not exist.",
		},
		{
			fixture:   "gateway_not_found_error.json",
			status:    404,
			wantError: "flinksql: GET /v4/s/o/result/0: HTTP 404: Not found: /v4/nosuch",
		},
		{
			fixture:   "jobmanager_unknown_job_error.json",
			status:    404,
			wantError: "flinksql: GET /v4/s/o/result/0: HTTP 404: NotFoundException: Job 0123456789abcdef0123456789abcdef not found: root cause: FlinkJobNotFoundException: Could not find Flink job (0123456789abcdef0123456789abcdef)",
			wantRoot:  "FlinkJobNotFoundException: Could not find Flink job (0123456789abcdef0123456789abcdef)",
		},
		{
			fixture:   "jobmanager_cancel_unknown_job_error.json",
			status:    404,
			wantError: "flinksql: GET /v4/s/o/result/0: HTTP 404: FlinkJobNotFoundException: Could not find Flink job (0123456789abcdef0123456789abcdef)",
			wantRoot:  "FlinkJobNotFoundException: Could not find Flink job (0123456789abcdef0123456789abcdef)",
		},
		{
			fixture:   "jobmanager_bad_job_id_error.json",
			status:    400,
			wantError: `flinksql: GET /v4/s/o/result/0: HTTP 400: HandlerRequestException: Cannot resolve path parameter (jobid) from value "nojob".`,
			wantRoot:  `HandlerRequestException: Cannot resolve path parameter (jobid) from value "nojob".`,
		},
	}
	for _, c := range cases {
		t.Run(c.fixture, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", c.fixture))
			if err != nil {
				t.Fatal(err)
			}
			e := newAPIError("GET", "/v4/s/o/result/0", c.status, body)
			got := e.Error()
			if !strings.HasPrefix(got, c.wantError) {
				t.Errorf("Error() =\n%s\nwant it to start with\n%s", got, c.wantError)
			}
			if strings.Contains(got, "\n") || strings.Contains(got, "\tat ") || len(got) > 600 {
				t.Errorf("Error() is not one concise line (%d bytes): %q", len(got), got)
			}
			if root := e.RootCause(); !strings.HasPrefix(root, c.wantRoot) || strings.Contains(root, "\tat ") {
				t.Errorf("RootCause() =\n%s\nwant it to start with\n%s\nand carry no stack frames", root, c.wantRoot)
			}
			if len(e.Messages) == 0 {
				t.Error("Flink's messages were dropped")
			}
		})
	}
}

func TestAPIErrorFromNonFlinkBody(t *testing.T) {
	e := newAPIError("POST", "/v4/sessions", 502, []byte("<html>"+strings.Repeat("bad gateway ", 100)+"</html>"))
	if got := e.Error(); !strings.HasPrefix(got, "flinksql: POST /v4/sessions: HTTP 502: <html>bad gateway") || len(got) > 600 {
		t.Errorf("Error() = %q", got)
	}
	if got := newAPIError("GET", "/x", 503, nil).Error(); got != "flinksql: GET /x: HTTP 503" {
		t.Errorf("empty body: Error() = %q", got)
	}
}

func TestJobExceptionRootCause(t *testing.T) {
	e := JobException{
		Name: "org.apache.flink.runtime.JobException",
		Stacktrace: "org.apache.flink.runtime.JobException: Recovery is suppressed by NoRestartBackoffTimeStrategy\n" +
			"\tat org.apache.flink.runtime.executiongraph.failover.ExecutionFailureHandler.handleFailure(ExecutionFailureHandler.java:219)\n" +
			"Caused by: org.apache.kafka.common.errors.TimeoutException: Timeout expired after 60000ms while awaiting InitProducerId\n",
	}
	if got, want := e.RootCause(), "TimeoutException: Timeout expired after 60000ms while awaiting InitProducerId"; got != want {
		t.Errorf("RootCause() = %q, want %q", got, want)
	}
}

func TestJobExceptionRootCauseIsBounded(t *testing.T) {
	e := JobException{Stacktrace: "org.apache.flink.runtime.JobException: Recovery is suppressed\n" +
		"Caused by: java.lang.IllegalStateException: " + strings.Repeat("x", 2*maxRootCauseLen) + "\n\tat a.b.C.d(C.java:1)"}
	got := e.RootCause()
	if len(got) > maxRootCauseLen+len("...") || !strings.HasPrefix(got, "IllegalStateException: xxx") || !strings.HasSuffix(got, "...") {
		t.Errorf("RootCause() = %q (%d bytes): want the innermost cause cut to %d bytes", got, len(got), maxRootCauseLen)
	}
}
