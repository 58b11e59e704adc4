package workflows

import (
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/sdk/temporal"
)

// A parent reads figures only from its child's own ending, and only the
// kind it asks for: details of another kind, or of another error, are
// never taken for figures, though any JSON object decodes into a struct.
// The endings pass through the failure converter, as they do between a
// child and its parent on a real server: details arrive as payloads.
func TestFiguresAreReadOnlyFromTheChildsOwnEndingOfTheirKind(t *testing.T) {
	endings := map[string]error{
		"produce figures": temporal.NewApplicationErrorWithOptions("", "Refused", temporal.ApplicationErrorOptions{
			Details: []any{childFigures[ProduceResult]{Of: produceFigures, Figures: ProduceResult{Produced: 30_000}}},
		}),
		"deliver figures": temporal.NewApplicationErrorWithOptions("", "Refused", temporal.ApplicationErrorOptions{
			Details: []any{childFigures[DeliverResult]{Of: deliverFigures, Figures: DeliverResult{Delivered: 20_000}}},
		}),
		"other details": temporal.NewApplicationErrorWithOptions("bad input", "InvalidInput", temporal.ApplicationErrorOptions{
			Details: []any{map[string]int{"produced": 5}},
		}),
		"no details":            temporal.NewApplicationError("bad input", "InvalidInput"),
		"canceled with figures": temporal.NewCanceledError(childFigures[ProduceResult]{Of: produceFigures, Figures: ProduceResult{Produced: 10_000}}),
		"canceled":              temporal.NewCanceledError("canceled by the parent"),
		"figures further down": temporal.NewApplicationErrorWithOptions("segment failed", "", temporal.ApplicationErrorOptions{
			Cause: temporal.NewApplicationErrorWithOptions("", "Refused", temporal.ApplicationErrorOptions{
				Details: []any{childFigures[ProduceResult]{Of: produceFigures, Figures: ProduceResult{Produced: 1}}},
			}),
		}),
	}
	want := map[string]int64{"produce figures": 30_000, "canceled with figures": 10_000}
	conv := temporal.GetDefaultFailureConverter()
	for name, ending := range endings {
		t.Run(name, func(t *testing.T) {
			childFailed := conv.FailureToError(&failurepb.Failure{
				Message: "child workflow execution error",
				Cause:   conv.ErrorToFailure(ending),
				FailureInfo: &failurepb.Failure_ChildWorkflowExecutionFailureInfo{ChildWorkflowExecutionFailureInfo: &failurepb.ChildWorkflowExecutionFailureInfo{
					WorkflowType: &commonpb.WorkflowType{Name: "ProduceWorkflow"},
				}},
			})
			figures, ok := figuresOfChild[ProduceResult](childFailed, produceFigures)
			w, wanted := want[name]
			require.Equal(t, wanted, ok, "figures found")
			require.Equal(t, w, figures.Produced)
		})
	}
}
