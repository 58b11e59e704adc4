package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func fakeFlink(t *testing.T, routes map[string]string) string {
	t.Helper()
	mux := http.NewServeMux()
	for route, body := range routes {
		mux.HandleFunc("GET "+route, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
		})
	}
	server := httptest.NewServer(mux)
	t.Cleanup(server.Close)
	return server.URL
}

func TestFlinkJobManagerCountsTaskManagersAndSlots(t *testing.T) {
	url := fakeFlink(t, map[string]string{
		"/overview":     `{"flink-version":"2.2.0","taskmanagers":2,"slots-total":8,"slots-available":5,"jobs-running":1}`,
		"/taskmanagers": `{"taskmanagers":[{"id":"tm-b","slotsNumber":4,"freeSlots":1},{"id":"tm-a","slotsNumber":4,"freeSlots":4}]}`,
	})
	ctx := context.Background()
	if res := FlinkJobManager(ctx, url, 2); !res.Healthy || res.Detail != "flink 2.2.0, 2 TaskManagers, 5/8 slots free, 1 jobs running" {
		t.Errorf("two TaskManagers wanted: %+v", res)
	}
	if res := FlinkJobManager(ctx, url, 3); res.Healthy || !strings.Contains(res.Detail, "want at least 3 TaskManagers, registered: [tm-a, tm-b]") {
		t.Errorf("three TaskManagers wanted: %+v", res)
	}
}

func TestSQLGatewayReportsItsVersions(t *testing.T) {
	url := fakeFlink(t, map[string]string{
		"/api_versions": `{"versions":["V1","V2","V3","V4"]}`,
		"/v4/info":      `{"productName":"Apache Flink","version":"2.2.0"}`,
	})
	if res := SQLGateway(context.Background(), url); !res.Healthy || res.Detail != "Apache Flink 2.2.0 SQL Gateway, REST API v1-v4" {
		t.Errorf("gateway: %+v", res)
	}
}

func TestFlinkChecksReportAClosedPort(t *testing.T) {
	server := httptest.NewServer(http.NotFoundHandler())
	url := server.URL
	server.Close()
	ctx := context.Background()
	for _, res := range []Result{FlinkJobManager(ctx, url, 1), SQLGateway(ctx, url)} {
		if res.Healthy || !strings.Contains(res.Detail, "connection refused") {
			t.Errorf("%s on a closed port: %+v", res.Component, res)
		}
	}
	if res := SQLGateway(ctx, ""); res.Healthy || !strings.Contains(res.Detail, "base URL is empty") {
		t.Errorf("empty URL: %+v", res)
	}
}
