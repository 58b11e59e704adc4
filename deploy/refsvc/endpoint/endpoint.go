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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
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
	// retries, and a run's figures after its last batch.
	IdempotencyTTL time.Duration
	// Redis holds the endpoint's state (see store); required. The endpoint
	// closes it in Close.
	Redis *redis.Client
	// KeyPrefix starts every key in Redis; DefaultKeyPrefix when empty.
	KeyPrefix string
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
	DefaultMaxBatchMessages = 1000
	DefaultMaxBodyBytes     = 16 << 20
	DefaultIdempotencyTTL   = 24 * time.Hour
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
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
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
	if c.Redis == nil {
		errs = append(errs, errors.New("a Redis client is required: the endpoint keeps its state there"))
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
	cfg      Config
	log      *zap.Logger
	verifier *tokens.Verifier
	faults   *faultInjector
	admin    adminGuard
	store    *store
	// instance makes sending ids unique even if the store's batch number
	// started again (its data lost).
	instance string

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
		cfg:      cfg,
		log:      log,
		verifier: tokens.NewVerifier(cfg.SigningKey, cfg.Now, cfg.Leeway),
		faults:   newFaultInjector(faults, cfg.Random),
		admin:    newAdminGuard(cfg.AdminToken, log),
		store:    &store{client: cfg.Redis, prefix: cfg.KeyPrefix, ttl: cfg.IdempotencyTTL},
		instance: hex.EncodeToString(instance),
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
	reg.MustRegister(e.messagesAccepted, e.batchesAccepted, e.replays, e.rejected, e.injected, e.batchSize)
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
	httpx.HandleHealth(mux, "endpoint", e.cfg.Now(), httpx.Dependency{Name: "store", Check: e.store.check})
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
	response, replay, ok := e.accept(w, r, claims, req, body, key)
	if !ok {
		return
	}
	if replay {
		e.replays.Inc()
		w.Header().Set(endpointapi.ReplayedHeader, "true")
		httpx.WriteJSONBytes(w, http.StatusOK, response)
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

// accept has the store replay the batch's stored answer or accept it
// (quota, batch number, run figures, answer kept for retries, in one atomic
// step), and returns the encoded response. The store keeps only what the
// response is built from: a replay's request has the same body (its
// fingerprint is checked), so it rebuilds the same bytes.
func (e *Endpoint) accept(w http.ResponseWriter, r *http.Request, claims tokens.Claims, req incomingBatch, body []byte, key string) (response []byte, replay, ok bool) {
	a := acceptance{
		fingerprint: sha256.Sum256(body),
		tokenID:     claims.ID,
		quota:       claims.Quota,
		quotaTTL:    claims.ExpiresAt.Add(e.cfg.Leeway).Sub(e.cfg.Now()),
		instance:    e.instance,
		seqs:        make([]int64, len(req.Messages)),
	}
	for i, m := range req.Messages {
		a.seqs[i] = m.Seq
	}
	if key != "" {
		// Keys are per client: another client's batch id must not collide.
		// The subject's length keeps "a:b"+"c" apart from "a"+"b:c".
		a.scopedKey = strconv.Itoa(len(claims.Subject)) + ":" + claims.Subject + ":" + key
		a.runID = runOfBatch(key)
	}
	v, err := e.store.accept(r.Context(), a)
	if err != nil {
		if r.Context().Err() != nil {
			return nil, false, false // the client is gone
		}
		if redis.IsOOMError(err) {
			// Redis refuses writes at maxmemory rather than evict the keys
			// that make retries idempotent. Only expiry or its operator
			// frees room, which a retry in a second does not wait for.
			e.log.Error("store full", zap.Error(err))
			e.rejected.WithLabelValues("store_full").Inc()
			httpx.WriteError(w, http.StatusInsufficientStorage, "store_full",
				"the endpoint's store is full: it accepts no batch until accepted batches' keys expire or its operator clears it")
			return nil, false, false
		}
		e.log.Error("store unavailable", zap.Error(err))
		e.rejected.WithLabelValues("store_unavailable").Inc()
		w.Header().Set("Retry-After", "1")
		httpx.WriteError(w, http.StatusServiceUnavailable, "store_unavailable", "the batch could not be recorded; retry")
		return nil, false, false
	}
	switch v.outcome {
	case keyReused:
		e.rejectRequest(w, http.StatusUnprocessableEntity, "idempotency_key_reused",
			"this Idempotency-Key was already used with a different request body")
		return nil, false, false
	case quotaExhausted:
		e.log.Info("quota exhausted", zap.String("jti", claims.ID), zap.Int64("quota", claims.Quota),
			zap.Int64("used", v.quotaUsed), zap.Int64("batch_messages", int64(len(req.Messages))))
		e.rejectToken(w, "quota_exhausted", "quota exhausted")
		return nil, false, false
	}
	resp := endpointapi.BatchResponse{BatchID: req.BatchID, BatchNumber: v.batchNumber, Results: make([]endpointapi.BatchResult, len(req.Messages))}
	prefix := sendingIDPrefix(v.instance, v.batchNumber)
	for i, m := range req.Messages {
		resp.Results[i] = endpointapi.BatchResult{CorrelationID: m.CorrelationID, Seq: m.Seq, SendingID: prefix + strconv.Itoa(i)}
	}
	response, err = json.Marshal(resp)
	if err != nil {
		// Unreachable for these types; a retry is answered from the store.
		e.log.Error("encode batch response", zap.Error(err))
		httpx.WriteError(w, http.StatusInternalServerError, "server_error", "response could not be encoded")
		return nil, false, false
	}
	if v.outcome == accepted {
		n := float64(len(req.Messages))
		e.batchesAccepted.Inc()
		e.messagesAccepted.Add(n)
		e.batchSize.Observe(n)
	}
	return response, v.outcome == replayed, true
}

// sendingIDPrefix is "<instance>-<batch number>-"; the message's index in
// the batch completes the id.
func sendingIDPrefix(instance string, batchNumber int64) string {
	return instance + "-" + strconv.FormatInt(batchNumber, 10) + "-"
}

// Close releases the Redis client; call it after the server has stopped.
func (e *Endpoint) Close() error {
	return e.store.client.Close()
}
