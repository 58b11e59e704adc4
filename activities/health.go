package activities

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/health"
)

// ErrTypeUnhealthy is the Temporal error type of a failed health check. It
// is retryable (a component may still be starting); the workflow bounds the
// attempts. The error's details hold the CheckHealthResult.
const ErrTypeUnhealthy = "Unhealthy"

// CheckHealth checks every component a run needs, all at once: the Kafka
// brokers and controller, the Flink JobManager (TaskManagers, free slots),
// the SQL Gateway, Temporal, the endpoint and the token service.
//
// When any component is unhealthy it fails with an ErrTypeUnhealthy error
// naming each unhealthy component and why, and carrying the full result as
// details, because Temporal drops the result of a failed activity.
func (a *Activities) CheckHealth(ctx context.Context, in CheckHealthInput) (CheckHealthResult, error) {
	if in.WantBrokers < 0 || in.WantTaskManagers < 0 {
		return CheckHealthResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("CheckHealthInput: WantBrokers (%d) and WantTaskManagers (%d) must not be negative", in.WantBrokers, in.WantTaskManagers),
			"InvalidInput", nil)
	}
	wantBrokers, wantTaskManagers := max(in.WantBrokers, 1), max(in.WantTaskManagers, 1)
	cfg := a.cfg
	checks := []struct {
		component string
		address   string
		check     func(context.Context) health.Result
	}{
		{"kafka", strings.Join(cfg.KafkaBrokers, ","), func(ctx context.Context) health.Result {
			return health.Kafka(ctx, cfg.KafkaBrokers, wantBrokers)
		}},
		{"flink-jobmanager", cfg.FlinkURL, func(ctx context.Context) health.Result {
			return health.FlinkJobManager(ctx, cfg.FlinkURL, wantTaskManagers)
		}},
		{"sql-gateway", cfg.SQLGatewayURL, func(ctx context.Context) health.Result {
			return health.SQLGateway(ctx, cfg.SQLGatewayURL)
		}},
		{"temporal", cfg.TemporalAddress, func(ctx context.Context) health.Result {
			return health.Temporal(ctx, cfg.TemporalAddress, cfg.TemporalNamespace)
		}},
		{"endpoint", cfg.EndpointURL, func(ctx context.Context) health.Result {
			return health.HTTPService(ctx, "endpoint", cfg.EndpointURL)
		}},
		{"token-service", cfg.TokenURL, func(ctx context.Context) health.Result {
			return health.HTTPService(ctx, "token-service", cfg.TokenURL)
		}},
	}

	results := make([]health.Result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		if c.address == "" {
			results[i] = health.Result{Component: c.component, Detail: "no address configured for the worker"}
			continue
		}
		wg.Go(func() { results[i] = c.check(ctx) })
	}
	wg.Wait()

	res := CheckHealthResult{Components: results}
	if err := unhealthyError(res); err != nil {
		return res, err
	}
	return res, nil
}

// unhealthyError names every unhealthy component with its detail, or is nil.
func unhealthyError(res CheckHealthResult) error {
	var unhealthy []string
	for _, r := range res.Components {
		if !r.Healthy {
			unhealthy = append(unhealthy, fmt.Sprintf("%s: %s", r.Component, r.Detail))
		}
	}
	if len(unhealthy) == 0 {
		return nil
	}
	return temporal.NewApplicationError(
		fmt.Sprintf("%d of %d components unhealthy: %s", len(unhealthy), len(res.Components), strings.Join(unhealthy, "; ")),
		ErrTypeUnhealthy, res)
}
