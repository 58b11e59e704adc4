package workflows

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
)

// The children's inputs and results cross workflow runs as JSON: a run that
// continued as new, or a parent waiting on a child, decodes what an older
// worker wrote. These tests decode the payloads of the recorded histories
// into today's types, so a renamed JSON field fails here.

func recordedHistory(t *testing.T, file string) *historypb.History {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", file))
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	require.NoError(t, err)
	return h
}

func decodePayloads(t *testing.T, p *commonpb.Payloads, into any) {
	t.Helper()
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(p, into))
}

// recordedChildPayloads returns the start input and the result of a child
// workflow's recorded history.
func recordedChildPayloads(t *testing.T, file string) (input, result *commonpb.Payloads) {
	t.Helper()
	for _, e := range recordedHistory(t, file).GetEvents() {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			input = e.GetWorkflowExecutionStartedEventAttributes().GetInput()
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
			result = e.GetWorkflowExecutionCompletedEventAttributes().GetResult()
		}
	}
	require.NotNil(t, input, file)
	require.NotNil(t, result, file)
	return input, result
}

func TestRecordedProducePayloadsDecode(t *testing.T) {
	input, result := recordedChildPayloads(t, "history-50k-produce.json")
	var in ProduceInput
	decodePayloads(t, input, &in)
	require.Equal(t, int64(50_000), in.Messages)
	require.Equal(t, 5, in.LagPollEvery)
	require.Equal(t, ProduceResult{}, in.State)

	var res ProduceResult
	decodePayloads(t, result, &res)
	require.Equal(t, int64(50_000), res.Produced)
	require.Equal(t, 5, res.Chunks)
	require.Equal(t, int64(40_400), res.MaxLag)
	require.Len(t, res.LagSamples, 3)
	require.Equal(t, int64(12_445), res.DurationMillis)
	require.Equal(t, 1, res.Runs)
}

func TestRecordedDeliverPayloadsDecode(t *testing.T) {
	input, result := recordedChildPayloads(t, "history-50k-deliver.json")
	var in DeliverInput
	decodePayloads(t, input, &in)
	require.Equal(t, int64(50_000), in.Messages)
	require.Equal(t, 360, in.StallSeconds)
	require.Zero(t, in.State.Delivered)

	var res DeliverResult
	decodePayloads(t, result, &res)
	require.Equal(t, DeliverResult{
		Delivered: 50_000, Segments: 5, Batches: 554, TokenRenewals: 5, DurationMillis: 32_106, Runs: 1,
	}, res)
}
