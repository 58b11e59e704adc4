package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/refsvcapi"
	"github.com/flowproof/flowproof/internal/tokenapi"
)

// Token client settings, the worker's environment variables and defaults.
const (
	envTokenClientID     = "FLOWPROOF_TOKEN_CLIENT_ID"
	envTokenClientSecret = "FLOWPROOF_TOKEN_CLIENT_SECRET"
	// maxTokenQuota is the token service's default --max-quota; the load
	// takes one token per this many messages.
	maxTokenQuota = 10_000
)

// endpointFigures is the bounded load against the running endpoint.
type endpointFigures struct {
	messages  int64
	batches   int64
	elapsed   time.Duration
	p50Millis float64
	p99Millis float64
}

func (e endpointFigures) rate() float64 {
	if e.elapsed <= 0 {
		return 0
	}
	return float64(e.messages) / e.elapsed.Seconds()
}

// loadEndpoint sends batches to the running endpoint from s.endpointClients
// goroutines over keep-alive connections, the way the in-process
// BenchmarkBatchesOf100 does, so the two can be compared: the difference is
// the real process (its store in Redis, its own scheduler share) and real
// tokens. It sends at most s.endpointMessages messages and stops after
// s.endpointMaxDuration. Only loopback addresses are accepted.
func loadEndpoint(ctx context.Context, addrs localstack.Addresses, s settings) (endpointFigures, error) {
	for _, target := range []struct{ name, url string }{{"endpoint", addrs.EndpointURL}, {"token service", addrs.TokenURL}} {
		if err := requireLoopback(target.url); err != nil {
			return endpointFigures{}, fmt.Errorf("%s: %w", target.name, err)
		}
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: s.endpointClients}}
	if err := requireNoFaults(ctx, client, addrs.EndpointURL); err != nil {
		return endpointFigures{}, err
	}

	batches := (s.endpointMessages + s.endpointBatch - 1) / s.endpointBatch
	batchesPerToken := max(1, maxTokenQuota/s.endpointBatch)
	tokens, err := fetchTokens(ctx, client, addrs.TokenURL, (batches+batchesPerToken-1)/batchesPerToken, batchesPerToken*s.endpointBatch)
	if err != nil {
		return endpointFigures{}, err
	}

	runTag := strconv.FormatInt(time.Now().UnixNano(), 36)
	loadCtx, cancel := context.WithTimeout(ctx, s.endpointMaxDuration)
	defer cancel()
	var (
		next      atomic.Int64
		messages  atomic.Int64
		sent      atomic.Int64
		mu        sync.Mutex
		latencies []float64
		firstErr  error
		wg        sync.WaitGroup
	)
	started := time.Now()
	for range s.endpointClients {
		wg.Go(func() {
			var mine []float64
			defer func() {
				mu.Lock()
				latencies = append(latencies, mine...)
				mu.Unlock()
			}()
			for loadCtx.Err() == nil {
				batch := int(next.Add(1) - 1)
				if batch >= batches {
					return
				}
				first := batch * s.endpointBatch
				count := min(s.endpointBatch, s.endpointMessages-first)
				batchID := fmt.Sprintf("bench-%s-b%d", runTag, batch)
				sentAt := time.Now()
				err := postBatch(loadCtx, client, addrs.EndpointURL, tokens[batch/batchesPerToken], batchID, batchBody(batchID, runTag, first, count))
				if loadCtx.Err() != nil {
					return // the time bound, not a failure
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("batch %s: %w", batchID, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				mine = append(mine, float64(time.Since(sentAt))/float64(time.Millisecond))
				messages.Add(int64(count))
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(started)
	if firstErr != nil {
		return endpointFigures{}, firstErr
	}
	if ctx.Err() != nil {
		return endpointFigures{}, ctx.Err()
	}
	slices.Sort(latencies)
	return endpointFigures{
		messages: messages.Load(), batches: sent.Load(), elapsed: elapsed,
		p50Millis: percentile(latencies, 0.50), p99Millis: percentile(latencies, 0.99),
	}, nil
}

// fetchTokens fetches n tokens good for quota messages each.
func fetchTokens(ctx context.Context, client *http.Client, tokenURL string, n, quota int) ([]string, error) {
	tokens := make([]string, n)
	for i := range tokens {
		token, err := fetchToken(ctx, client, tokenURL, quota)
		if err != nil {
			return nil, err
		}
		tokens[i] = token
	}
	return tokens, nil
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

// requireLoopback refuses to load anything but this machine.
func requireLoopback(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("url %q: %w", rawURL, err)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address; the benchmark only loads this machine", rawURL)
	}
	return nil
}

// requireNoFaults makes sure no fault injection is active: a benchmark
// against an endpoint that throttles on purpose would measure the faults.
func requireNoFaults(ctx context.Context, client *http.Client, endpointURL string) error {
	token, err := endpointapi.LoadAdminToken(localstack.StackDir())
	if err != nil {
		return fmt.Errorf("endpoint faults: %w", err)
	}
	state, err := endpointapi.AdminClient{BaseURL: endpointURL, Token: token, HTTP: client}.State(ctx)
	if err != nil {
		return fmt.Errorf("endpoint faults: %w", err)
	}
	if state.Active() {
		return fmt.Errorf("the endpoint has fault injection on (%+v); turn it off (DELETE %s with the admin token) before benchmarking", state, endpointapi.FaultsPath)
	}
	return nil
}

// fetchToken asks the token service for a token good for quota messages.
// The secret goes only into the request's Basic authentication.
func fetchToken(ctx context.Context, client *http.Client, tokenURL string, quota int) (string, error) {
	clientID := os.Getenv(envTokenClientID)
	if clientID == "" {
		clientID = localstack.TokenClientID
	}
	secret := os.Getenv(envTokenClientSecret)
	if secret == "" {
		// loadEndpoint accepts only loopback services, i.e. the local
		// stack, whose token service stackctl starts with this secret.
		secret = localstack.TokenClientSecret
	}
	form := url.Values{
		tokenapi.FormGrantType: {tokenapi.GrantTypeClientCredentials},
		tokenapi.FormQuota:     {strconv.Itoa(quota)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL+tokenapi.TokenPath, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e refsvcapi.ErrorResponse
		_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&e)
		return "", fmt.Errorf("token request: status %d (%s: %s)", resp.StatusCode, e.Error, e.ErrorDescription)
	}
	var tr tokenapi.TokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		return "", fmt.Errorf("token response: %w", err)
	}
	if tr.Quota < int64(quota) {
		return "", fmt.Errorf("token service granted a quota of %d, want %d (is its --max-quota lower?)", tr.Quota, quota)
	}
	return tr.AccessToken, nil
}

// postBatch sends one batch; a 200 means the endpoint accepted all of it
// (the batch ids are unique, so none is an idempotent replay). The answer is
// read and discarded, as the in-process benchmark does, so the client's
// work is the same in both.
func postBatch(ctx context.Context, client *http.Client, endpointURL, token, batchID string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpointURL+endpointapi.BatchesPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(endpointapi.IdempotencyKeyHeader, batchID)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e refsvcapi.ErrorResponse
		_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&e)
		return fmt.Errorf("status %d (%s: %s)", resp.StatusCode, e.Error, e.ErrorDescription)
	}
	if resp.Header.Get(endpointapi.ReplayedHeader) == "true" {
		return fmt.Errorf("answered as a replay of an earlier batch with the same id")
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// batchBody builds a batch of enriched-looking messages by hand, as the
// in-process benchmark does, so the client's share of the two cores stays
// small and alike in both.
func batchBody(batchID, runTag string, first, count int) []byte {
	var buf bytes.Buffer
	buf.Grow(64 + count*160)
	fmt.Fprintf(&buf, `{"batch_id":%q,"messages":[`, batchID)
	for i := range count {
		if i > 0 {
			buf.WriteByte(',')
		}
		seq := first + i
		fmt.Fprintf(&buf, `{"correlation_id":"%s-%d","seq":%d,"logical_queue":"q-%04d","run_id":"bench-%s"}`, runTag, seq, seq, seq%1000, runTag)
	}
	buf.WriteString("]}")
	return buf.Bytes()
}
