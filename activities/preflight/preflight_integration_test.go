//go:build integration

package preflight

import (
	"errors"
	"os"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities/internal/activitytest"
	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/kafkaconn"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/temporalclient"
)

// localStack checks the local stack (bin/stackctl up), connecting as the
// environment says (TEMPORAL_TLS_*, FLOWPROOF_KAFKA_*), so that the test
// runs on either profile of the stack.
func localStack(t *testing.T) *Activities {
	t.Helper()
	addrs := localstack.FromEnv()
	temporal, err := temporalclient.Options(temporalclient.Overrides{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kafka, err := kafkaconn.FromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	kafkaOptions, err := kafka.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{
		KafkaBrokers:  addrs.KafkaBrokers,
		KafkaOptions:  kafkaOptions,
		FlinkURL:      addrs.FlinkURL,
		SQLGatewayURL: addrs.SQLGatewayURL,
		Temporal:      temporal,
		EndpointURL:   addrs.EndpointURL,
		TokenURL:      addrs.TokenURL,
	})
}

func TestCheckHealthOfTheLocalStack(t *testing.T) {
	a := localStack(t)
	env := activitytest.Env(a)
	val, err := env.ExecuteActivity(a.CheckHealth, CheckHealthInput{WantBrokers: 3, WantTaskManagers: 1})
	if err != nil {
		t.Fatalf("CheckHealth: %v", err)
	}
	var res CheckHealthResult
	if err := val.Get(&res); err != nil {
		t.Fatal(err)
	}
	// The reference endpoint reports its store, which follows its row.
	want := []string{"kafka", "flink-jobmanager", "sql-gateway", "temporal", "endpoint", "endpoint-store", "token-service"}
	if len(res.Components) != len(want) {
		t.Fatalf("components %+v, want %v", res.Components, want)
	}
	for i, c := range res.Components {
		t.Logf("%-16s healthy=%v %4dms %s", c.Component, c.Healthy, c.LatencyMillis, c.Detail)
		if c.Component != want[i] || !c.Healthy {
			t.Errorf("component %d = %+v, want %s healthy", i, c, want[i])
		}
	}
}

func TestCheckHealthNamesEachUnhealthyComponent(t *testing.T) {
	a := localStack(t)
	// Nothing listens on port 1; and no stack has 99 brokers.
	a.cfg.EndpointURL = "http://127.0.0.1:1"
	env := activitytest.Env(a)
	_, err := env.ExecuteActivity(a.CheckHealth, CheckHealthInput{WantBrokers: 99, WantTaskManagers: 1})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != errtype.Unhealthy || appErr.NonRetryable() {
		t.Fatalf("err = %v, want a retryable %s", err, errtype.Unhealthy)
	}
	for _, want := range []string{"2 of 6", "kafka: ", "want at least 99", "endpoint: ", "127.0.0.1:1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	var res CheckHealthResult
	if err := appErr.Details(&res); err != nil || len(res.Components) != 6 {
		t.Fatalf("details %+v, %v", res, err)
	}
}
