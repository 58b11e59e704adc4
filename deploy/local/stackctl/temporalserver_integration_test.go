//go:build integration

package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/procfs"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdktemporal "go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/health"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/searchattr"
)

// These tests need the secure profile's PostgreSQL and Temporal server
// (make test-secure runs them): `bin/stackctl up --profile secure` (or
// `--only postgres,temporal`), then eval "$(bin/stackctl env)". They are
// skipped on the default profile.

func secureLiveStack(t *testing.T) *stack {
	t.Helper()
	if os.Getenv(EnvStackProfile) != profileSecure {
		t.Skipf("needs the secure profile: bin/stackctl up --profile %s, then eval \"$(bin/stackctl env)\" (%s=%q)",
			profileSecure, EnvStackProfile, os.Getenv(EnvStackProfile))
	}
	s, err := newStack()
	if err != nil {
		t.Fatal(err)
	}
	if !s.secure() {
		t.Fatalf("the stack in %s runs profile %q; these tests need `stackctl up --profile secure`", s.dir, s.opts.profile)
	}
	return s
}

func TestSecureTemporalRefusesClientsWithoutTheStacksCertificate(t *testing.T) {
	s := secureLiveStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	good, err := temporalClientOptions(s)
	if err != nil {
		t.Fatal(err)
	}
	address := good.HostPort

	plaintext := health.Temporal(ctx, client.Options{HostPort: address, Namespace: localstack.TemporalNamespace})
	if plaintext.Healthy {
		t.Errorf("a plaintext client described the namespace: %s", plaintext.Detail)
	}
	// TLS that trusts the CA but shows no client certificate.
	noCert := good
	noCert.ConnectionOptions.TLS = &tls.Config{RootCAs: good.ConnectionOptions.TLS.RootCAs, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if res := health.Temporal(ctx, noCert); res.Healthy {
		t.Errorf("a client without a certificate described the namespace: %s", res.Detail)
	}
	// A client certificate, but no trust in the stack's CA.
	untrusting := good
	untrusting.ConnectionOptions.TLS = &tls.Config{Certificates: good.ConnectionOptions.TLS.Certificates, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if res := health.Temporal(ctx, untrusting); res.Healthy {
		t.Errorf("a client that does not trust the CA described the namespace: %s", res.Detail)
	}

	res := health.Temporal(ctx, good)
	if !res.Healthy || !strings.Contains(res.Detail, "server 1.29.1") {
		t.Fatalf("with the stack's CA and client certificate: %s", res.Detail)
	}
}

func TestSecureTemporalHasTheSearchAttributesOnSQLVisibility(t *testing.T) {
	s := secureLiveStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts, err := temporalClientOptions(s)
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = quietTemporalLogger()
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	listed, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: opts.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range searchattr.Definitions() {
		if got, ok := listed.GetCustomAttributes()[d.Name]; !ok || got != d.IndexedType {
			t.Errorf("search attribute %s: %v (present %v), want %v", d.Name, got, ok, d.IndexedType)
		}
	}
	// Registering again is a no-op, as every up does it.
	if err := registerTemporalNamespaces(ctx, opts); err != nil {
		t.Errorf("second registration: %v", err)
	}
}

func TestSecureStackStatusCoversPostgresAndTemporal(t *testing.T) {
	s := secureLiveStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pg := postgres{}.check(ctx, s)
	if !pg.Healthy || !strings.Contains(pg.Detail, "databases temporal, temporal_visibility") {
		t.Errorf("postgres: %s", pg.Detail)
	}
	tr := temporalServer{}.check(ctx, s)
	if !tr.Healthy || !strings.Contains(tr.Detail, "ui ") {
		t.Errorf("temporal: %s", tr.Detail)
	}

	// A wrong password is refused: the check's login means something.
	conn, err := temporalConn(ctx, s, "temporal")
	if err != nil {
		t.Fatal(err)
	}
	var version string
	if err := conn.QueryRow(ctx, "SELECT curr_version FROM schema_version").Scan(&version); err != nil || version == "" {
		t.Errorf("schema version of the temporal database: %q, %v", version, err)
	}
	_ = conn.Close(ctx)
	config := conn.Config().Copy()
	config.Password = "wrong"
	if bad, err := pgx.ConnectConfig(ctx, config); err == nil {
		_ = bad.Close(ctx)
		t.Error("PostgreSQL accepted the temporal role with a wrong password")
	}
}

func TestSecureTemporalKeepsThePostgresPasswordOffCommandLines(t *testing.T) {
	s := secureLiveStack(t)
	password, err := localstack.PostgresPassword(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{postgresProcess, temporalServerProcess, temporalUIProcess} {
		pid, ok := s.running(name)
		if !ok {
			t.Fatalf("%s is not running", name)
		}
		proc, err := procfs.NewProc(pid)
		if err != nil {
			t.Fatal(err)
		}
		argv, err := proc.CmdLine()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.Join(argv, " "), password) {
			t.Errorf("%s (pid %d) has the password on its command line", name, pid)
		}
	}
	for _, log := range []string{s.logFile(postgresProcess), s.logFile(temporalServerProcess), s.logFile("temporal-sql-tool")} {
		raw, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), password) {
			t.Errorf("%s holds the password", log)
		}
	}
	info, err := os.Stat(temporalServerDir(s) + "/config/" + temporalConfigEnv + ".yaml")
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("server config (holds the password): %v, mode %v", err, info.Mode().Perm())
	}
	if !listensOn(mustRunning(t, s, postgresProcess), localstack.PostgresPort) {
		t.Errorf("postgres does not listen on %s", strconv.Itoa(localstack.PostgresPort))
	}
}

func mustRunning(t *testing.T, s *stack, name string) int {
	t.Helper()
	pid, ok := s.running(name)
	if !ok {
		t.Fatalf("%s is not running", name)
	}
	return pid
}

// TestSecureTemporalFindsWorkflowsBySearchAttribute starts a workflow
// (no worker needs to run it) carrying flowproof's search attributes and
// finds it through a visibility query on them: PostgreSQL visibility
// accepts and indexes attributes only once the operator service has
// registered them.
func TestSecureTemporalFindsWorkflowsBySearchAttribute(t *testing.T) {
	s := secureLiveStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts, err := temporalClientOptions(s)
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = quietTemporalLogger()
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id := "stackctl-search-attributes-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: "stackctl-no-worker", WorkflowExecutionTimeout: 5 * time.Minute,
		TypedSearchAttributes: sdktemporal.NewSearchAttributes(searchattr.Stage.ValueSet(id), searchattr.MessageCount.ValueSet(42)),
	}, "NoSuchWorkflowType")
	if err != nil {
		t.Fatalf("start a workflow with flowproof's search attributes: %v", err)
	}
	defer func() { _ = c.TerminateWorkflow(context.Background(), id, run.GetRunID(), "test done") }()
	query := fmt.Sprintf("%s = '%s' AND %s = 42", searchattr.StageName, id, searchattr.MessageCountName)
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			t.Fatalf("list %q: %v", query, err)
		}
		if len(resp.GetExecutions()) == 1 && resp.GetExecutions()[0].GetExecution().GetWorkflowId() == id {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("visibility never found %s by %q", id, query)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
