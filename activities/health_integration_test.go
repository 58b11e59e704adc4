//go:build integration

package activities

import (
	"errors"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"
)

func TestCheckHealthOfTheLocalStack(t *testing.T) {
	a := deliverITActivities(t)
	env := deliverITEnv(a)
	val, err := env.ExecuteActivity(a.CheckHealth, CheckHealthInput{WantBrokers: 3, WantTaskManagers: 1})
	if err != nil {
		t.Fatalf("CheckHealth: %v", err)
	}
	var res CheckHealthResult
	if err := val.Get(&res); err != nil {
		t.Fatal(err)
	}
	want := []string{"kafka", "flink-jobmanager", "sql-gateway", "temporal", "endpoint", "token-service"}
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
	a := deliverITActivities(t)
	// Nothing listens on port 1; and no stack has 99 brokers.
	a.cfg.EndpointURL = "http://127.0.0.1:1"
	env := deliverITEnv(a)
	_, err := env.ExecuteActivity(a.CheckHealth, CheckHealthInput{WantBrokers: 99, WantTaskManagers: 1})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ErrTypeUnhealthy || appErr.NonRetryable() {
		t.Fatalf("err = %v, want a retryable %s", err, ErrTypeUnhealthy)
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
