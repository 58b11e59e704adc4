package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHTTPServiceReadsHealthz(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"status":"ok","service":"endpoint","uptime_seconds":75}`))
	})
	mux.HandleFunc("GET /failing/healthz", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "draining", http.StatusServiceUnavailable)
	})
	server := httptest.NewServer(mux)
	defer server.Close()
	ctx := context.Background()

	ok := HTTPService(ctx, "endpoint", server.URL+"/ok/")
	if !ok.Healthy || ok.Component != "endpoint" || ok.Detail != "endpoint ok, up 1m15s" {
		t.Fatalf("healthy service: %+v", ok)
	}
	failing := HTTPService(ctx, "endpoint", server.URL+"/failing")
	if failing.Healthy || !strings.Contains(failing.Detail, "status 503: draining") {
		t.Fatalf("failing service: %+v", failing)
	}
	missing := HTTPService(ctx, "endpoint", server.URL+"/absent")
	if missing.Healthy || !strings.Contains(missing.Detail, "status 404") {
		t.Fatalf("missing route: %+v", missing)
	}
	server.Close()
	down := HTTPService(ctx, "endpoint", server.URL+"/ok")
	if down.Healthy || !strings.Contains(down.Detail, "connection refused") {
		t.Fatalf("stopped service: %+v", down)
	}
}

func TestHealthResultsCarryNoCredentials(t *testing.T) {
	server := httptest.NewServer(http.NotFoundHandler())
	server.Close() // refused: the client's error quotes the URL
	base := strings.Replace(server.URL, "http://", "http://flowproof:s3cret@", 1) + "/?token=t0k"
	for _, res := range []Result{
		HTTPService(context.Background(), "endpoint", base),
		TemporalUI(context.Background(), base),
		FlinkJobManager(context.Background(), base, 1),
	} {
		all := res.Detail + " " + strings.Join(res.Addresses, " ")
		if strings.Contains(all, "s3cret") || strings.Contains(all, "t0k") {
			t.Errorf("%s result carries credentials: %+v", res.Component, res)
		}
		if res.Healthy || !strings.Contains(all, "REDACTED") {
			t.Errorf("%s result: %+v, want unhealthy with the URL redacted", res.Component, res)
		}
	}
}
