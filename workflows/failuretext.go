package workflows

import (
	"errors"
	"strings"

	"go.temporal.io/sdk/temporal"
)

// failureText is err as a run's FailureMessage, each message said once.
//
// An activity's Go error reaches the workflow as nested ApplicationErrors,
// one per fmt.Errorf wrap, each of whose messages already holds every
// message below it; err.Error() prints each level's message and then its
// cause again, with event ids and the worker's identity around them. A
// refused Kafka login in Cleanup read five times over. Here an activity or
// child workflow is named by its type, and the first message that holds
// its causes' text ends the chain.
func failureText(err error) string {
	var b strings.Builder
	for err != nil {
		next := errors.Unwrap(err)
		switch e := err.(type) { //nolint:errorlint // one level of the chain at a time, on purpose
		case *temporal.ApplicationError:
			if next == nil || strings.Contains(e.Message(), coreText(next)) {
				b.WriteString(e.Message())
				return b.String()
			}
			if e.Message() != "" {
				b.WriteString(e.Message() + ": ")
			}
		case *temporal.ActivityError:
			b.WriteString("activity " + e.ActivityType().GetName() + ": ")
		case *temporal.ChildWorkflowExecutionError:
			b.WriteString("child workflow " + e.WorkflowType() + ": ")
		default:
			if next == nil || !strings.HasSuffix(err.Error(), next.Error()) {
				b.WriteString(err.Error())
				return b.String()
			}
			// A wrap of our own ("health check: %w"): its words, then its cause.
			b.WriteString(strings.TrimSuffix(err.Error(), next.Error()))
		}
		err = next
	}
	return b.String()
}

// coreText is the text of err without what Temporal puts around it.
func coreText(err error) string {
	if e, ok := err.(*temporal.ApplicationError); ok { //nolint:errorlint // this level only, not its causes
		return e.Message()
	}
	return err.Error()
}
