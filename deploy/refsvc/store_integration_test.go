//go:build integration

package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flowproof/flowproof/deploy/refsvc/endpoint"
	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/localstack"
)

// storeTTL is the idempotency ttl of the endpoints these tests start, so
// that their keys leave the stack's Redis soon after.
const storeTTL = 10 * time.Minute

// runBatch is batch <run>-p0-o<first>-<last> of the seqs first..last.
func runBatch(runID string, first, last int64) endpointapi.BatchRequest {
	req := endpointapi.BatchRequest{BatchID: fmt.Sprintf("%s-p0-o%d-%d", runID, first, last), RunID: runID}
	for seq := first; seq <= last; seq++ {
		req.Messages = append(req.Messages, endpointapi.Message{
			CorrelationID: fmt.Sprintf("%s-%d", runID, seq), Seq: seq, LogicalQueue: "it-queue",
		})
	}
	return req
}

func uniqueRunID(prefix string) string {
	return prefix + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

func runStatsOf(t *testing.T, baseURL, runID string) endpointapi.RunStats {
	t.Helper()
	stats, err := endpointapi.FetchRunStats(t.Context(), httpClient, endpointapi.RunStatsURL(baseURL, runID))
	if err != nil {
		t.Fatalf("stats of %s: %v", runID, err)
	}
	return stats
}

// stackRedis is a client of the stack's Redis with the password stackctl
// keeps; only tests of the endpoint's store use it.
func stackRedis(t *testing.T) *redis.Client {
	t.Helper()
	password, err := localstack.RedisPassword(localstack.StackDir())
	if err != nil {
		t.Fatalf("redis password (run bin/stackctl up --only redis): %v", err)
	}
	client := redis.NewClient(&redis.Options{Addr: localstack.RedisAddress(), Password: password})
	t.Cleanup(func() { _ = client.Close() })
	if err := client.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("stack's redis: %v", err)
	}
	return client
}

// TestEndpointStoreSurvivesSIGKILL kills the endpoint between a batch and
// its retry: the restarted process must answer the retry with the stored
// response, byte for byte, and count the run as before.
func TestEndpointStoreSurvivesSIGKILL(t *testing.T) {
	u := urls(t)
	ep := startOwnEndpoint(t, "--idempotency-ttl", storeTTL.String())
	own := stackURLs{token: u.token, endpoint: ep.baseURL}
	token := mustToken(t, u).AccessToken
	runID := uniqueRunID("it-kill")
	batch := runBatch(runID, 0, 99)

	first := postBatch(t, own, token, batch, true)
	firstBatch := first.accepted(t)
	before := runStatsOf(t, ep.baseURL, runID)
	if before.Batches != 1 || before.AcceptedMessages != 100 || before.UniqueSeqs != 100 || !before.Complete {
		t.Fatalf("stats before the kill: %+v", before)
	}

	ep.kill(t)
	ep.start(t)

	retry := postBatch(t, own, token, batch, true)
	if retry.status != http.StatusOK || !bytes.Equal(retry.body, first.body) || retry.header.Get(endpointapi.ReplayedHeader) != "true" {
		t.Fatalf("retry after SIGKILL: %d replayed=%q\n%s\nwant the stored response\n%s",
			retry.status, retry.header.Get(endpointapi.ReplayedHeader), retry.body, first.body)
	}
	if after := runStatsOf(t, ep.baseURL, runID); after != before {
		t.Fatalf("stats after the kill and a retry: %+v, want them unchanged %+v", after, before)
	}
	// Batch numbers go on after the restart.
	next := postBatch(t, own, token, runBatch(runID, 100, 109), true).accepted(t)
	if next.BatchNumber <= firstBatch.BatchNumber {
		t.Fatalf("batch number %d after restart, want above %d", next.BatchNumber, firstBatch.BatchNumber)
	}
}

// TestEndpointStoreKeysExpire reads the keys of one accepted batch in the
// stack's Redis: each has a ttl, so the store stays bounded.
func TestEndpointStoreKeysExpire(t *testing.T) {
	u := urls(t)
	ep := startOwnEndpoint(t, "--idempotency-ttl", storeTTL.String())
	token := mustToken(t, u).AccessToken
	runID := uniqueRunID("it-ttl")
	batch := runBatch(runID, 0, 9)
	postBatch(t, stackURLs{token: u.token, endpoint: ep.baseURL}, token, batch, true).accepted(t)

	rdb := stackRedis(t)
	ctx := t.Context()
	for _, key := range []string{
		endpoint.DefaultKeyPrefix + "idempotency:" + strconv.Itoa(len(localstack.TokenClientID)) + ":" + localstack.TokenClientID + ":" + batch.BatchID,
		endpoint.DefaultKeyPrefix + "run:" + runID + ":figures",
		endpoint.DefaultKeyPrefix + "run:" + runID + ":seen",
	} {
		ttl, err := rdb.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= storeTTL-time.Minute || ttl > storeTTL {
			t.Errorf("ttl of %q = %s, want about %s (-2 means the key is missing, -1 that it never expires)", key, ttl, storeTTL)
		}
	}
}

// TestEndpointConcurrentRetriesCountOnce sends one batch 16 times at once
// to the real store: one acceptance, the same answer for all, and the run
// counted once.
func TestEndpointConcurrentRetriesCountOnce(t *testing.T) {
	u := urls(t)
	ep := startOwnEndpoint(t, "--idempotency-ttl", storeTTL.String())
	own := stackURLs{token: u.token, endpoint: ep.baseURL}
	token := mustToken(t, u).AccessToken
	runID := uniqueRunID("it-race")
	batch := runBatch(runID, 0, 49)
	bodies := make([][]byte, 16)
	var wg sync.WaitGroup
	for i := range bodies {
		wg.Go(func() {
			r := postBatch(t, own, token, batch, true)
			if r.status == http.StatusOK {
				bodies[i] = r.body
			}
		})
	}
	wg.Wait()
	for i, body := range bodies {
		if !bytes.Equal(body, bodies[0]) || body == nil {
			t.Fatalf("answer %d differs from answer 0:\n%s\n%s", i, body, bodies[0])
		}
	}
	stats := runStatsOf(t, ep.baseURL, runID)
	if stats.Batches != 1 || stats.AcceptedMessages != 50 || stats.DuplicatedSeqs != 0 {
		t.Fatalf("stats after 16 concurrent copies of one batch: %+v, want it counted once", stats)
	}
}
