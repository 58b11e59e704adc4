package drills

import (
	"context"
	"fmt"
	"strings"

	"github.com/flowproof/flowproof/internal/drillapi"
	"github.com/flowproof/flowproof/internal/endpointapi"
)

// The endpoint's fault settings of the endpoint-* drills, set for the
// drill's run only.
var (
	// endpointErrors answers a fifth of the run's batches with 503.
	endpointErrors = endpointapi.Faults{ErrorRate: 0.2, ErrorStatus: 503}
	// endpointThrottle answers half of the run's batches with 429 and
	// Retry-After: 1, so that delivery slows down and must honour it
	// without stalling.
	endpointThrottle = endpointapi.Faults{ThrottleRate: 0.5, RetryAfterSeconds: 1}
	// endpointLatency adds half a second to every batch of the run.
	endpointLatency = endpointapi.Faults{LatencyMillis: 500}
)

// endpointFault sets setting for the run during the hold and removes it
// afterwards.
func endpointFault(setting endpointapi.Faults) fault {
	return fault{
		pick: func(_ context.Context, _ *Faults, req drillapi.FaultRequest) (injection, error) {
			return injection{Target: "endpoint, run " + req.RunID}, nil
		},
		inject: func(ctx context.Context, f *Faults, req drillapi.FaultRequest, inj *injection) error {
			s := setting
			s.RunIDs = []string{req.RunID}
			set, err := f.Endpoint.SetFaults(ctx, s)
			if err != nil {
				return err
			}
			inj.Detail = "set " + describeEndpointFaults(set)
			return nil
		},
		lift: func(ctx context.Context, f *Faults, req drillapi.FaultRequest, inj *injection) error {
			if err := f.Endpoint.Reset(ctx, req.RunID); err != nil {
				return err
			}
			inj.Detail += "; cleared"
			return nil
		},
	}
}

// describeEndpointFaults names the faults a setting makes, e.g.
// "503 on 20% of batches".
func describeEndpointFaults(s endpointapi.Faults) string {
	var parts []string
	if s.ErrorRate > 0 {
		parts = append(parts, fmt.Sprintf("%d on %g%% of batches", s.ErrorStatus, 100*s.ErrorRate))
	}
	if s.ThrottleRate > 0 {
		parts = append(parts, fmt.Sprintf("429 with Retry-After %ds on %g%% of batches", s.RetryAfterSeconds, 100*s.ThrottleRate))
	}
	if s.LatencyMillis > 0 {
		parts = append(parts, fmt.Sprintf("%d ms more per batch", s.LatencyMillis))
	}
	if s.LostResponseRate > 0 {
		parts = append(parts, fmt.Sprintf("lost responses on %g%% of batches", 100*s.LostResponseRate))
	}
	if len(parts) == 0 {
		return "no fault"
	}
	return strings.Join(parts, ", ")
}
