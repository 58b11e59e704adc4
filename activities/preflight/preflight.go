// Package preflight checks, before a run starts, that every component it
// needs answers as only a working one can (see internal/health for the
// checks themselves).
package preflight

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/health"
)

// Config is the address of every component a run needs; an empty address
// makes that component's check fail with a message saying so.
type Config struct {
	KafkaBrokers []string
	// KafkaOptions are the worker's client options (TLS, SASL), so the
	// check reaches a secured cluster as every other client does.
	KafkaOptions  []kgo.Opt
	FlinkURL      string
	SQLGatewayURL string
	// Temporal is the worker's own client configuration (address,
	// namespace, TLS, API key).
	Temporal    client.Options
	EndpointURL string
	TokenURL    string
}

// Activities checks the components of Config; it holds no client, since
// every check dials afresh.
type Activities struct {
	cfg Config
}

// New returns the health activities for cfg.
func New(cfg Config) *Activities { return &Activities{cfg: cfg} }

// CheckHealthInput says what a healthy stack has.
type CheckHealthInput struct {
	WantBrokers      int `json:"want_brokers"`
	WantTaskManagers int `json:"want_task_managers"`
	// ReplicationFactor of the run's topics, which needs as many brokers;
	// 0 in runs recorded before it was asked for.
	ReplicationFactor int `json:"replication_factor,omitempty"`
}

// CheckHealthResult lists every component's check.
type CheckHealthResult struct {
	Components []health.Result `json:"components"`
}

// CheckHealth checks every component a run needs, all at once: the Kafka
// brokers and controller, the Flink JobManager (TaskManagers, free slots),
// the SQL Gateway, Temporal, the endpoint and the token service. What the
// endpoint and the token service report of their own dependencies follows
// their rows (the reference endpoint's Redis store as "endpoint-store"): the
// worker learns of them only through the service, never with their
// addresses or credentials.
//
// When any component is unhealthy it fails with a retryable
// errtype.Unhealthy error (a component may still be starting; the workflow
// bounds the attempts) naming each unhealthy component and why, and carrying
// the full result as details, because Temporal drops the result of a failed
// activity.
func (a *Activities) CheckHealth(ctx context.Context, in CheckHealthInput) (CheckHealthResult, error) {
	if in.WantBrokers < 0 || in.WantTaskManagers < 0 || in.ReplicationFactor < 0 {
		return CheckHealthResult{}, errtype.InvalidInputf("CheckHealthInput: WantBrokers (%d), WantTaskManagers (%d) and ReplicationFactor (%d) must not be negative",
			in.WantBrokers, in.WantTaskManagers, in.ReplicationFactor)
	}
	brokers, wantTaskManagers := brokerNeed(in), max(in.WantTaskManagers, 1)
	cfg := a.cfg
	checks := []struct {
		component string
		address   string
		check     func(context.Context) []health.Result
	}{
		{"kafka", strings.Join(cfg.KafkaBrokers, ","), func(ctx context.Context) []health.Result {
			return []health.Result{health.Kafka(ctx, cfg.KafkaBrokers, brokers, cfg.KafkaOptions...)}
		}},
		{"flink-jobmanager", cfg.FlinkURL, func(ctx context.Context) []health.Result {
			return []health.Result{health.FlinkJobManager(ctx, cfg.FlinkURL, wantTaskManagers)}
		}},
		{"sql-gateway", cfg.SQLGatewayURL, func(ctx context.Context) []health.Result {
			return []health.Result{health.SQLGateway(ctx, cfg.SQLGatewayURL)}
		}},
		{"temporal", cfg.Temporal.HostPort, func(ctx context.Context) []health.Result {
			return []health.Result{health.Temporal(ctx, cfg.Temporal)}
		}},
		{"endpoint", cfg.EndpointURL, func(ctx context.Context) []health.Result {
			return health.HTTPService(ctx, "endpoint", cfg.EndpointURL)
		}},
		{"token-service", cfg.TokenURL, func(ctx context.Context) []health.Result {
			return health.HTTPService(ctx, "token-service", cfg.TokenURL)
		}},
	}

	rows := make([][]health.Result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		if c.address == "" {
			rows[i] = []health.Result{{Component: c.component, Detail: "no address configured for the worker"}}
			continue
		}
		wg.Go(func() { rows[i] = c.check(ctx) })
	}
	wg.Wait()

	res := CheckHealthResult{Components: slices.Concat(rows...)}
	if err := unhealthyError(res); err != nil {
		return res, err
	}
	return res, nil
}

// brokerNeed is the brokers a run needs: as many as its replication
// factor, and as many as it expects, whichever is more; the message of a
// cluster with fewer names the replication factor when that is the need.
func brokerNeed(in CheckHealthInput) health.BrokerNeed {
	if in.ReplicationFactor > 0 && in.ReplicationFactor >= in.WantBrokers {
		return health.BrokerNeed{Min: in.ReplicationFactor, By: fmt.Sprintf("replication_factor %d", in.ReplicationFactor)}
	}
	return health.BrokerNeed{Min: max(in.WantBrokers, 1)}
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
		errtype.Unhealthy, res)
}
