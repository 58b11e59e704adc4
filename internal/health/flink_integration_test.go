//go:build integration

package health

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowproof/flowproof/internal/localstack"
)

// These tests need the local stack's Flink: bin/stackctl up --only flink
// (three TaskManagers, the default).

var flinkDetailPattern = regexp.MustCompile(`^flink (\S+), (\d+) TaskManagers, (\d+)/(\d+) slots free, (\d+) jobs running$`)

func TestFlinkJobManagerReportsTaskManagersWithFreeSlots(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	baseURL := localstack.FromEnv().FlinkURL

	res := FlinkJobManager(ctx, baseURL, 3)
	if !res.Healthy {
		t.Fatalf("FlinkJobManager(%s, 3) unhealthy: %s", baseURL, res.Detail)
	}
	if res.Component != "flink-jobmanager" {
		t.Errorf("Component = %q, want flink-jobmanager", res.Component)
	}
	m := flinkDetailPattern.FindStringSubmatch(res.Detail)
	if m == nil {
		t.Fatalf("Detail = %q, want it to match %s", res.Detail, flinkDetailPattern)
	}
	taskManagers, _ := strconv.Atoi(m[2])
	free, _ := strconv.Atoi(m[3])
	total, _ := strconv.Atoi(m[4])
	if taskManagers < 3 {
		t.Errorf("%d TaskManagers, want at least 3", taskManagers)
	}
	if free < 1 || free > total {
		t.Errorf("%d of %d slots free, want between 1 and the total", free, total)
	}
	t.Logf("%s (%d ms)", res.Detail, res.LatencyMillis)

	// Asking for more TaskManagers than run must fail, or the check proves
	// nothing.
	more := taskManagers + 1
	if res := FlinkJobManager(ctx, baseURL, more); res.Healthy {
		t.Errorf("FlinkJobManager(%s, %d) healthy with %d TaskManagers: %s", baseURL, more, taskManagers, res.Detail)
	} else if !strings.Contains(res.Detail, "want at least "+strconv.Itoa(more)+" TaskManagers") {
		t.Errorf("unhealthy detail = %q, want it to say how many TaskManagers were wanted", res.Detail)
	}
}

func TestSQLGatewayAnswersWithTheClusterVersion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	addrs := localstack.FromEnv()

	res := SQLGateway(ctx, addrs.SQLGatewayURL)
	if !res.Healthy {
		t.Fatalf("SQLGateway(%s) unhealthy: %s", addrs.SQLGatewayURL, res.Detail)
	}
	if res.Component != "sql-gateway" {
		t.Errorf("Component = %q, want sql-gateway", res.Component)
	}
	t.Logf("%s (%d ms)", res.Detail, res.LatencyMillis)

	// The gateway must submit to this cluster, so both report one version.
	jm := FlinkJobManager(ctx, addrs.FlinkURL, 1)
	m := flinkDetailPattern.FindStringSubmatch(jm.Detail)
	if m == nil {
		t.Fatalf("JobManager detail = %q, want it to match %s", jm.Detail, flinkDetailPattern)
	}
	want := "Apache Flink " + m[1] + " SQL Gateway, REST API v1-v"
	if !strings.HasPrefix(res.Detail, want) {
		t.Errorf("Detail = %q, want it to start with %q", res.Detail, want)
	}
}

func TestFlinkChecksOnClosedPortAreUnhealthy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// Port 1 on loopback has no listener.
	const closed = "http://127.0.0.1:1"
	if res := FlinkJobManager(ctx, closed, 1); res.Healthy || !strings.Contains(res.Detail, "connection refused") {
		t.Errorf("FlinkJobManager on a closed port: healthy=%v detail=%q, want unhealthy with connection refused", res.Healthy, res.Detail)
	}
	if res := SQLGateway(ctx, closed); res.Healthy || !strings.Contains(res.Detail, "connection refused") {
		t.Errorf("SQLGateway on a closed port: healthy=%v detail=%q, want unhealthy with connection refused", res.Healthy, res.Detail)
	}
	// Each check must recognise its own service: the JobManager's REST API
	// is not a SQL Gateway.
	if res := SQLGateway(ctx, localstack.FromEnv().FlinkURL); res.Healthy {
		t.Errorf("SQLGateway against the JobManager's REST API reported healthy: %s", res.Detail)
	}
}
