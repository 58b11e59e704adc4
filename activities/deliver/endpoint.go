package deliver

// The HTTP side of delivery: posting one batch to the endpoint with the
// bearer token, retrying what may be retried, and reading a 401's reason.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/refsvcapi"
)

// endpointClient posts batches to the HTTP endpoint. Its connection pool is
// shared by every segment of the worker; each segment posts through a
// batchPoster of its own.
type endpointClient struct {
	batchesURL string
	pool       *http.Client
	retry      retryPolicy
}

func newEndpointClient(endpointURL string) (endpointClient, error) {
	ec := endpointClient{
		pool:  pooledClient(30 * time.Second),
		retry: retryPolicy{retryMax: 8, waitMin: 100 * time.Millisecond, waitMax: 5 * time.Second},
	}
	if endpointURL != "" {
		u, err := url.Parse(strings.TrimRight(endpointURL, "/") + endpointapi.BatchesPath)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return endpointClient{}, fmt.Errorf("EndpointURL %q: want http(s)://host:port", endpointURL)
		}
		ec.batchesURL = u.String()
	}
	// A batch is small and never re-sent by a person: the pool only needs
	// room for the batches in flight.
	if t, ok := ec.pool.Transport.(*http.Transport); ok {
		t.MaxIdleConnsPerHost = 2 * deliverMaxInFlight
	}
	return ec, nil
}

// batchPoster posts one segment's batches: it logs to the segment's logger
// and counts the segment's retried requests.
type batchPoster struct {
	url  string
	http *retryablehttp.Client
}

func (ec *endpointClient) poster(logger log.Logger, retries *atomic.Int64) *batchPoster {
	client := newRetryingClient(ec.pool, ec.retry, logger)
	client.RequestLogHook = func(_ retryablehttp.Logger, _ *http.Request, attempt int) {
		if attempt > 0 {
			retries.Add(1)
		}
	}
	// Keep the last answer when retries run out, so the error can say what
	// the endpoint said.
	client.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return &batchPoster{url: ec.batchesURL, http: client}
}

// postOutcome is the endpoint's final answer to one batch.
type postOutcome struct {
	answer endpointapi.BatchResponse
	// rejectReason is set when the endpoint refused the token (401).
	rejectReason string
	// replayed is true when the endpoint answered from its idempotency
	// store: it had accepted the batch before.
	replayed bool
}

// postBatch sends one batch, retrying 429, 5xx and network failures. A 401
// is an outcome, not an error: the token is used up or expired.
func (p *batchPoster) postBatch(ctx context.Context, bearer string, b *deliveryBatch, body []byte) (postOutcome, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, p.url, body)
	if err != nil {
		return postOutcome{}, fmt.Errorf("batch %s: build request: %w", b.id, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set(endpointapi.IdempotencyKeyHeader, b.id)

	resp, err := p.http.Do(req)
	if resp == nil {
		if err == nil {
			err = errors.New("no response")
		}
		return postOutcome{}, fmt.Errorf("batch %s: POST %s: %w", b.id, p.url, err)
	}
	defer resp.Body.Close()
	answerBody, readErr := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	switch {
	case resp.StatusCode == http.StatusOK:
		if readErr != nil {
			return postOutcome{}, fmt.Errorf("batch %s: read answer: %w", b.id, readErr)
		}
		answer, err := decodeBatchAnswer(answerBody, b)
		if err != nil {
			return postOutcome{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("batch %s: endpoint answer is not a batch response: %v", b.id, err), errtype.ContractViolation, nil)
		}
		return postOutcome{answer: answer, replayed: resp.Header.Get(endpointapi.ReplayedHeader) == "true"}, nil
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
			errtype.BatchRefused, nil)
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
	var e refsvcapi.ErrorResponse
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
