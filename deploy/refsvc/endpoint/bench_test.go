package endpoint

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/deploy/refsvc/tokens"
	"github.com/flowproof/flowproof/internal/endpointapi"
)

// BenchmarkBatchesOf100 measures the whole endpoint (instrumentation, token
// check, JSON, quota, idempotency store) over loopback HTTP with keep-alive
// connections; the client shares the machine's CPUs with the server, and
// with the store, an in-process Redis (the real one is measured by make
// bench against the running endpoint).
//
//	go test ./deploy/refsvc/endpoint -run '^$' -bench BatchesOf100 -benchtime 3s
func BenchmarkBatchesOf100(b *testing.B) {
	const batchSize = 100
	handler, _, err := NewHandler(Config{SigningKey: testKey, Redis: redisClient(miniredis.RunT(b))}, prometheus.NewRegistry(), zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	server := httptest.NewServer(handler)
	defer server.Close()
	token, _, err := tokens.Sign(testKey, "bench", time.Now(), time.Hour, 1<<50)
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var batchCounter atomic.Int64

	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			batchID := fmt.Sprintf("bench-%d", batchCounter.Add(1))
			body := benchBody(batchID, batchSize)
			req, _ := http.NewRequest(http.MethodPost, server.URL+endpointapi.BatchesPath, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set(endpointapi.IdempotencyKeyHeader, batchID)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.ReportMetric(float64(batchCounter.Load()*batchSize)/elapsed.Seconds(), "msgs/s")
}

// benchBody builds a batch body by hand, cheaper than json.Marshal, so the
// client's share of the CPUs stays small.
func benchBody(batchID string, n int) []byte {
	var buf bytes.Buffer
	buf.Grow(n * 110)
	fmt.Fprintf(&buf, `{"batch_id":%q,"messages":[`, batchID)
	for i := 0; i < n; i++ {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"correlation_id":"%s-%d","seq":%d,"logical_queue":"orders","payload":{"amount":%d}}`, batchID, i, i, i)
	}
	buf.WriteString("]}")
	return buf.Bytes()
}
