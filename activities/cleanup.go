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

// DeleteGroups deletes the run's consumer groups, which would otherwise
// pile up on the cluster run after run. A group that does not exist is not
// an error.
func (a *Activities) DeleteGroups(ctx context.Context, names RunNames) error {
	groups := slices.DeleteFunc([]string{names.EnrichGroup, names.DeliverGroup, names.SplitGroup}, func(g string) bool { return g == "" })
	if len(groups) == 0 {
		return nil
	}
	responses, err := a.admin.DeleteGroups(ctx, groups...)
	if err != nil {
		return fmt.Errorf("delete consumer groups %v: %w", groups, err)
	}
	var errs []error
	for _, r := range responses.Sorted() {
		switch {
		case r.Err == nil:
			a.log.Info("consumer group deleted", zap.String("group", r.Group))
		case errors.Is(r.Err, kerr.GroupIDNotFound):
		default:
			errs = append(errs, fmt.Errorf("delete consumer group %s: %w", r.Group, r.Err))
		}
	}
	return errors.Join(errs...)
}
