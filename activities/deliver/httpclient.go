package deliver

import (
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
	"go.temporal.io/sdk/log"
)

// maxRetryAfterWait caps the wait a 429 or 503 asks for; a longer one is
// left to the activity's retry.
const maxRetryAfterWait = 30 * time.Second

// retryPolicy is how often and how long a retrying client waits.
type retryPolicy struct {
	retryMax         int
	waitMin, waitMax time.Duration
}

// pooledClient is a pooled HTTP client whose every attempt ends after
// attemptTimeout.
func pooledClient(attemptTimeout time.Duration) *http.Client {
	hc := cleanhttp.DefaultPooledClient()
	hc.Timeout = attemptTimeout
	return hc
}

// newRetryingClient returns a retrying client over hc's connection pool.
// Its log lines come from go-retryablehttp itself: method, URL (with any
// user info redacted), status and wait. It never logs headers or bodies,
// which carry credentials and tokens. Building one costs a small struct, so
// each activity builds its own, logging to the activity's logger.
func newRetryingClient(hc *http.Client, p retryPolicy, logger log.Logger) *retryablehttp.Client {
	return &retryablehttp.Client{
		HTTPClient:   hc,
		Logger:       attemptLogger{logger},
		RetryWaitMin: p.waitMin,
		RetryWaitMax: p.waitMax,
		RetryMax:     p.retryMax,
		CheckRetry:   retryablehttp.DefaultRetryPolicy,
		Backoff:      cappedBackoff,
	}
}

// attemptLogger is go-retryablehttp's LeveledLogger on a Temporal logger. A
// failed attempt is a warning: whether the request failed in the end is for
// the caller to report.
type attemptLogger struct{ log.Logger }

func (l attemptLogger) Error(msg string, keyvals ...any) { l.Logger.Warn(msg, keyvals...) }

// cappedBackoff waits what a 429 or 503 asks for in Retry-After (go-
// retryablehttp's DefaultBackoff reads seconds and HTTP dates), capped at
// maxRetryAfterWait; otherwise it backs off exponentially with jitter, so
// concurrent requests that failed together do not retry together.
func cappedBackoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && resp.Header.Get("Retry-After") != "" &&
		(resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		return min(retryablehttp.DefaultBackoff(minWait, maxWait, attempt, resp), maxRetryAfterWait)
	}
	ceiling := retryablehttp.DefaultBackoff(minWait, maxWait, attempt, nil)
	if ceiling <= minWait {
		return minWait
	}
	return minWait + rand.N(ceiling-minWait)
}
