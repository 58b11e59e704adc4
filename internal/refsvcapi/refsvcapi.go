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

// Health is the body of GET /healthz on both services.
type Health struct {
	Status        string `json:"status"` // "ok"
	Service       string `json:"service"`
	UptimeSeconds int64  `json:"uptime_seconds"`
}
