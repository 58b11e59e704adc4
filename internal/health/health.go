// Package health checks the components a flowproof run depends on, for real:
// it asks each one a question that only a working component can answer
// (Kafka metadata, Flink's TaskManager list, Temporal's namespace, ...).
//
// The pipeline's Health activity and the local stack's readiness checks
// (deploy/local/stackctl) both use it, so "ready" means the same everywhere.
package health

import (
	"context"
	"time"

	"github.com/flowproof/flowproof/internal/redact"
)

// Result is the outcome of one component's check.
type Result struct {
	Component string `json:"component"`
	Healthy   bool   `json:"healthy"`
	// Detail says what was seen ("3 brokers, controller 2") or, when
	// unhealthy, why ("dial tcp 127.0.0.1:19092: connection refused").
	Detail        string   `json:"detail"`
	Addresses     []string `json:"addresses,omitempty"`
	LatencyMillis int64    `json:"latency_ms"`
}

// run times check and turns its error into an unhealthy Result. Addresses
// and the detail are redacted: a Result goes into logs and workflow
// history, and an address or a client's error may carry credentials.
func run(ctx context.Context, component string, addresses []string, check func(context.Context) (string, error)) Result {
	start := time.Now()
	detail, err := check(ctx)
	res := Result{
		Component:     component,
		Healthy:       err == nil,
		Detail:        redact.Text(detail),
		LatencyMillis: time.Since(start).Milliseconds(),
	}
	for _, address := range addresses {
		res.Addresses = append(res.Addresses, redact.URL(address))
	}
	if err != nil {
		res.Detail = redact.Text(err.Error())
	}
	return res
}
