// Package tokenservice is the reference OAuth2 token service: it issues
// client-credentials access tokens (RFC 6749 §4.4) as HS256 JWTs carrying a
// message quota, which the reference endpoint (package endpoint) enforces.
package tokenservice

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/deploy/refsvc/internal/httpx"
	"github.com/flowproof/flowproof/deploy/refsvc/tokens"
	"github.com/flowproof/flowproof/internal/tokenapi"
)

// Config is the token service's configuration.
type Config struct {
	// ClientID and ClientSecret are the one client's credentials.
	ClientID     string
	ClientSecret string
	// SigningKey signs every token; the endpoint verifies with the same key.
	SigningKey []byte
	// DefaultTTL is a token's lifetime unless the client asks for less with
	// ttl_seconds; MaxTTL caps what a client may ask for.
	DefaultTTL time.Duration
	MaxTTL     time.Duration
	// DefaultQuota is a token's message quota unless the client asks for a
	// different one with quota; MaxQuota caps what a client may ask for.
	DefaultQuota int64
	MaxQuota     int64
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Defaults for the fields of Config a caller leaves zero.
const (
	DefaultTTL   = time.Hour
	DefaultQuota = 10_000
)

func (c *Config) applyDefaults() {
	if c.DefaultTTL == 0 {
		c.DefaultTTL = DefaultTTL
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = c.DefaultTTL
	}
	if c.DefaultQuota == 0 {
		c.DefaultQuota = DefaultQuota
	}
	if c.MaxQuota == 0 {
		c.MaxQuota = c.DefaultQuota
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.ClientID == "" {
		errs = append(errs, errors.New("client id is empty"))
	}
	if c.ClientSecret == "" {
		errs = append(errs, errors.New("client secret is empty"))
	}
	if len(c.SigningKey) < tokens.MinKeyBytes {
		errs = append(errs, fmt.Errorf("signing key is %d bytes; at least %d are required", len(c.SigningKey), tokens.MinKeyBytes))
	}
	if c.DefaultTTL < time.Second || c.MaxTTL < c.DefaultTTL {
		errs = append(errs, fmt.Errorf("token lifetime: default %s must be at least 1s and at most the maximum %s", c.DefaultTTL, c.MaxTTL))
	}
	if c.DefaultQuota < 1 || c.MaxQuota < c.DefaultQuota {
		errs = append(errs, fmt.Errorf("quota: default %d must be at least 1 and at most the maximum %d", c.DefaultQuota, c.MaxQuota))
	}
	return errors.Join(errs...)
}

// Service issues tokens.
type Service struct {
	cfg        Config
	secretHash [sha256.Size]byte
	log        *zap.Logger
	issued     prometheus.Counter
	rejected   *prometheus.CounterVec
}

// New checks cfg and registers the service's metrics with reg.
func New(cfg Config, reg prometheus.Registerer, log *zap.Logger) (*Service, error) {
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("token service config: %w", err)
	}
	s := &Service{
		cfg:        cfg,
		secretHash: sha256.Sum256([]byte(cfg.ClientSecret)),
		log:        log,
		issued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "refsvc_tokens_issued_total",
			Help: "Access tokens issued.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refsvc_token_rejections_total",
			Help: "Token requests refused, by reason.",
		}, []string{"reason"}),
	}
	reg.MustRegister(s.issued, s.rejected)
	return s, nil
}

// NewHandler returns the whole HTTP surface of the token service: the token
// route, /healthz and /metrics, instrumented.
func NewHandler(cfg Config, reg *prometheus.Registry, log *zap.Logger) (http.Handler, error) {
	svc, err := New(cfg, reg, log)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+tokenapi.TokenPath, svc.HandleToken)
	httpx.HandleHealth(mux, "token-service", svc.cfg.Now())
	httpx.HandleMetrics(mux, reg)
	return httpx.Instrument(mux, reg, log), nil
}

// maxFormBytes bounds a token request body; a real one is under 200 bytes.
const maxFormBytes = 16 << 10

// HandleToken serves POST /oauth2/token.
func (s *Service) HandleToken(w http.ResponseWriter, r *http.Request) {
	// RFC 6749 §5.1: token responses must not be cached.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")

	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.reject(w, http.StatusBadRequest, "invalid_request", "bad_form", "request body is not a valid form: "+err.Error())
		return
	}
	form := r.PostForm // parameters in the query string are ignored: secrets do not belong in URLs

	clientID, secret, method, err := clientCredentials(r, form)
	if err != nil {
		s.reject(w, http.StatusBadRequest, "invalid_request", "bad_client_auth", err.Error())
		return
	}
	if !s.authenticate(clientID, secret) {
		// RFC 6749 §5.2: 401 with a challenge for the scheme the client may use.
		w.Header().Set("WWW-Authenticate", `Basic realm="flowproof-token-service", charset="UTF-8"`)
		s.log.Warn("client authentication failed", zap.String("method", method))
		s.reject(w, http.StatusUnauthorized, "invalid_client", "invalid_client", "client authentication failed")
		return
	}

	switch grant := form.Get(tokenapi.FormGrantType); grant {
	case tokenapi.GrantTypeClientCredentials:
	case "":
		s.reject(w, http.StatusBadRequest, "invalid_request", "missing_grant_type", "grant_type is required")
		return
	default:
		s.reject(w, http.StatusBadRequest, "unsupported_grant_type", "unsupported_grant_type",
			fmt.Sprintf("grant_type %q is not supported; use %q", grant, tokenapi.GrantTypeClientCredentials))
		return
	}

	ttlSeconds, err := positiveParam(form, tokenapi.FormTTLSeconds, int64(s.cfg.DefaultTTL/time.Second), int64(s.cfg.MaxTTL/time.Second))
	if err != nil {
		s.reject(w, http.StatusBadRequest, "invalid_request", "bad_ttl", err.Error())
		return
	}
	quota, err := positiveParam(form, tokenapi.FormQuota, s.cfg.DefaultQuota, s.cfg.MaxQuota)
	if err != nil {
		s.reject(w, http.StatusBadRequest, "invalid_request", "bad_quota", err.Error())
		return
	}

	ttl := time.Duration(ttlSeconds) * time.Second
	signed, claims, err := tokens.Sign(s.cfg.SigningKey, clientID, s.cfg.Now(), ttl, quota)
	if err != nil {
		s.log.Error("token signing failed", zap.Error(err))
		s.reject(w, http.StatusInternalServerError, "server_error", "server_error", "token could not be issued")
		return
	}
	s.issued.Inc()
	s.log.Info("token issued", zap.String("client_id", clientID), zap.String("jti", claims.ID),
		zap.Int64("ttl_seconds", ttlSeconds), zap.Int64("quota", quota))
	httpx.WriteJSON(w, http.StatusOK, tokenapi.TokenResponse{
		AccessToken: signed,
		TokenType:   "Bearer",
		ExpiresIn:   ttlSeconds,
		Quota:       quota,
	})
}

func (s *Service) reject(w http.ResponseWriter, status int, code, reason, description string) {
	s.rejected.WithLabelValues(reason).Inc()
	httpx.WriteError(w, status, code, description)
}

// authenticate compares in constant time; hashing first keeps the comparison
// from revealing the secret's length.
func (s *Service) authenticate(clientID, secret string) bool {
	given := sha256.Sum256([]byte(secret))
	idOK := subtle.ConstantTimeCompare([]byte(clientID), []byte(s.cfg.ClientID))
	secretOK := subtle.ConstantTimeCompare(given[:], s.secretHash[:])
	return idOK&secretOK == 1
}

// clientCredentials takes the client id and secret from HTTP Basic
// authentication or from the form (RFC 6749 §2.3.1), refusing a request that
// uses both.
func clientCredentials(r *http.Request, form url.Values) (id, secret, method string, err error) {
	basicID, basicSecret, hasBasic := r.BasicAuth()
	formID, formSecret := form.Get(tokenapi.FormClientID), form.Get(tokenapi.FormClientSecret)
	switch {
	case hasBasic && formSecret != "":
		return "", "", "", errors.New("client credentials were sent both in the Authorization header and in the form; use one method")
	case hasBasic:
		// Basic credentials are form-encoded before base64 (RFC 6749 §2.3.1).
		id, err1 := url.QueryUnescape(basicID)
		secret, err2 := url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			return "", "", "", errors.New("client credentials in the Authorization header are not form-encoded")
		}
		if formID != "" && formID != id {
			return "", "", "", errors.New("client_id in the form differs from the Authorization header")
		}
		return id, secret, "basic", nil
	default:
		return formID, formSecret, "form", nil
	}
}

// positiveParam reads an optional positive integer parameter, capped at max.
func positiveParam(form url.Values, name string, fallback, max int64) (int64, error) {
	raw := form.Get(name)
	if raw == "" {
		return fallback, nil
	}
	v, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("%s must be a positive integer, got %q", name, raw)
	}
	return min(v, max), nil
}
