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
	mux.HandleFunc("GET /with-store/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"status":"ok","service":"endpoint","uptime_seconds":5,"dependencies":[{"name":"store","healthy":true,"detail":"redis 127.0.0.1:16379, 3 keys","latency_ms":1}]}`))
	})
	mux.HandleFunc("GET /store-down/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"degraded","service":"endpoint","uptime_seconds":5,"dependencies":[{"name":"store","healthy":false,"detail":"redis 127.0.0.1:16379: connection refused"}]}`))
	})
	server := httptest.NewServer(mux)
	defer server.Close()
	ctx := context.Background()

	ok := only(t, HTTPService(ctx, "endpoint", server.URL+"/ok/"))
	if !ok.Healthy || ok.Component != "endpoint" || ok.Detail != "endpoint ok, up 1m15s" {
		t.Fatalf("healthy service: %+v", ok)
	}
	failing := only(t, HTTPService(ctx, "endpoint", server.URL+"/failing"))
	if failing.Healthy || !strings.Contains(failing.Detail, "status 503: draining") {
		t.Fatalf("failing service: %+v", failing)
	}
	missing := only(t, HTTPService(ctx, "endpoint", server.URL+"/absent"))
	if missing.Healthy || !strings.Contains(missing.Detail, "status 404") {
		t.Fatalf("missing route: %+v", missing)
	}

	withStore := HTTPService(ctx, "endpoint", server.URL+"/with-store")
	if len(withStore) != 2 || !withStore[0].Healthy || withStore[1].Component != "endpoint-store" || !withStore[1].Healthy ||
		withStore[1].Detail != "redis 127.0.0.1:16379, 3 keys" {
		t.Fatalf("service with a healthy store: %+v", withStore)
	}
	storeDown := HTTPService(ctx, "endpoint", server.URL+"/store-down")
	if len(storeDown) != 2 || storeDown[0].Healthy || !strings.Contains(storeDown[0].Detail, "status 503: degraded") ||
		storeDown[1].Healthy || !strings.Contains(storeDown[1].Detail, "connection refused") {
		t.Fatalf("service whose store is down: %+v", storeDown)
	}

	server.Close()
	down := only(t, HTTPService(ctx, "endpoint", server.URL+"/ok"))
	if down.Healthy || !strings.Contains(down.Detail, "connection refused") {
		t.Fatalf("stopped service: %+v", down)
	}
}

// only is the single row of a service that reports no dependencies.
func only(t *testing.T, rows []Result) Result {
	t.Helper()
	if len(rows) != 1 {
		t.Fatalf("%d rows, want the service's only: %+v", len(rows), rows)
	}
	return rows[0]
}

func TestHealthResultsCarryNoCredentials(t *testing.T) {
	server := httptest.NewServer(http.NotFoundHandler())
	server.Close() // refused: the client's error quotes the URL
	base := strings.Replace(server.URL, "http://", "http://flowproof:s3cret@", 1) + "/?token=t0k"
	for _, res := range []Result{
		HTTPService(context.Background(), "endpoint", base)[0],
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
