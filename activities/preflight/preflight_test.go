package preflight

import (
	"errors"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/errtype"

	"github.com/flowproof/flowproof/internal/health"
)

func TestUnhealthyErrorNamesEveryUnhealthyComponent(t *testing.T) {
	res := CheckHealthResult{Components: []health.Result{
		{Component: "kafka", Healthy: true, Detail: "3 brokers"},
		{Component: "flink-jobmanager", Detail: "1 TaskManagers, want at least 2"},
		{Component: "endpoint", Detail: "dial tcp 127.0.0.1:1: connection refused"},
	}}
	err := unhealthyError(res)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != errtype.Unhealthy || appErr.NonRetryable() {
		t.Fatalf("err = %v, want a retryable %s", err, errtype.Unhealthy)
	}
	for _, want := range []string{"2 of 3", "flink-jobmanager: 1 TaskManagers, want at least 2", "endpoint: dial tcp"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "kafka") {
		t.Errorf("error names the healthy component: %v", err)
	}
	var details CheckHealthResult
	if err := appErr.Details(&details); err != nil || len(details.Components) != 3 {
		t.Fatalf("details = %+v, %v; want the full result", details, err)
	}
	if unhealthyError(CheckHealthResult{Components: res.Components[:1]}) != nil {
		t.Fatal("all healthy gave an error")
	}
}

func TestBrokerNeedNamesTheReplicationFactorWhenItIsTheNeed(t *testing.T) {
	for _, c := range []struct {
		in   CheckHealthInput
		want health.BrokerNeed
	}{
		{CheckHealthInput{WantBrokers: 3, ReplicationFactor: 3}, health.BrokerNeed{Min: 3, By: "replication_factor 3"}},
		{CheckHealthInput{WantBrokers: 1, ReplicationFactor: 2}, health.BrokerNeed{Min: 2, By: "replication_factor 2"}},
		{CheckHealthInput{WantBrokers: 5, ReplicationFactor: 3}, health.BrokerNeed{Min: 5}},
		{CheckHealthInput{WantBrokers: 3}, health.BrokerNeed{Min: 3}}, // recorded before replication_factor
		{CheckHealthInput{}, health.BrokerNeed{Min: 1}},
	} {
		if got := brokerNeed(c.in); got != c.want {
			t.Errorf("brokerNeed(%+v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}
