package notify

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.temporal.io/sdk/testsuite"
)

func thresholdFailure() Failure {
	return Failure{
		RunID: "nightly-1", WorkflowID: "flowproof-nightly 2026", TemporalRunID: "r-1", Namespace: "default",
		Status: "Failed", FailedStage: "thresholds", FailureMessage: "thresholds broken: p99 latency 45.9 s > 15 s",
		BrokenThresholds: []string{"p99 latency 45.9 s > 15 s"}, Messages: 1000, Verified: 1000,
	}
}

func TestMessageNamesTheRunItsReasonLinkAndReport(t *testing.T) {
	msg := Message(thresholdFailure(), "https://ui.example.com/")
	for _, want := range []string{
		"flowproof run nightly-1 failed in stage thresholds",
		"Reason: thresholds broken: p99 latency 45.9 s > 15 s",
		"Broken threshold: p99 latency 45.9 s > 15 s",
		"Run in Temporal: https://ui.example.com/namespaces/default/workflows/flowproof-nightly%202026/r-1/history",
		"Report: starter report 'flowproof-nightly 2026' --html report.html",
	} {
		if !strings.Contains(msg.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, msg.Text)
		}
	}
	if len(msg.Blocks) != 2 || msg.Blocks[0].Type != "section" || msg.Blocks[0].Text == nil {
		t.Fatalf("blocks %+v; want a section and a context", msg.Blocks)
	}
	section := msg.Blocks[0].Text.Text
	for _, want := range []string{
		"<https://ui.example.com/namespaces/default/workflows/flowproof-nightly%202026/r-1/history|Run in Temporal>",
		"Broken threshold: p99 latency 45.9 s &gt; 15 s",
	} {
		if !strings.Contains(section, want) {
			t.Errorf("section lacks %q:\n%s", want, section)
		}
	}
}

func TestMessageWithoutAUIBaseHasNoLink(t *testing.T) {
	msg := Message(thresholdFailure(), "")
	if strings.Contains(msg.Text, "Run in Temporal") || strings.Contains(msg.Text, "http") {
		t.Errorf("a link without a configured UI:\n%s", msg.Text)
	}
}

func newActivityEnv(t *testing.T, a *Activities) *testsuite.TestActivityEnvironment {
	t.Helper()
	env := new(testsuite.WorkflowTestSuite).NewTestActivityEnvironment()
	env.RegisterActivity(a)
	return env
}

func TestNotifyRetriesThenSends(t *testing.T) {
	var requests atomic.Int32
	var got SlackMessage
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		_ = json.NewDecoder(r.Body).Decode(&got)
	}))
	defer srv.Close()
	counts := NewCounts()
	a := New(Config{WebhookURL: srv.URL + "/hook", RetryWaitMin: time.Millisecond}, counts)
	val, err := newActivityEnv(t, a).ExecuteActivity(a.NotifyRunFailed, thresholdFailure())
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := val.Get(&res); err != nil {
		t.Fatal(err)
	}
	if !res.Sent || res.Attempts != 2 {
		t.Errorf("result %+v; want sent on the second attempt", res)
	}
	if !strings.Contains(got.Text, "nightly-1") {
		t.Errorf("receiver got %+v", got)
	}
	if testutil.ToFloat64(counts.Sent()) != 1 {
		t.Error("not counted as sent")
	}
}

// TestAFailingWebhookKeepsItsURLSecret: the error (which Temporal keeps in
// history) names neither the URL nor its secret path.
func TestAFailingWebhookKeepsItsURLSecret(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	counts := NewCounts()
	secretURL := srv.URL + "/services/T0/B0/s3cr3t"
	a := New(Config{WebhookURL: secretURL, Retries: 2, RetryWaitMin: time.Millisecond}, counts)
	_, err := newActivityEnv(t, a).ExecuteActivity(a.NotifyRunFailed, thresholdFailure())
	if err == nil || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("got %v; want the 500 after 3 attempts", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), srv.URL) {
		t.Errorf("error quotes the webhook: %v", err)
	}
	if got := testutil.ToFloat64(counts.notices.WithLabelValues(resultFailed)); got != 1 {
		t.Errorf("failed notices %v, want 1", got)
	}

	// A webhook nobody listens on: the dial error must not quote it either.
	srv.Close()
	_, err = newActivityEnv(t, a).ExecuteActivity(a.NotifyRunFailed, thresholdFailure())
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("got %v; want an error without the URL", err)
	}
}

func TestNoWebhookNoNotice(t *testing.T) {
	counts := NewCounts()
	a := New(Config{}, counts)
	val, err := newActivityEnv(t, a).ExecuteActivity(a.NotifyRunFailed, thresholdFailure())
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := val.Get(&res); err != nil || res.Sent {
		t.Errorf("result %+v, %v; want not sent", res, err)
	}
	if testutil.ToFloat64(counts.notices.WithLabelValues(resultNotConfigured)) != 1 {
		t.Error("not counted as not configured")
	}
}

func TestWebhookURLFromEnvOrFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "webhook")
	if err := os.WriteFile(file, []byte("https://hooks.example.com/x/y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env     map[string]string
		want    string
		wantErr bool
	}{
		{env: nil, want: ""},
		{env: map[string]string{EnvWebhookURL: "https://hooks.example.com/a"}, want: "https://hooks.example.com/a"},
		{env: map[string]string{EnvWebhookURLFile: file}, want: "https://hooks.example.com/x/y"},
		{env: map[string]string{EnvWebhookURL: "https://hooks.example.com/a", EnvWebhookURLFile: file}, want: "https://hooks.example.com/a"},
		{env: map[string]string{EnvWebhookURL: "hooks.example.com/secret"}, wantErr: true},
		{env: map[string]string{EnvWebhookURLFile: filepath.Join(t.TempDir(), "none")}, wantErr: true},
	} {
		got, err := WebhookURLFromEnv(func(k string) string { return c.env[k] })
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("%v: got %q, %v", c.env, got, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error quotes the URL: %v", err)
		}
	}
}

func TestCountsStartAtZero(t *testing.T) {
	if n := testutil.CollectAndCount(NewCounts()); n != 3 {
		t.Errorf("%d series, want sent, failed and not_configured", n)
	}
}
