package activities

// The HTTP side of delivery: posting one batch to the endpoint with the
// bearer token, retrying what may be retried, and reading a 401's reason.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/internal/tokenapi"
)

// endpointClient posts batches to the HTTP endpoint.
type endpointClient struct {
	batchesURL string
	http       *retryablehttp.Client
}

// retryCounterKey carries a request's *atomic.Int64 retry counter in its
// context, so one shared client counts retries per segment.
type retryCounterKey struct{}

func newEndpointClient(cfg Config, log *zap.Logger) (endpointClient, error) {
	ec := endpointClient{http: newRetryingHTTPClient(log.Named("endpoint"), 8, 100*time.Millisecond, 5*time.Second, 30*time.Second)}
	if cfg.EndpointURL != "" {
		u, err := url.Parse(strings.TrimRight(cfg.EndpointURL, "/") + tokenapi.BatchesPath)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return endpointClient{}, fmt.Errorf("activities: EndpointURL %q: want http(s)://host:port", cfg.EndpointURL)
		}
		ec.batchesURL = u.String()
	}
	// A batch is never re-sent by a person, and each is small: the
	// pool only needs room for the batches in flight.
	if t, ok := ec.http.HTTPClient.Transport.(*http.Transport); ok {
		t.MaxIdleConnsPerHost = 2 * deliverMaxInFlight
	}
	ec.http.Backoff = retryAfterBackoff
	ec.http.RequestLogHook = func(_ retryablehttp.Logger, req *http.Request, attempt int) {
		if attempt == 0 {
			return
		}
		if counter, ok := req.Context().Value(retryCounterKey{}).(*atomic.Int64); ok {
			counter.Add(1)
		}
	}
	// Keep the last answer when retries run out, so the error can say what
	// the endpoint said.
	ec.http.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return ec, nil
}

// retryAfterBackoff waits what a 429 or 503 asks for in Retry-After (capped
// at maxRetryAfterWait) and otherwise backs off exponentially with jitter,
// so concurrent batches that failed together do not retry together.
func retryAfterBackoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if wait, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return min(wait, maxRetryAfterWait)
		}
	}
	ceiling := maxWait
	if attempt < 30 {
		ceiling = min(maxWait, minWait<<attempt)
	}
	if ceiling <= minWait {
		return minWait
	}
	return minWait + rand.N(ceiling-minWait)
}

// parseRetryAfter reads Retry-After as seconds or as an HTTP date (RFC 9110
// §10.2.3).
func parseRetryAfter(value string, now time.Time) (time.Duration, bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0, false
	}
	if seconds, err := strconv.ParseInt(value, 10, 64); err == nil {
		if seconds < 0 {
			return 0, false
		}
		return time.Duration(min(seconds, int64(time.Hour/time.Second))) * time.Second, true
	}
	at, err := http.ParseTime(value)
	if err != nil {
		return 0, false
	}
	return max(at.Sub(now), 0), true
}

// postOutcome is the endpoint's final answer to one batch.
type postOutcome struct {
	answer tokenapi.BatchResponse
	// rejectReason is set when the endpoint refused the token (401).
	rejectReason string
}

// postBatch sends one batch, retrying 429, 5xx and network failures. A 401
// is an outcome, not an error: the token is used up or expired.
func (ec *endpointClient) postBatch(ctx context.Context, bearer string, b *deliveryBatch, body []byte) (postOutcome, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, ec.batchesURL, body)
	if err != nil {
		return postOutcome{}, fmt.Errorf("batch %s: build request: %w", b.id, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set(tokenapi.IdempotencyKeyHeader, b.id)

	resp, err := ec.http.Do(req)
	if resp == nil {
		if err == nil {
			err = errors.New("no response")
		}
		return postOutcome{}, fmt.Errorf("batch %s: POST %s: %w", b.id, ec.batchesURL, err)
	}
	defer resp.Body.Close()
	answerBody, readErr := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	switch {
	case resp.StatusCode == http.StatusOK:
		if readErr != nil {
			return postOutcome{}, fmt.Errorf("batch %s: read answer: %w", b.id, readErr)
		}
		var answer tokenapi.BatchResponse
		if err := json.Unmarshal(answerBody, &answer); err != nil {
			return postOutcome{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("batch %s: endpoint answer is not a batch response: %v", b.id, err), ErrTypeContractViolation, nil)
		}
		return postOutcome{answer: answer}, nil
	case resp.StatusCode == http.StatusUnauthorized:
		return postOutcome{rejectReason: rejectionReason(resp.Header.Get("WWW-Authenticate"), answerBody)}, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		// This client's retries ran out (or, for 501, do not apply); the
		// activity's retry starts the segment again from its offsets.
		return postOutcome{}, fmt.Errorf("batch %s: endpoint still answered %d, giving up on this attempt%s",
			b.id, resp.StatusCode, describeErrorBody(answerBody))
	default:
		// 4xx other than 401: the request itself is wrong, and sending it
		// again would be wrong again.
		return postOutcome{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("batch %s: endpoint refused it with %d%s", b.id, resp.StatusCode, describeErrorBody(answerBody)),
			"BatchRefused", nil)
	}
}

// rejectionReason takes the error_description of a Bearer challenge (RFC
// 6750 §3), else of the JSON body, else says that none was given.
func rejectionReason(challenge string, body []byte) string {
	if reason := challengeParam(challenge, "error_description"); reason != "" {
		return reason
	}
	if reason := challengeParam(challenge, "error"); reason != "" {
		return reason
	}
	var e tokenapi.ErrorResponse
	if json.Unmarshal(body, &e) == nil && (e.ErrorDescription != "" || e.Error != "") {
		return strings.TrimPrefix(e.Error+": "+e.ErrorDescription, ": ")
	}
	return "401 without a reason"
}

// challengeParam reads one auth-param of a WWW-Authenticate challenge, as a
// token or a quoted string.
func challengeParam(challenge, name string) string {
	rest := challenge
	for {
		i := strings.Index(rest, name+"=")
		if i < 0 {
			return ""
		}
		// The name must start a parameter, not end another one
		// ("error=" is inside "error_description=" only from the left).
		if i > 0 && !strings.ContainsRune(" ,\t", rune(rest[i-1])) {
			rest = rest[i+len(name)+1:]
			continue
		}
		value := rest[i+len(name)+1:]
		if !strings.HasPrefix(value, `"`) {
			end := strings.IndexAny(value, " ,")
			if end < 0 {
				end = len(value)
			}
			return value[:end]
		}
		var out strings.Builder
		for j := 1; j < len(value); j++ {
			switch c := value[j]; c {
			case '\\':
				if j+1 < len(value) {
					j++
					out.WriteByte(value[j])
				}
			case '"':
				return out.String()
			default:
				out.WriteByte(c)
			}
		}
		return out.String()
	}
}
