package kafkaeos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

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
