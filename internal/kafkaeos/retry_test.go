package kafkaeos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A coordinator that is still being made (new data: Kafka makes its
// offsets topic when first asked) answers COORDINATOR_NOT_AVAILABLE, then
// COORDINATOR_LOAD_IN_PROGRESS; both are ridden out, also when wrapped.
func TestRetryRetriableRidesOutACoordinatorBeingMade(t *testing.T) {
	answers := []error{
		fmt.Errorf("committed offsets: %w", kerr.CoordinatorNotAvailable),
		kerr.CoordinatorLoadInProgress,
		nil,
	}
	calls := 0
	err := RetryRetriable(context.Background(), func() error {
		calls++
		return answers[calls-1]
	})
	if err != nil || calls != 3 {
		t.Fatalf("RetryRetriable = %v after %d calls; want nil after 3", err, calls)
	}
}

func TestRetryRetriableReturnsOtherErrorsAtOnce(t *testing.T) {
	calls := 0
	err := RetryRetriable(context.Background(), func() error {
		calls++
		return fmt.Errorf("committed offsets: %w", kerr.GroupAuthorizationFailed)
	})
	if !errors.Is(err, kerr.GroupAuthorizationFailed) || calls != 1 {
		t.Fatalf("RetryRetriable = %v after %d calls; want GROUP_AUTHORIZATION_FAILED after 1", err, calls)
	}
}

// addPartitionsAnswer is an AddPartitionsToTxn answer giving each partition
// of topic its error code.
func addPartitionsAnswer(topic string, codes ...int16) *kmsg.AddPartitionsToTxnResponse {
	resp := kmsg.NewPtrAddPartitionsToTxnResponse()
	rt := kmsg.NewAddPartitionsToTxnResponseTopic()
	rt.Topic = topic
	for partition, code := range codes {
		rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
		rp.Partition, rp.ErrorCode = int32(partition), code
		rt.Partitions = append(rt.Partitions, rp)
	}
	resp.Topics = append(resp.Topics, rt)
	return resp
}

// A transaction whose last commit is still writing its markers answers an
// add with CONCURRENT_TRANSACTIONS for every partition; the add waits that
// out instead of failing the chunk.
func TestAddPartitionsRidesOutATransactionStillEnding(t *testing.T) {
	concurrent := kerr.ConcurrentTransactions.Code
	answers := []*kmsg.AddPartitionsToTxnResponse{
		addPartitionsAnswer("raw", concurrent, concurrent, concurrent),
		addPartitionsAnswer("raw", 0, 0, 0),
	}
	calls := 0
	err := RetryRetriable(context.Background(), func() error {
		calls++
		return addPartitionsError("raw.chunk-3", answers[calls-1])
	})
	if err != nil || calls != 2 {
		t.Fatalf("add = %v after %d calls; want nil after 2", err, calls)
	}
}

// A partition that may not be written fails the add at once, named; the
// partitions the coordinator therefore did not try are not what it says.
func TestAddPartitionsFailsAtOnceOnARefusedPartition(t *testing.T) {
	notAttempted := kerr.OperationNotAttempted.Code
	answer := addPartitionsAnswer("raw", notAttempted, kerr.TopicAuthorizationFailed.Code, notAttempted)
	calls := 0
	err := RetryRetriable(context.Background(), func() error {
		calls++
		return addPartitionsError("raw.chunk-3", answer)
	})
	if !errors.Is(err, kerr.TopicAuthorizationFailed) || calls != 1 {
		t.Fatalf("add = %v after %d calls; want TOPIC_AUTHORIZATION_FAILED after 1", err, calls)
	}
	if msg := err.Error(); !strings.Contains(msg, "raw[1]") || strings.Contains(msg, "raw[0]") || strings.Contains(msg, "raw[2]") {
		t.Errorf("error %q; want it to name raw[1] alone", msg)
	}
}

// waitsOf returns the waits retryRetriable makes while fn answers errs in
// turn and then nil.
func waitsOf(t *testing.T, errs ...error) []time.Duration {
	t.Helper()
	var waits []time.Duration
	calls := 0
	err := retryRetriable(context.Background(), func() error {
		calls++
		if calls > len(errs) {
			return nil
		}
		return errs[calls-1]
	}, func(_ context.Context, d time.Duration) error {
		waits = append(waits, d)
		return nil
	})
	if err != nil {
		t.Fatalf("retryRetriable = %v; want nil", err)
	}
	return waits
}

// A lane's next chunk asks its coordinator while the last commit's markers
// are still being written, which takes milliseconds: it is asked again
// after endingTransactionWait, not after the backoff of a coordinator
// that moved, which cost a lane 50–150 ms a chunk.
func TestATransactionStillEndingIsAskedAgainSoon(t *testing.T) {
	ending := fmt.Errorf("add partitions: %w", kerr.ConcurrentTransactions)
	got := waitsOf(t, ending, ending, ending)
	want := []time.Duration{endingTransactionWait, endingTransactionWait, endingTransactionWait}
	if !slices.Equal(got, want) {
		t.Errorf("waits for a transaction still ending = %v; want %v", got, want)
	}
}

// A transaction that takes longer to end than its quick retries, and any
// other retriable error, backs off from firstBackoff to maxBackoff, so a
// stuck coordinator is not asked every few milliseconds for ten seconds.
func TestRetriesBackOffWhenTheyLast(t *testing.T) {
	loading := kerr.CoordinatorLoadInProgress
	got := waitsOf(t, loading, loading, loading, loading, loading, loading)
	want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond,
		400 * time.Millisecond, 800 * time.Millisecond, time.Second}
	if !slices.Equal(got, want) {
		t.Errorf("waits for a coordinator loading = %v; want %v", got, want)
	}

	var stuck []error
	for range endingTransactionRetries + 2 {
		stuck = append(stuck, kerr.ConcurrentTransactions)
	}
	got = waitsOf(t, stuck...)
	if len(got) != endingTransactionRetries+2 || got[endingTransactionRetries-1] != endingTransactionWait ||
		got[endingTransactionRetries] != firstBackoff || got[endingTransactionRetries+1] != 2*firstBackoff {
		t.Errorf("waits for a transaction that does not end = %v; want %d of %v, then %v and %v",
			got, endingTransactionRetries, endingTransactionWait, firstBackoff, 2*firstBackoff)
	}
}
