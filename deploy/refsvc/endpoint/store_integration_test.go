//go:build integration

package endpoint

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flowproof/flowproof/internal/localstack"
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
