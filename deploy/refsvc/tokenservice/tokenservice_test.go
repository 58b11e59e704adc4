package tokenservice

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/deploy/refsvc/tokens"
	"github.com/flowproof/flowproof/internal/refsvcapi"
	"github.com/flowproof/flowproof/internal/tokenapi"
)

const (
	testClientID = "flowproof"
	testSecret   = "s3cret with spaces&symbols"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

type harness struct {
	server *httptest.Server
	reg    *prometheus.Registry
	now    time.Time
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry(), now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	cfg.ClientID, cfg.ClientSecret, cfg.SigningKey = testClientID, testSecret, testKey
	cfg.Now = func() time.Time { return h.now }
	handler, err := NewHandler(cfg, h.reg, zap.NewNop())
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	h.server = httptest.NewServer(handler)
	t.Cleanup(h.server.Close)
	return h
}

// request posts form to the token route, with Basic credentials when basic
// is non-nil.
func (h *harness) request(t *testing.T, form url.Values, basic *[2]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.server.URL+tokenapi.TokenPath, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func grant(extra ...string) url.Values {
	form := url.Values{tokenapi.FormGrantType: {tokenapi.GrantTypeClientCredentials}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	return form
}

var goodBasic = &[2]string{testClientID, testSecret}

func decodeToken(t *testing.T, body []byte) tokenapi.TokenResponse {
	t.Helper()
	var tr tokenapi.TokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatalf("decode token response %s: %v", body, err)
	}
	return tr
}

func TestIssuesVerifiableTokenWithBasicAuth(t *testing.T) {
	h := newHarness(t, Config{})
	resp, body := h.request(t, grant(), goodBasic)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, body %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	tr := decodeToken(t, body)
	if tr.TokenType != "Bearer" || tr.ExpiresIn != int64(DefaultTTL/time.Second) || tr.Quota != DefaultQuota {
		t.Fatalf("response = %+v, want Bearer, %d s, quota %d", tr, int64(DefaultTTL/time.Second), DefaultQuota)
	}
	claims, err := tokens.NewVerifier(testKey, func() time.Time { return h.now }, 0).Verify(tr.AccessToken)
	if err != nil {
		t.Fatalf("issued token does not verify: %v", err)
	}
	if claims.Subject != testClientID || claims.Quota != DefaultQuota || claims.ID == "" ||
		!claims.IssuedAt.Time.Equal(h.now) || !claims.ExpiresAt.Time.Equal(h.now.Add(DefaultTTL)) {
		t.Fatalf("claims = %+v", claims)
	}
	if got := counterValue(t, h.reg, "refsvc_tokens_issued_total"); got != 1 {
		t.Fatalf("tokens issued = %v, want 1", got)
	}
}

func TestEachTokenHasItsOwnID(t *testing.T) {
	h := newHarness(t, Config{})
	verifier := tokens.NewVerifier(testKey, func() time.Time { return h.now }, 0)
	seen := map[string]bool{}
	for i := 0; i < 5; i++ {
		_, body := h.request(t, grant(tokenapi.FormClientID, testClientID, tokenapi.FormClientSecret, testSecret), nil)
		claims, err := verifier.Verify(decodeToken(t, body).AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if seen[claims.ID] {
			t.Fatalf("jti %s issued twice", claims.ID)
		}
		seen[claims.ID] = true
	}
}

func TestTTLAndQuotaParameters(t *testing.T) {
	h := newHarness(t, Config{DefaultTTL: 10 * time.Minute, MaxTTL: time.Hour, DefaultQuota: 100, MaxQuota: 1000})
	cases := []struct {
		name                string
		form                url.Values
		wantTTL, wantQuota  int64
		wantStatus          int
		wantErrorMentioning string
	}{
		{"defaults", grant(), 600, 100, 200, ""},
		{"shorter ttl", grant(tokenapi.FormTTLSeconds, "1"), 1, 100, 200, ""},
		{"ttl capped at max", grant(tokenapi.FormTTLSeconds, "999999"), 3600, 100, 200, ""},
		{"smaller quota", grant(tokenapi.FormQuota, "7"), 600, 7, 200, ""},
		{"quota capped at max", grant(tokenapi.FormQuota, "5000"), 600, 1000, 200, ""},
		{"zero ttl", grant(tokenapi.FormTTLSeconds, "0"), 0, 0, 400, "ttl_seconds"},
		{"text ttl", grant(tokenapi.FormTTLSeconds, "soon"), 0, 0, 400, "ttl_seconds"},
		{"negative quota", grant(tokenapi.FormQuota, "-3"), 0, 0, 400, "quota"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.request(t, tc.form, goodBasic)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d (%s), want %d", resp.StatusCode, body, tc.wantStatus)
			}
			if tc.wantStatus != 200 {
				var er refsvcapi.ErrorResponse
				_ = json.Unmarshal(body, &er)
				if er.Error != "invalid_request" || !strings.Contains(er.ErrorDescription, tc.wantErrorMentioning) {
					t.Fatalf("error = %+v, want invalid_request naming %s", er, tc.wantErrorMentioning)
				}
				return
			}
			tr := decodeToken(t, body)
			if tr.ExpiresIn != tc.wantTTL || tr.Quota != tc.wantQuota {
				t.Fatalf("expires_in %d quota %d, want %d and %d", tr.ExpiresIn, tr.Quota, tc.wantTTL, tc.wantQuota)
			}
			claims, err := tokens.NewVerifier(testKey, func() time.Time { return h.now }, 0).Verify(tr.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			if got := int64(claims.ExpiresAt.Sub(claims.IssuedAt.Time) / time.Second); got != tc.wantTTL || claims.Quota != tc.wantQuota {
				t.Fatalf("claims lifetime %d s quota %d, want %d and %d", got, claims.Quota, tc.wantTTL, tc.wantQuota)
			}
		})
	}
}

func TestRejectsBadClientsAndGrants(t *testing.T) {
	h := newHarness(t, Config{})
	cases := []struct {
		name       string
		form       url.Values
		basic      *[2]string
		wantStatus int
		wantError  string
	}{
		{"wrong secret (basic)", grant(), &[2]string{testClientID, "nope"}, 401, "invalid_client"},
		{"wrong client id (basic)", grant(), &[2]string{"intruder", testSecret}, 401, "invalid_client"},
		{"wrong secret (form)", grant(tokenapi.FormClientID, testClientID, tokenapi.FormClientSecret, "nope"), nil, 401, "invalid_client"},
		{"secret as prefix", grant(), &[2]string{testClientID, testSecret[:5]}, 401, "invalid_client"},
		{"no credentials", grant(), nil, 401, "invalid_client"},
		{"two methods", grant(tokenapi.FormClientSecret, testSecret), goodBasic, 400, "invalid_request"},
		{"no grant type", url.Values{}, goodBasic, 400, "invalid_request"},
		{"other grant type", url.Values{tokenapi.FormGrantType: {"password"}}, goodBasic, 400, "unsupported_grant_type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.request(t, tc.form, tc.basic)
			var er refsvcapi.ErrorResponse
			if err := json.Unmarshal(body, &er); err != nil {
				t.Fatalf("error body %s: %v", body, err)
			}
			if resp.StatusCode != tc.wantStatus || er.Error != tc.wantError {
				t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, er, tc.wantStatus, tc.wantError)
			}
			if tc.wantStatus == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Fatalf("401 without a Basic challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
			if strings.Contains(string(body), testSecret) {
				t.Fatal("error body echoes the secret")
			}
		})
	}
	if got := counterValue(t, h.reg, "refsvc_tokens_issued_total"); got != 0 {
		t.Fatalf("tokens issued = %v, want 0", got)
	}
}

func TestOnlyPostIsAllowedAndHealthAndMetricsServe(t *testing.T) {
	h := newHarness(t, Config{})
	resp, err := http.Get(h.server.URL + tokenapi.TokenPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET token = %d, want 405", resp.StatusCode)
	}
	resp, err = http.Get(h.server.URL + refsvcapi.HealthPath)
	if err != nil {
		t.Fatal(err)
	}
	var health refsvcapi.Health
	_ = json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if resp.StatusCode != 200 || health.Status != "ok" || health.Service != "token-service" {
		t.Fatalf("healthz = %d %+v", resp.StatusCode, health)
	}
	h.request(t, grant(), &[2]string{testClientID, "wrong"})
	resp, err = http.Get(h.server.URL + refsvcapi.MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`refsvc_token_rejections_total{reason="invalid_client"} 1`,
		`refsvc_http_requests_total{code="401",route="POST /oauth2/token"} 1`,
		`refsvc_http_requests_total{code="405",route="unmatched"} 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestConfigIsValidated(t *testing.T) {
	_, err := New(Config{ClientID: "x", ClientSecret: "", SigningKey: []byte("short"), DefaultTTL: 2 * time.Hour, MaxTTL: time.Hour},
		prometheus.NewRegistry(), zap.NewNop())
	if err == nil {
		t.Fatal("New accepted an invalid config")
	}
	for _, want := range []string{"client secret is empty", "signing key is 5 bytes", "token lifetime"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("config error %q lacks %q", err, want)
		}
	}
}

// counterValue reads an unlabelled counter from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
