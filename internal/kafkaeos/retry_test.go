package kafkaeos

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
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
