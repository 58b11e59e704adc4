package endpoint

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/internal/endpointapi"
)

func TestFaultAPINeedsTheAdminToken(t *testing.T) {
	h := newHarness(t, Config{})
	batchToken := h.token(t, time.Hour, 1000)
	setting := []byte(`{"run_ids":["r"],"error_rate":1}`)
	for name, tc := range map[string]struct {
		authorization string
		want          int
	}{
		"no credential":           {"", http.StatusUnauthorized},
		"basic scheme":            {"Basic " + testAdminToken, http.StatusUnauthorized},
		"empty bearer":            {"Bearer ", http.StatusUnauthorized},
		"wrong token":             {"Bearer " + strings.Repeat("x", len(testAdminToken)), http.StatusForbidden},
		"the token's prefix":      {"Bearer " + testAdminToken[:len(testAdminToken)-1], http.StatusForbidden},
		"a batch token":           {"Bearer " + batchToken, http.StatusForbidden},
		"the admin token, padded": {"Bearer " + testAdminToken + "x", http.StatusForbidden},
	} {
		t.Run(name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
				var headers []string
				if tc.authorization != "" {
					headers = []string{"Authorization", tc.authorization}
				}
				r := h.do(t, method, endpointapi.FaultsPath, setting, headers...)
				if r.status != tc.want {
					t.Errorf("%s: %d, want %d", method, r.status, tc.want)
				}
				if strings.Contains(string(r.body), testAdminToken) {
					t.Errorf("%s: answer %s echoes the admin token", method, r.body)
				}
			}
		})
	}
	if f := h.ep.Faults("r"); f.Active() {
		t.Fatalf("a refused request changed the faults: %+v", f)
	}
	if r := h.admin(t, http.MethodPost, endpointapi.FaultsPath, setting); r.status != http.StatusOK {
		t.Fatalf("with the admin token: %d %s", r.status, r.body)
	}
	if f := h.ep.Faults("r"); f.ErrorRate != 1 {
		t.Fatalf("faults after an admitted POST: %+v", f)
	}
}

func TestFaultAPIIsClosedWithoutAnAdminToken(t *testing.T) {
	e, err := New(Config{SigningKey: testKey, Redis: redisClient(miniredis.RunT(t))}, prometheus.NewRegistry(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	e.Register(mux)
	for authorization, want := range map[string]int{"Bearer " + testAdminToken: http.StatusForbidden, "": http.StatusUnauthorized} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, endpointapi.FaultsPath, nil)
		req.Header.Set("Authorization", authorization)
		mux.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Authorization %q: %d from an endpoint without an admin token, want %d", authorization, rec.Code, want)
		}
	}
}

func TestSetFaultsWantsJSONContent(t *testing.T) {
	h := newHarness(t, Config{})
	for _, contentType := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/jsonx"} {
		r := h.do(t, http.MethodPost, endpointapi.FaultsPath, []byte(`{"run_ids":["r"],"error_rate":1}`),
			"Authorization", "Bearer "+testAdminToken, "Content-Type", contentType)
		if r.status != http.StatusUnsupportedMediaType {
			t.Errorf("Content-Type %q: %d, want 415", contentType, r.status)
		}
	}
	if f := h.ep.Faults("r"); f.Active() {
		t.Fatalf("a refused request changed the faults: %+v", f)
	}
}
