// Package refsvcapi is what both reference services (deploy/refsvc) answer
// alike: the error body and the health and metrics routes. Each service's
// own API is in tokenapi (the token service) and endpointapi (the batch
// endpoint). See docs/reference-services.md.
package refsvcapi

// Routes both services serve.
const (
	HealthPath  = "/healthz"
	MetricsPath = "/metrics"
)

// ErrorResponse is the JSON body of every error answer of both services. The
// token service uses the RFC 6749 §5.2 codes (invalid_client,
// invalid_request, unsupported_grant_type); the endpoint uses invalid_token
// for authentication failures and invalid_request for a bad body.
type ErrorResponse struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// Health is the body of GET /healthz on both services: 200 with status
// "ok" when the service and everything it depends on answer, 503 with
// status "degraded" when a dependency does not.
type Health struct {
	Status        string `json:"status"` // "ok" or "degraded"
	Service       string `json:"service"`
	UptimeSeconds int64  `json:"uptime_seconds"`
	// Dependencies are what the service needs to do its work, each asked
	// when the health is (the endpoint's store); the service reports them
	// so that its clients need neither their addresses nor credentials.
	Dependencies []DependencyHealth `json:"dependencies,omitempty"`
}

// DependencyHealth is one dependency's answer.
type DependencyHealth struct {
	Name          string `json:"name"` // "store"
	Healthy       bool   `json:"healthy"`
	Detail        string `json:"detail"`
	LatencyMillis int64  `json:"latency_ms"`
}
