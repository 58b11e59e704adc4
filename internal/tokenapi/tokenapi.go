// Package tokenapi holds the wire contract of the reference token service
// (deploy/refsvc/tokenservice), an OAuth2 client-credentials server, so that
// the pipeline's token client and the server agree on one definition. Its
// error answers are refsvcapi.ErrorResponse. See
// docs/reference-services.md.
package tokenapi

// TokenPath is where tokens are granted.
const TokenPath = "/oauth2/token"

// GrantTypeClientCredentials is the only grant the token service issues.
const GrantTypeClientCredentials = "client_credentials"

// Form fields of a token request (application/x-www-form-urlencoded). The
// client id and secret may instead be sent with HTTP Basic authentication.
const (
	FormGrantType    = "grant_type"
	FormClientID     = "client_id"
	FormClientSecret = "client_secret"
	// FormTTLSeconds asks for a lifetime shorter than the server's default;
	// the server caps it at its maximum.
	FormTTLSeconds = "ttl_seconds"
	// FormQuota asks for a smaller message quota; the server caps it at its
	// maximum.
	FormQuota = "quota"
)

// TokenResponse is the token service's successful answer (RFC 6749 §5.1 plus
// the granted quota).
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"` // always "Bearer"
	ExpiresIn   int64  `json:"expires_in"` // seconds
	// Quota is how many messages the endpoint accepts under this token.
	Quota int64 `json:"quota"`
}
