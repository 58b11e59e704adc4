// Package flinksql runs flowproof's Flink SQL jobs: a client of the SQL
// Gateway's REST API that opens sessions and submits statements, a client
// of the JobManager's REST API that watches, measures, cancels and stops the
// jobs, and the two jobs themselves (EnrichJob, SplitJob) generated from
// typed, validated settings.
//
// Every non-2xx answer of either API becomes an *APIError carrying Flink's
// own messages, so a SQL parse error or a missing connector reads as such.
package flinksql

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// GatewayAPIVersion is the SQL Gateway REST API version this client speaks;
// Flink 2.2 serves V1 to V4 and V4 is its newest.
const GatewayAPIVersion = "v4"

// Gateway is a client of the Flink SQL Gateway's REST API.
type Gateway struct {
	rest    *restClient
	version string
}

// NewGateway returns a client of the SQL Gateway at baseURL
// (e.g. http://127.0.0.1:18083).
func NewGateway(baseURL string, opts Options) (*Gateway, error) {
	rc, err := newRESTClient(baseURL, opts)
	if err != nil {
		return nil, err
	}
	return &Gateway{rest: rc, version: GatewayAPIVersion}, nil
}

func (g *Gateway) path(format string, args ...any) string {
	return "/" + g.version + fmt.Sprintf(format, args...)
}

// APIVersions lists the REST API versions the gateway serves ("V1".."V4").
func (g *Gateway) APIVersions(ctx context.Context) ([]string, error) {
	var out struct {
		Versions []string `json:"versions"`
	}
	if err := g.rest.do(ctx, "GET", "/api_versions", retrySafe, nil, &out); err != nil {
		return nil, err
	}
	return out.Versions, nil
}

// CheckVersion fails unless the gateway serves the API version this client
// speaks, so a mismatch is reported as such rather than as a 404 later.
func (g *Gateway) CheckVersion(ctx context.Context) error {
	versions, err := g.APIVersions(ctx)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(versions, func(v string) bool { return strings.EqualFold(v, g.version) }) {
		return fmt.Errorf("flinksql: SQL Gateway serves REST API versions %v, this client needs %s", versions, strings.ToUpper(g.version))
	}
	return nil
}

// GatewayInfo is the gateway's product name and Flink version.
type GatewayInfo struct {
	ProductName string `json:"productName"`
	Version     string `json:"version"`
}

// Info asks the gateway what it is.
func (g *Gateway) Info(ctx context.Context) (GatewayInfo, error) {
	var info GatewayInfo
	err := g.rest.do(ctx, "GET", g.path("/info"), retrySafe, nil, &info)
	return info, err
}

// SessionConfig is what a session starts with.
type SessionConfig struct {
	// Name shows in the gateway's logs; optional.
	Name string
	// Properties are Flink configuration entries for every statement of the
	// session, e.g. "execution.runtime-mode": "streaming".
	Properties map[string]string
	// HeartbeatEvery, when positive, keeps the session alive from a
	// background goroutine until Close or the context given to OpenSession
	// ends. The gateway drops a session idle for
	// sql-gateway.session.idle-timeout (10 minutes by default).
	HeartbeatEvery time.Duration
}

// Session is one SQL Gateway session: temporary tables and SET options live
// in it, and jobs submitted from it run on after it is closed.
type Session struct {
	gw     *Gateway
	handle string

	stopHeartbeat context.CancelFunc
	heartbeatDone chan struct{}
	mu            sync.Mutex
	heartbeatErr  error
	closed        bool
}

// OpenSession opens a session. With cfg.HeartbeatEvery set, the heartbeat
// goroutine lives until Close or until ctx is done.
func (g *Gateway) OpenSession(ctx context.Context, cfg SessionConfig) (*Session, error) {
	req := struct {
		SessionName string            `json:"sessionName,omitempty"`
		Properties  map[string]string `json:"properties,omitempty"`
	}{cfg.Name, cfg.Properties}
	var out struct {
		SessionHandle string `json:"sessionHandle"`
	}
	// Opening twice after a lost answer only leaves an idle session that the
	// gateway expires, so the request is safe to retry.
	if err := g.rest.do(ctx, "POST", g.path("/sessions"), retrySafe, req, &out); err != nil {
		return nil, fmt.Errorf("open SQL Gateway session: %w", err)
	}
	if out.SessionHandle == "" {
		return nil, errors.New("flinksql: open SQL Gateway session: answer has no sessionHandle")
	}
	s := &Session{gw: g, handle: out.SessionHandle}
	if cfg.HeartbeatEvery > 0 {
		s.startHeartbeat(ctx, cfg.HeartbeatEvery)
	}
	return s, nil
}

// Handle is the gateway's id of the session.
func (s *Session) Handle() string { return s.handle }

func (s *Session) path(format string, args ...any) string {
	return s.gw.path("/sessions/"+url.PathEscape(s.handle)+format, args...)
}

// Heartbeat tells the gateway the session is still in use.
func (s *Session) Heartbeat(ctx context.Context) error {
	if err := s.gw.rest.do(ctx, "POST", s.path("/heartbeat"), retrySafe, nil, nil); err != nil {
		return fmt.Errorf("heartbeat of session %s: %w", s.handle, err)
	}
	return nil
}

func (s *Session) startHeartbeat(parent context.Context, every time.Duration) {
	ctx, cancel := context.WithCancel(parent)
	s.stopHeartbeat = cancel
	s.heartbeatDone = make(chan struct{})
	go func() {
		defer close(s.heartbeatDone)
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				err := s.Heartbeat(ctx)
				s.mu.Lock()
				s.heartbeatErr = err
				s.mu.Unlock()
			}
		}
	}()
}

// HeartbeatErr is the outcome of the last background heartbeat (nil when it
// succeeded or none ran yet).
func (s *Session) HeartbeatErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heartbeatErr
}

// Config returns the session's effective configuration.
func (s *Session) Config(ctx context.Context) (map[string]string, error) {
	var out struct {
		Properties map[string]string `json:"properties"`
	}
	if err := s.gw.rest.do(ctx, "GET", s.path(""), retrySafe, nil, &out); err != nil {
		return nil, fmt.Errorf("config of session %s: %w", s.handle, err)
	}
	return out.Properties, nil
}

// Close stops the heartbeat and closes the session. Jobs submitted from it
// keep running. Closing twice is a no-op.
func (s *Session) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.stopHeartbeat != nil {
		s.stopHeartbeat()
		<-s.heartbeatDone
	}
	var out struct {
		Status string `json:"status"`
	}
	if err := s.gw.rest.do(ctx, "DELETE", s.path(""), retryOnlyUnsent, nil, &out); err != nil {
		return fmt.Errorf("close session %s: %w", s.handle, err)
	}
	return nil
}
