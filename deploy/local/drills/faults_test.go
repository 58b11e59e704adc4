package drills

import (
	"errors"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/drillapi"
	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/errtype"
)

func TestEveryFaultOfTheContractIsImplemented(t *testing.T) {
	for _, name := range drillapi.Faults {
		if _, ok := faults[name]; !ok {
			t.Errorf("fault %q of drillapi has no implementation", name)
		}
	}
	if len(faults) != len(drillapi.Faults) {
		t.Errorf("%d faults implemented, drillapi lists %d", len(faults), len(drillapi.Faults))
	}
}

func TestInvalidFaultRequestsFailForGood(t *testing.T) {
	for _, req := range []drillapi.FaultRequest{
		{Fault: "kill-everything", RunID: "r1"},
		{Fault: drillapi.KillBroker},
		{Fault: drillapi.EndpointLatency, RunID: "r1", HoldSeconds: -1},
	} {
		_, err := validate(req)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != errtype.InvalidInput || !appErr.NonRetryable() {
			t.Errorf("%+v: error %v; want a non-retryable %s", req, err, errtype.InvalidInput)
		}
	}
	if _, err := validate(drillapi.FaultRequest{Fault: drillapi.KillWorker, RunID: "r1"}); err != nil {
		t.Errorf("valid request refused: %v", err)
	}
}

func TestTheBrokerLeadingMostPartitionsIsPicked(t *testing.T) {
	if got := mostLeading(map[int32]int{1: 30, 2: 40, 3: 30}); got != 2 {
		t.Errorf("picked %d; want 2, the leader of most", got)
	}
	if got := mostLeading(map[int32]int{3: 50, 2: 50}); got != 2 {
		t.Errorf("picked %d among equals; want the lowest id, 2", got)
	}
}

func TestEndpointFaultsSayWhatTheyDo(t *testing.T) {
	for _, c := range []struct {
		setting endpointapi.Faults
		want    string
	}{
		{endpointErrors, "503 on 20% of batches"},
		{endpointThrottle, "429 with Retry-After 1s on 50% of batches"},
		{endpointLatency, "500 ms more per batch"},
		{endpointapi.Faults{}, "no fault"},
	} {
		if got := describeEndpointFaults(c.setting); got != c.want {
			t.Errorf("describe %+v = %q; want %q", c.setting, got, c.want)
		}
	}
}
