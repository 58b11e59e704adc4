//go:build integration

package endpoint

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/refsvcapi"
)

// TestStoreAcceptsOneOfConcurrentCopiesOnRedis runs the race against the
// stack's real Redis (bin/stackctl up --only redis), under a prefix of its
// own that it removes afterwards.
func TestStoreAcceptsOneOfConcurrentCopiesOnRedis(t *testing.T) {
	password, err := localstack.RedisPassword(localstack.StackDir())
	if err != nil {
		t.Fatalf("redis password (run bin/stackctl up --only redis): %v", err)
	}
	client := redis.NewClient(&redis.Options{Addr: localstack.RedisAddress(), Password: password})
	prefix := "it-store-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	t.Cleanup(func() {
		keys, err := client.Keys(context.Background(), prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			err = client.Del(context.Background(), keys...).Err()
		}
		if err != nil {
			t.Errorf("remove the test's keys: %v", err)
		}
		_ = client.Close()
	})
	assertOneAcceptancePerKey(t, &store{client: client, prefix: prefix, ttl: time.Minute})
}

// TestFullStoreRefusesBatchesAndFailsHealth runs a Redis of its own (the
// stack's binary, not its server: the bound is set low) and fills it with
// accepted batches until Redis refuses a write. The endpoint must then
// answer 507 store_full, not the 503 that asks for a retry in a second, and
// its health must name the full store, so that a run fails at its health
// check instead of stalling part way through.
func TestFullStoreRefusesBatchesAndFailsHealth(t *testing.T) {
	client := startPrivateRedis(t)
	ctx := context.Background()
	h := newHarness(t, Config{Redis: client})
	if r := h.do(t, http.MethodGet, refsvcapi.HealthPath, nil); r.status != http.StatusOK || !bytes.Contains(r.body, []byte("MiB used")) {
		t.Fatalf("health before the bound: %d %s", r.status, r.body)
	}
	used, err := client.InfoMap(ctx, "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	// Room for a few thousand batches beyond what Redis holds now.
	bound := mustInt(t, used["Memory"]["used_memory"]) + 1<<20
	if err := client.ConfigSet(ctx, "maxmemory", strconv.FormatInt(bound, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	token := h.token(t, time.Hour, 1_000_000)
	var refused reply
	accepted := 0
	for i := 0; i < 20_000; i++ {
		id := fmt.Sprintf("full-p0-o%d-%d", i*10, i*10+9)
		r := h.post(t, token, runBatchBody(t, "full", id, 10), endpointapi.IdempotencyKeyHeader, id)
		if r.status != http.StatusOK {
			refused = r
			break
		}
		accepted++
	}
	if refused.status != http.StatusInsufficientStorage || !bytes.Contains(refused.body, []byte(`"store_full"`)) {
		t.Fatalf("after %d accepted batches: %d %s, want 507 store_full", accepted, refused.status, refused.body)
	}
	if accepted == 0 {
		t.Fatal("the first batch was refused: the bound left no room to fill")
	}
	t.Logf("Redis refused a write after %d accepted batches", accepted)
	if got := h.metric(t, "refsvc_endpoint_rejections_total", map[string]string{"reason": "store_full"}); got != 1 {
		t.Fatalf("store_full rejections = %v, want 1", got)
	}
	health := h.do(t, http.MethodGet, refsvcapi.HealthPath, nil)
	if health.status != http.StatusServiceUnavailable || !bytes.Contains(health.body, []byte("nearly full")) {
		t.Fatalf("health with the store full: %d %s", health.status, health.body)
	}
}

// startPrivateRedis starts Debian's redis-server on a free loopback port,
// without persistence and refusing writes when full, as the stack's does.
func startPrivateRedis(t *testing.T) *redis.Client {
	t.Helper()
	if _, err := os.Stat(localstack.RedisServerBinary); err != nil {
		t.Fatalf("redis-server (bin/stackctl up --only redis installs it): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command(localstack.RedisServerBinary, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(), "--maxmemory-policy", "noeviction")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	client := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))})
	t.Cleanup(func() { _ = client.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for client.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on port %d did not answer in 10 s: %s", port, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return client
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
