package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/zap"
)

// DeleteTopics deletes the run's topics. A topic that does not exist (never
// created, or deleted by an earlier attempt) is not an error, so cleanup and
// cancellation can call it whatever state the run reached.
func (a *Activities) DeleteTopics(ctx context.Context, names RunNames) error {
	topics := slices.DeleteFunc(names.Topics(), func(t string) bool { return t == "" })
	if len(topics) == 0 {
		return nil
	}
	responses, err := a.admin.DeleteTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("delete topics %v: %w", topics, err)
	}
	var errs []error
	for _, r := range responses.Sorted() {
		switch {
		case r.Err == nil:
			a.log.Info("topic deleted", zap.String("topic", r.Topic))
		case errors.Is(r.Err, kerr.UnknownTopicOrPartition):
		default:
			errs = append(errs, fmt.Errorf("delete topic %s: %w (%s)", r.Topic, r.Err, r.ErrMessage))
		}
	}
	return errors.Join(errs...)
}
