// Package endpoint is the reference HTTP batch endpoint: it accepts batches of
// messages under a bearer token from the token service, enforces the token's
// signature, expiry and message quota, assigns batch numbers and sending ids,
// makes retries idempotent, and injects faults on request for reliability
// tests.
package endpoint

import (
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/flowproof/flowproof/deploy/refsvc/internal/httpx"
	"github.com/flowproof/flowproof/deploy/refsvc/tokens"
	"github.com/flowproof/flowproof/internal/endpointapi"
)

// Config is the endpoint's configuration.
type Config struct {
	// SigningKey verifies tokens; the token service signs with the same key.
	SigningKey []byte
	// Leeway tolerates clock skew when judging expiry.
	Leeway time.Duration
	// MaxBatchMessages is the largest batch accepted.
	MaxBatchMessages int
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes int64
	// IdempotencyTTL is how long an accepted batch's response is kept for
	// retries; IdempotencyMaxEntries bounds how many are kept.
	IdempotencyTTL        time.Duration
	IdempotencyMaxEntries int
	// JournalPath, when set, is the file of accepted batches that lets a
	// restarted endpoint continue batch numbers, quota use and idempotent
	// replays; without it that state is lost on restart.
	JournalPath string
	// Faults is the fault injection setting at start. It applies to every
	// batch of a run without a setting of its own (set through the admin
	// API), so only whoever starts the process can set it for all runs.
	Faults endpointapi.Faults
	// AdminToken is the bearer credential of the fault API; without one
	// the API refuses every request.
	AdminToken string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Random draws faults, uniform in [0,1); math/rand/v2 when nil.
	Random func() float64
}

// Defaults for the fields of Config a caller leaves zero.
const (
	DefaultMaxBatchMessages      = 1000
	DefaultMaxBodyBytes          = 16 << 20
	DefaultIdempotencyTTL        = time.Hour
	DefaultIdempotencyMaxEntries = 50_000
)

// maxIdempotencyKeyLen bounds the key; batch ids are far shorter.
const maxIdempotencyKeyLen = 255

func (c *Config) applyDefaults() {
	if c.MaxBatchMessages == 0 {
		c.MaxBatchMessages = DefaultMaxBatchMessages
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.IdempotencyTTL == 0 {
		c.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if c.IdempotencyMaxEntries == 0 {
		c.IdempotencyMaxEntries = DefaultIdempotencyMaxEntries
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Random == nil {
		c.Random = rand.Float64
	}
}

func (c *Config) validate() error {
	var errs []error
	if len(c.SigningKey) < tokens.MinKeyBytes {
		errs = append(errs, fmt.Errorf("signing key is %d bytes; at least %d are required", len(c.SigningKey), tokens.MinKeyBytes))
	}
	if c.Leeway < 0 {
		errs = append(errs, fmt.Errorf("leeway must not be negative, got %s", c.Leeway))
	}
	if c.MaxBatchMessages < 1 {
		errs = append(errs, fmt.Errorf("max batch messages must be at least 1, got %d", c.MaxBatchMessages))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("max body bytes must be at least 1024, got %d", c.MaxBodyBytes))
	}
	if c.IdempotencyTTL < time.Second {
		errs = append(errs, fmt.Errorf("idempotency ttl must be at least 1s, got %s", c.IdempotencyTTL))
	}
	if c.IdempotencyMaxEntries < 1 {
		errs = append(errs, fmt.Errorf("idempotency max entries must be at least 1, got %d", c.IdempotencyMaxEntries))
	}
	if c.AdminToken != "" && len(c.AdminToken) < endpointapi.MinAdminTokenBytes {
		errs = append(errs, fmt.Errorf("admin token is %d bytes; at least %d are required", len(c.AdminToken), endpointapi.MinAdminTokenBytes))
	}
	if len(c.Faults.RunIDs) > 0 {
		errs = append(errs, errors.New("faults at start apply to every run and name none; set a run's faults through the admin API"))
	}
	return errors.Join(errs...)
}

// Endpoint serves batches.
type Endpoint struct {
	cfg         Config
	log         *zap.Logger
	verifier    *tokens.Verifier
	faults      *faultInjector
	admin       adminGuard
	quota       *quotaLedger
	idempotency *idempotencyStore
	journal     *journal // nil without Config.JournalPath
	// instance makes sending ids unique across restarts of the process,
	// whose batch numbers start again at 1.
	instance    string
	batchNumber atomic.Int64

	messagesAccepted prometheus.Counter
	batchesAccepted  prometheus.Counter
	replays          prometheus.Counter
	rejected         *prometheus.CounterVec
	injected         *prometheus.CounterVec
	batchSize        prometheus.Histogram
}

// New checks cfg and registers the endpoint's metrics with reg.
func New(cfg Config, reg prometheus.Registerer, log *zap.Logger) (*Endpoint, error) {
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("endpoint config: %w", err)
	}
	faults, err := NormalizeFaults(cfg.Faults)
	if err != nil {
		return nil, fmt.Errorf("endpoint config: faults: %w", err)
	}
	instance := make([]byte, 6)
	if _, err := crand.Read(instance); err != nil {
		return nil, fmt.Errorf("generate instance id: %w", err)
	}
	e := &Endpoint{
		cfg:         cfg,
		log:         log,
		verifier:    tokens.NewVerifier(cfg.SigningKey, cfg.Now, cfg.Leeway),
		faults:      newFaultInjector(faults, cfg.Random),
		admin:       newAdminGuard(cfg.AdminToken, log),
		quota:       newQuotaLedger(),
		idempotency: newIdempotencyStore(cfg.IdempotencyTTL, cfg.IdempotencyMaxEntries),
		instance:    hex.EncodeToString(instance),
		messagesAccepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "refsvc_endpoint_messages_accepted_total",
			Help: "Messages accepted (counted once per batch, not again on replays).",
		}),
		batchesAccepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "refsvc_endpoint_batches_accepted_total",
			Help: "Batches accepted.",
		}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "refsvc_endpoint_idempotent_replays_total",
			Help: "Requests answered from the idempotency store.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refsvc_endpoint_rejections_total",
			Help: "Batch requests refused, by reason.",
		}, []string{"reason"}),
		injected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refsvc_endpoint_injected_faults_total",
			Help: "Faults injected, by kind (latency, throttle, error, lost_response).",
		}, []string{"kind"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "refsvc_endpoint_batch_messages",
			Help:    "Messages per accepted batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}),
	}
	if cfg.JournalPath != "" {
		if e.journal, err = openJournal(cfg.JournalPath, e); err != nil {
			return nil, err
		}
		log.Info("journal replayed", zap.String("path", cfg.JournalPath), zap.Int64("last_batch_number", e.batchNumber.Load()),
			zap.Int("idempotency_entries", e.idempotency.len()), zap.Int("tokens_with_quota_use", e.quota.tokens()))
	}
	reg.MustRegister(e.messagesAccepted, e.batchesAccepted, e.replays, e.rejected, e.injected, e.batchSize,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "refsvc_endpoint_idempotency_entries",
			Help: "Accepted batches kept for idempotent replay.",
		}, func() float64 { return float64(e.idempotency.len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "refsvc_endpoint_quota_tokens",
			Help: "Tokens whose quota use is being tracked.",
		}, func() float64 { return float64(e.quota.tokens()) }),
	)
	return e, nil
}

// NewHandler returns the whole HTTP surface of the endpoint: batches, the
// fault admin routes, /healthz and /metrics, instrumented.
func NewHandler(cfg Config, reg *prometheus.Registry, log *zap.Logger) (http.Handler, *Endpoint, error) {
	e, err := New(cfg, reg, log)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	e.Register(mux)
	httpx.HandleHealth(mux, "endpoint", e.cfg.Now())
	httpx.HandleMetrics(mux, reg)
	return httpx.Instrument(mux, reg, log), e, nil
}

// Register adds the batch and fault admin routes to mux.
func (e *Endpoint) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST "+endpointapi.BatchesPath, e.HandleBatch)
	mux.HandleFunc("GET "+endpointapi.FaultsPath, e.admin.wrap(e.handleGetFaults))
	mux.HandleFunc("POST "+endpointapi.FaultsPath, e.admin.wrap(e.handleSetFaults))
	mux.HandleFunc("DELETE "+endpointapi.FaultsPath, e.admin.wrap(e.handleResetFaults))
	mux.HandleFunc("GET "+endpointapi.RunStatsPath, e.handleRunStats)
}

// HandleBatch serves POST /v1/batches.
func (e *Endpoint) HandleBatch(w http.ResponseWriter, r *http.Request) {
	claims, ok := e.authenticate(w, r)
	if !ok {
		return
	}
	body, req, ok := e.readBatch(w, r)
	if !ok {
		return
	}
	// Faults come next, as from a gateway in front of the service that
	// knows the run: a throttled or failed request has no effect.
	faults, fault := e.faults.draw(req.RunID)
	if faults.LatencyMillis > 0 {
		e.injected.WithLabelValues("latency").Inc()
		if err := delay(r.Context(), time.Duration(faults.LatencyMillis)*time.Millisecond); err != nil {
			return // the client is gone
		}
	}
	switch fault {
	case throttleFault:
		e.injected.WithLabelValues("throttle").Inc()
		w.Header().Set("Retry-After", strconv.Itoa(faults.RetryAfterSeconds))
		httpx.WriteError(w, http.StatusTooManyRequests, "throttled", "injected fault: too many requests")
		return
	case errorFault:
		e.injected.WithLabelValues("error").Inc()
		httpx.WriteError(w, faults.ErrorStatus, "injected_fault", "injected fault: batch not accepted")
		return
	}

	key := r.Header.Get(endpointapi.IdempotencyKeyHeader)
	if len(key) > maxIdempotencyKeyLen {
		e.rejectRequest(w, http.StatusBadRequest, "invalid_idempotency_key",
			fmt.Sprintf("%s header is %d bytes; at most %d are allowed", endpointapi.IdempotencyKeyHeader, len(key), maxIdempotencyKeyLen))
		return
	}
	var scopedKey string
	fingerprint := sha256.Sum256(body)
	if key != "" {
		// Keys are per client: another client's batch id must not collide.
		scopedKey = claims.Subject + "\x00" + key
		stored, err := e.idempotency.begin(r.Context(), scopedKey, fingerprint, e.cfg.Now())
		switch {
		case errors.Is(err, errKeyReused):
			e.rejectRequest(w, http.StatusUnprocessableEntity, "idempotency_key_reused", err.Error())
			return
		case err != nil:
			return // the client gave up while an earlier request with its key was in flight
		case stored != nil:
			e.replays.Inc()
			w.Header().Set(endpointapi.ReplayedHeader, "true")
			httpx.WriteJSONBytes(w, http.StatusOK, stored)
			return
		}
	}

	response, ok := e.accept(w, claims, req, scopedKey, fingerprint)
	if scopedKey != "" {
		if ok {
			e.idempotency.complete(scopedKey, response, e.cfg.Now())
		} else {
			e.idempotency.abandon(scopedKey)
		}
	}
	if !ok {
		return
	}
	if fault == lostResponseFault {
		e.injected.WithLabelValues("lost_response").Inc()
		httpx.WriteError(w, faults.ErrorStatus, "injected_fault", "injected fault: response lost after the batch was accepted")
		return
	}
	httpx.WriteJSONBytes(w, http.StatusOK, response)
}

// authenticate checks the bearer token and answers 401 (RFC 6750 §3) when it
// is missing or invalid.
func (e *Endpoint) authenticate(w http.ResponseWriter, r *http.Request) (tokens.Claims, bool) {
	token, found := bearerToken(r.Header.Get("Authorization"))
	if !found {
		// RFC 6750 §3.1: a request without credentials gets no error code.
		w.Header().Set("WWW-Authenticate", `Bearer realm="flowproof", error_description="missing bearer token"`)
		e.rejected.WithLabelValues("missing_token").Inc()
		httpx.WriteError(w, http.StatusUnauthorized, "invalid_token", "missing bearer token")
		return tokens.Claims{}, false
	}
	claims, err := e.verifier.Verify(token)
	if err != nil {
		var rej *tokens.Rejection
		if !errors.As(err, &rej) {
			rej = &tokens.Rejection{Reason: "invalid_token", Description: "token is invalid"}
		}
		e.rejectToken(w, rej.Reason, rej.Description)
		return tokens.Claims{}, false
	}
	return claims, true
}

func (e *Endpoint) rejectToken(w http.ResponseWriter, reason, description string) {
	w.Header().Set("WWW-Authenticate",
		fmt.Sprintf(`Bearer realm="flowproof", error="invalid_token", error_description=%q`, description))
	e.rejected.WithLabelValues(reason).Inc()
	if reason != "quota_exhausted" {
		e.log.Info("token rejected", zap.String("reason", reason))
	}
	httpx.WriteError(w, http.StatusUnauthorized, "invalid_token", description)
}

func (e *Endpoint) rejectRequest(w http.ResponseWriter, status int, reason, description string) {
	e.rejected.WithLabelValues(reason).Inc()
	httpx.WriteError(w, status, "invalid_request", description)
}

// bearerToken takes the token from an Authorization header; the scheme name
// is case-insensitive (RFC 7235 §2.1).
func bearerToken(header string) (string, bool) {
	scheme, token, found := strings.Cut(strings.TrimSpace(header), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// incomingBatch is endpointapi.BatchRequest as far as the endpoint reads it:
// the fields other than correlation_id and seq are accepted but not needed,
// and skipping them halves the decoding cost.
type incomingBatch struct {
	BatchID  string `json:"batch_id"`
	RunID    string `json:"run_id"`
	Messages []struct {
		CorrelationID string `json:"correlation_id"`
		Seq           int64  `json:"seq"`
	} `json:"messages"`
}

// readBatch reads and validates the body, answering 4xx when it is unusable.
func (e *Endpoint) readBatch(w http.ResponseWriter, r *http.Request) ([]byte, incomingBatch, bool) {
	var req incomingBatch
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		e.rejectRequest(w, http.StatusUnsupportedMediaType, "unsupported_media_type",
			fmt.Sprintf("Content-Type must be application/json, got %q", ct))
		return nil, req, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, e.cfg.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			e.rejectRequest(w, http.StatusRequestEntityTooLarge, "body_too_large",
				fmt.Sprintf("request body exceeds %d bytes", e.cfg.MaxBodyBytes))
		} else {
			e.rejectRequest(w, http.StatusBadRequest, "unreadable_body", "request body could not be read: "+err.Error())
		}
		return nil, req, false
	}
	if err := json.Unmarshal(body, &req); err != nil {
		e.rejectRequest(w, http.StatusBadRequest, "malformed_json", "request body is not a valid batch: "+err.Error())
		return nil, req, false
	}
	if err := e.validateBatch(req); err != nil {
		e.rejectRequest(w, http.StatusBadRequest, "invalid_batch", err.Error())
		return nil, req, false
	}
	return body, req, true
}

func (e *Endpoint) validateBatch(req incomingBatch) error {
	if strings.TrimSpace(req.BatchID) == "" {
		return errors.New("batch_id is required")
	}
	if len(req.Messages) == 0 {
		return errors.New("messages must not be empty")
	}
	if len(req.Messages) > e.cfg.MaxBatchMessages {
		return fmt.Errorf("messages has %d entries; at most %d are allowed per batch", len(req.Messages), e.cfg.MaxBatchMessages)
	}
	var errs []error
	for i, m := range req.Messages {
		if strings.TrimSpace(m.CorrelationID) == "" {
			errs = append(errs, fmt.Errorf("messages[%d].correlation_id is required", i))
		}
		if m.Seq < 0 {
			errs = append(errs, fmt.Errorf("messages[%d].seq must not be negative, got %d", i, m.Seq))
		}
		if len(errs) >= 10 {
			errs = append(errs, errors.New("(further errors not listed)"))
			break
		}
	}
	return errors.Join(errs...)
}

// accept charges the batch to the token's quota, assigns its batch number and
// sending ids and journals it, returning the encoded response.
func (e *Endpoint) accept(w http.ResponseWriter, claims tokens.Claims, req incomingBatch, scopedKey string, fingerprint [32]byte) ([]byte, bool) {
	n := int64(len(req.Messages))
	now := e.cfg.Now()
	used, ok := e.quota.consume(claims.ID, n, claims.Quota, claims.ExpiresAt.Time, now)
	if !ok {
		e.log.Info("quota exhausted", zap.String("jti", claims.ID), zap.Int64("quota", claims.Quota),
			zap.Int64("used", used), zap.Int64("batch_messages", n))
		e.rejectToken(w, "quota_exhausted", "quota exhausted")
		return nil, false
	}
	number := e.batchNumber.Add(1)
	resp := endpointapi.BatchResponse{BatchID: req.BatchID, BatchNumber: number, Results: make([]endpointapi.BatchResult, len(req.Messages))}
	prefix := e.sendingIDPrefix(number)
	for i, m := range req.Messages {
		resp.Results[i] = endpointapi.BatchResult{
			CorrelationID: m.CorrelationID,
			Seq:           m.Seq,
			SendingID:     prefix + strconv.Itoa(i),
		}
	}
	body, err := json.Marshal(resp)
	if err != nil {
		// Unreachable for these types; the quota stays charged, which errs on
		// the side of refusing rather than over-accepting.
		e.log.Error("encode batch response", zap.Error(err))
		httpx.WriteError(w, http.StatusInternalServerError, "server_error", "response could not be encoded")
		return nil, false
	}
	if e.journal != nil {
		rec := journalRecord{AcceptedAt: now.UnixMilli(), BatchNumber: number, TokenID: claims.ID,
			TokenExpiry: claims.ExpiresAt.Unix(), Messages: n}
		if scopedKey != "" {
			rec.Key, rec.Fingerprint, rec.Response = scopedKey, fingerprint[:], body
		}
		if err := e.journal.append(rec); err != nil {
			// Not journalled means not durably accepted: refuse, and let the
			// client retry.
			e.log.Error("journal batch", zap.Error(err))
			httpx.WriteError(w, http.StatusInternalServerError, "server_error", "batch could not be recorded")
			return nil, false
		}
	}
	e.batchesAccepted.Inc()
	e.messagesAccepted.Add(float64(n))
	e.batchSize.Observe(float64(n))
	return body, true
}

// sendingIDPrefix is "<instance>-<batch number>-"; the message's index in
// the batch completes the id.
func (e *Endpoint) sendingIDPrefix(batchNumber int64) string {
	return e.instance + "-" + strconv.FormatInt(batchNumber, 10) + "-"
}

// Close releases the journal; call it after the server has stopped.
func (e *Endpoint) Close() error {
	if e.journal == nil {
		return nil
	}
	return e.journal.close()
}
