//go:build integration

package health_test

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/flowproof/flowproof/internal/health"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/searchattr"
)

// These tests need the local stack's Temporal dev server:
// `bin/stackctl up --only temporal`.

func TestTemporalHealthyAgainstLocalStack(t *testing.T) {
	addrs := localstack.FromEnv()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	res := health.Temporal(ctx, client.Options{HostPort: addrs.TemporalAddress, Namespace: addrs.TemporalNamespace})
	if !res.Healthy {
		t.Fatalf("health.Temporal(%s, %s) unhealthy: %s", addrs.TemporalAddress, addrs.TemporalNamespace, res.Detail)
	}
	if !strings.Contains(res.Detail, "namespace "+addrs.TemporalNamespace) || strings.Contains(res.Detail, "server unknown") {
		t.Errorf("detail %q lacks the namespace or the server version", res.Detail)
	}
	if res.Component != "temporal" || len(res.Addresses) != 1 || res.Addresses[0] != addrs.TemporalAddress {
		t.Errorf("result names %q at %v, want temporal at %s", res.Component, res.Addresses, addrs.TemporalAddress)
	}
}

func TestTemporalUnknownNamespaceIsUnhealthy(t *testing.T) {
	addrs := localstack.FromEnv()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	const missing = "flowproof-no-such-namespace"
	res := health.Temporal(ctx, client.Options{HostPort: addrs.TemporalAddress, Namespace: missing})
	if res.Healthy {
		t.Fatalf("health.Temporal with namespace %q reported healthy: %s", missing, res.Detail)
	}
	if !strings.Contains(res.Detail, missing) {
		t.Errorf("detail %q does not name the namespace", res.Detail)
	}
}

func TestTemporalClosedPortIsUnhealthy(t *testing.T) {
	// A port that was free a moment ago stands in for a server that is down.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("reserve a port: %v", err)
	}
	closed := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("free the port: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if res := health.Temporal(ctx, client.Options{HostPort: closed, Namespace: localstack.TemporalNamespace}); res.Healthy {
		t.Fatalf("health.Temporal at closed %s reported healthy: %s", closed, res.Detail)
	}
	if res := health.TemporalUI(ctx, "http://"+closed+"/"); res.Healthy {
		t.Fatalf("health.TemporalUI at closed %s reported healthy: %s", closed, res.Detail)
	}
}

func TestTemporalUIAgainstLocalStack(t *testing.T) {
	addrs := localstack.FromEnv()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	res := health.TemporalUI(ctx, addrs.TemporalUIURL)
	if !res.Healthy {
		t.Fatalf("health.TemporalUI(%s) unhealthy: %s", addrs.TemporalUIURL, res.Detail)
	}
	if !strings.HasPrefix(res.Detail, "ui 2.") {
		t.Errorf("detail %q lacks the UI version", res.Detail)
	}
	// The dev server's metrics listener is an HTTP server too, but not the UI.
	notUI := "http://" + localstack.Host + ":" + strconv.Itoa(localstack.TemporalMetricsPort) + "/"
	if res := health.TemporalUI(ctx, notUI); res.Healthy {
		t.Fatalf("health.TemporalUI on the metrics listener %s reported healthy: %s", notUI, res.Detail)
	}
}

func TestFlowproofSearchAttributesRegistered(t *testing.T) {
	addrs := localstack.FromEnv()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	c, err := client.DialContext(ctx, client.Options{
		HostPort:  addrs.TemporalAddress,
		Namespace: addrs.TemporalNamespace,
		Logger:    log.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		t.Fatalf("dial temporal at %s: %v", addrs.TemporalAddress, err)
	}
	defer c.Close()
	listed, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: addrs.TemporalNamespace})
	if err != nil {
		t.Fatalf("list search attributes of %s: %v", addrs.TemporalNamespace, err)
	}
	for _, want := range searchattr.Definitions() {
		got, ok := listed.GetCustomAttributes()[want.Name]
		if !ok {
			t.Errorf("search attribute %s is not registered in namespace %s", want.Name, addrs.TemporalNamespace)
			continue
		}
		if got != want.IndexedType {
			t.Errorf("search attribute %s has type %s, want %s", want.Name, got, want.IndexedType)
		}
	}
}
