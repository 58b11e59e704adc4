package flinksql

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/flowproof/flowproof/internal/redact"
)

// Options tune the REST clients. The zero value is usable.
type Options struct {
	// RequestTimeout bounds one HTTP attempt; 0 means 30s.
	RequestTimeout time.Duration
	// RetryMax is how many times a failed attempt is retried when a retry
	// is safe (see idempotency); 0 means 4, negative means never.
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff between
	// attempts; 0 means 200ms and 3s.
	RetryWaitMin, RetryWaitMax time.Duration
	// Logger receives go-retryablehttp's notices of each attempt and retry
	// (method and URL, never headers or bodies); nil means none.
	Logger retryablehttp.LeveledLogger
}

// idempotency says whether an attempt may be repeated after a failure whose
// outcome is unknown. Submitting a statement is not: the gateway may have
// accepted it and started a job before the connection broke, so only a
// failure to connect at all (nothing was sent) is retried for it.
type idempotency int

const (
	retryOnlyUnsent idempotency = iota
	retrySafe
)

type idempotencyKey struct{}

// secretsKey holds, for the requests of a job's submission, the job's
// secrets, which Flink's answers may quote back (see SubmitJob).
type secretsKey struct{}

func withSecrets(ctx context.Context, secrets []string) context.Context {
	return context.WithValue(ctx, secretsKey{}, secrets)
}

func secretsOf(ctx context.Context) []string {
	secrets, _ := ctx.Value(secretsKey{}).([]string)
	return secrets
}

// restClient is the transport both Gateway and JobManager build on: one
// base URL, JSON in and out, Flink's error bodies decoded into *APIError,
// retries only where they cannot duplicate an effect.
type restClient struct {
	base *url.URL
	http *retryablehttp.Client
}

func newRESTClient(baseURL string, opts Options) (*restClient, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(baseURL), "/"))
	if err != nil {
		return nil, fmt.Errorf("flinksql: base URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("flinksql: base URL %q: want http(s)://host:port", baseURL)
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	switch {
	case opts.RetryMax == 0:
		opts.RetryMax = 4
	case opts.RetryMax < 0:
		opts.RetryMax = 0
	}
	if opts.RetryWaitMin <= 0 {
		opts.RetryWaitMin = 200 * time.Millisecond
	}
	if opts.RetryWaitMax <= 0 {
		opts.RetryWaitMax = 3 * time.Second
	}
	hc := cleanhttp.DefaultPooledClient()
	hc.Timeout = opts.RequestTimeout
	rc := &retryablehttp.Client{
		HTTPClient:   hc,
		RetryWaitMin: opts.RetryWaitMin,
		RetryWaitMax: opts.RetryWaitMax,
		RetryMax:     opts.RetryMax,
		CheckRetry:   checkRetry,
		Backoff:      retryablehttp.DefaultBackoff,
		// The last answer is handed back instead of a bare "giving up"
		// error, so Flink's error body still reaches the caller.
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	if opts.Logger != nil {
		rc.Logger = opts.Logger
	}
	return &restClient{base: u, http: rc}, nil
}

// checkRetry retries connection failures and the statuses a restarting or
// overloaded REST endpoint answers with, but for a request that is not safe
// to repeat only when the connection was never made.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	safe, _ := ctx.Value(idempotencyKey{}).(idempotency)
	if err != nil {
		if isUnsent(err) {
			return true, nil
		}
		if safe != retrySafe || isPermanentTransportError(err) {
			return false, nil
		}
		return true, nil
	}
	if safe != retrySafe {
		return false, nil
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true, nil
	}
	return false, nil
}

// isUnsent reports a failure to open the connection: nothing reached the
// server, so any request may be tried again.
func isUnsent(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

func isPermanentTransportError(err error) bool {
	var certErr *x509.UnknownAuthorityError
	var urlErr *url.Error
	if errors.As(err, &certErr) {
		return true
	}
	return errors.As(err, &urlErr) && strings.Contains(urlErr.Error(), "unsupported protocol scheme")
}

// do sends one request with an optional JSON body and decodes a JSON answer
// into out (when out is not nil). path is relative to the base URL and may
// carry a query.
func (c *restClient) do(ctx context.Context, method, path string, safe idempotency, in, out any) error {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("flinksql: %s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(raw)
	}
	ctx = context.WithValue(ctx, idempotencyKey{}, safe)
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return fmt.Errorf("flinksql: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("flinksql: %s %s: %w", method, path, ctxErr)
		}
		return fmt.Errorf("flinksql: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("flinksql: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := newAPIError(method, pathOnly(path), resp.StatusCode, raw)
		// Before anything quotes the answer: Error shortens it and could
		// cut a secret where replacing it no longer finds it.
		for i, m := range apiErr.Messages {
			apiErr.Messages[i] = redact.Values(m, secretsOf(ctx)...)
		}
		return apiErr
	}
	if out == nil || len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("flinksql: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func pathOnly(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}
