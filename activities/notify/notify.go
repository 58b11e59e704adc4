// Package notify tells a chat system that a run failed: the activity
// NotifyRunFailed posts a Slack-compatible message (JSON with "text" and
// "blocks"; Mattermost, Rocket.Chat and Teams' Slack-compatible hooks take
// it too) to a webhook the worker is configured with, naming the run, why it
// failed (the broken thresholds), a link to it in the Temporal UI and the
// `starter report` command for it.
//
// The webhook URL is a secret (a Slack URL lets anyone post): it comes from
// the worker's environment or a file, never from workflow input, and it is
// never logged nor put in an error, which Temporal would keep in history.
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/redact"
)

// Environment variables of the worker for the webhook.
const (
	EnvWebhookURL     = "FLOWPROOF_WEBHOOK_URL"
	EnvWebhookURLFile = "FLOWPROOF_WEBHOOK_URL_FILE"
)

// Config is what the worker knows about where notices go.
type Config struct {
	// WebhookURL receives the notices; empty: none are sent. Secret.
	WebhookURL string
	// TemporalUIURL is the base of the Temporal Web UI's links (say
	// https://temporal.example.com); empty: the notice has no link.
	TemporalUIURL string
	// Retries of a failed POST (5xx, 429, connection errors) before the
	// notice counts as failed; 0 means 4.
	Retries int
	// RetryWaitMin is the first wait between attempts; 0 means 1 s.
	RetryWaitMin time.Duration
}

// WebhookURLFromEnv reads the webhook URL from $FLOWPROOF_WEBHOOK_URL, or
// else from the file $FLOWPROOF_WEBHOOK_URL_FILE names (a mounted secret).
// Both unset: "", no webhook.
func WebhookURLFromEnv(getenv func(string) string) (string, error) {
	raw := strings.TrimSpace(getenv(EnvWebhookURL))
	if raw == "" {
		file := strings.TrimSpace(getenv(EnvWebhookURLFile))
		if file == "" {
			return "", nil
		}
		content, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: %w", EnvWebhookURLFile, err)
		}
		raw = strings.TrimSpace(string(content))
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		// Not quoted: the value is the secret.
		return "", fmt.Errorf("the webhook URL (%s or %s) is not an http(s) URL", EnvWebhookURL, EnvWebhookURLFile)
	}
	return raw, nil
}

// Failure is one failed run, as the workflow knows it.
type Failure struct {
	// RunID is flowproof's run id; WorkflowID, TemporalRunID and Namespace
	// make the link to the run.
	RunID         string `json:"run_id"`
	WorkflowID    string `json:"workflow_id"`
	TemporalRunID string `json:"temporal_run_id"`
	Namespace     string `json:"namespace"`
	Status        string `json:"status"`
	// FailedStage is the stage the run ended in; FailureMessage why.
	FailedStage    string `json:"failed_stage,omitempty"`
	FailureMessage string `json:"failure,omitempty"`
	// BrokenThresholds are the thresholds the run broke, each as
	// "p99 latency 45.9 s > 15 s".
	BrokenThresholds []string `json:"broken_thresholds,omitempty"`
	Messages         int64    `json:"messages,omitempty"`
	Verified         int64    `json:"verified,omitempty"`
}

// Result says what became of the notice.
type Result struct {
	// Sent: the webhook answered 2xx. Not sent and no error: no webhook is
	// configured on the worker that ran the activity.
	Sent     bool `json:"sent"`
	Attempts int  `json:"attempts,omitempty"`
}

// Activities posts notices; it holds the HTTP client and its counts.
type Activities struct {
	cfg    Config
	client *http.Client
	counts *Counts
}

// New returns the activities for cfg, counting into counts (nil: counts
// nobody exports).
func New(cfg Config, counts *Counts) *Activities {
	if cfg.Retries == 0 {
		cfg.Retries = 4
	}
	if cfg.RetryWaitMin == 0 {
		cfg.RetryWaitMin = time.Second
	}
	if counts == nil {
		counts = NewCounts()
	}
	hc := cleanhttp.DefaultPooledClient()
	hc.Timeout = 10 * time.Second
	return &Activities{cfg: cfg, client: hc, counts: counts}
}

// NotifyRunFailed posts f's notice. A webhook that keeps failing makes an
// error (without the URL) for the workflow to log; it never changes the
// run's ending.
func (a *Activities) NotifyRunFailed(ctx context.Context, f Failure) (Result, error) {
	logger := activity.GetLogger(ctx)
	if a.cfg.WebhookURL == "" {
		a.counts.add(resultNotConfigured)
		logger.Info("run failed; no webhook configured, no notice sent", "Run", f.RunID)
		return Result{}, nil
	}
	body, err := json.Marshal(Message(f, a.cfg.TemporalUIURL))
	if err != nil {
		return Result{}, temporal.NewNonRetryableApplicationError("encode the notice: "+err.Error(), errtype.InvalidInput, nil)
	}
	attempts, err := a.post(ctx, body)
	if err != nil {
		a.counts.add(resultFailed)
		logger.Warn("failure notice not delivered", "Run", f.RunID, "Attempts", attempts, "error", err)
		return Result{Attempts: attempts}, err
	}
	a.counts.add(resultSent)
	logger.Info("failure notice sent", "Run", f.RunID, "Attempts", attempts)
	return Result{Sent: true, Attempts: attempts}, nil
}

// post sends body with go-retryablehttp's retries (5xx, 429 with its
// Retry-After, connection errors) and returns how many attempts it made.
// Its errors never hold the webhook's URL.
func (a *Activities) post(ctx context.Context, body []byte) (int, error) {
	attempts := 0
	client := &retryablehttp.Client{
		HTTPClient:   a.client,
		RetryWaitMin: a.cfg.RetryWaitMin,
		RetryWaitMax: 30 * time.Second,
		RetryMax:     a.cfg.Retries,
		CheckRetry:   retryablehttp.DefaultRetryPolicy,
		Backoff:      retryablehttp.DefaultBackoff,
		// No logger: go-retryablehttp's lines quote the URL.
		RequestLogHook: func(retryablehttp.Logger, *http.Request, int) { attempts++ },
		ErrorHandler:   retryablehttp.PassthroughErrorHandler,
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, a.cfg.WebhookURL, body)
	if err != nil {
		return 0, errors.New("webhook: cannot build the request for the configured URL")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return attempts, fmt.Errorf("webhook: POST failed after %d attempts: %s", attempts, redact.Values(redact.Text(err.Error()), a.cfg.WebhookURL))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return attempts, fmt.Errorf("webhook: POST answered %s after %d attempts", resp.Status, attempts)
	}
	return attempts, nil
}

const (
	resultSent          = "sent"
	resultFailed        = "failed"
	resultNotConfigured = "not_configured"
)

// Counts are the worker's notices by result, for its /metrics.
type Counts struct{ notices *prometheus.CounterVec }

// NewCounts starts every result at zero, so that the first failed notice
// is an increase.
func NewCounts() *Counts {
	c := &Counts{notices: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flowproof_failure_notices_total",
		Help: "Failure notices this worker posted to the webhook, by result: sent, failed (after retries) or not_configured (no webhook).",
	}, []string{"result"})}
	for _, r := range []string{resultSent, resultFailed, resultNotConfigured} {
		c.notices.WithLabelValues(r)
	}
	return c
}

// Sent is the count of notices the webhook took, for tests.
func (c *Counts) Sent() prometheus.Counter { return c.notices.WithLabelValues(resultSent) }

func (c *Counts) add(result string) {
	if c != nil {
		c.notices.WithLabelValues(result).Inc()
	}
}

// Describe and Collect make Counts a prometheus.Collector.
func (c *Counts) Describe(ch chan<- *prometheus.Desc) { c.notices.Describe(ch) }

// Collect exports the counts.
func (c *Counts) Collect(ch chan<- prometheus.Metric) { c.notices.Collect(ch) }
