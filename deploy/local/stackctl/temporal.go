package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/flowproof/flowproof/internal/health"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/searchattr"
)

// temporalCLIVersion pins the temporal CLI whose dev server (Temporal server
// and Web UI in one binary, SQLite persistence) runs the local stack. It is
// built as its own binary rather than linked into flowproof: the CLI pins its
// own server and SDK versions, which must not be coupled to the SDK in our
// go.mod.
const temporalCLIVersion = "v1.5.1"

const temporalCLIModule = "github.com/temporalio/cli/cmd/temporal"

// temporal runs `temporal server start-dev` with a SQLite file under the stack
// dir, so namespaces, search attributes and workflow histories survive a
// restart of the stack.
type temporal struct{}

func (temporal) name() string { return "temporal" }

func (temporal) cli(s *stack) goInstalled {
	return goInstalled{
		what: "the temporal CLI", pkg: temporalCLIModule, version: temporalCLIVersion,
		binary: filepath.Join(s.cacheDir, "temporal-"+temporalCLIVersion, "temporal"),
	}
}

func (t temporal) install(ctx context.Context, s *stack) error { return t.cli(s).install(ctx) }

func (t temporal) start(_ context.Context, s *stack) error {
	dataDir := s.dataDir("temporal")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dataDir, err)
	}
	return s.start(process{name: "temporal", argv: t.argv(s), dir: dataDir, env: lessGCEnvironment})
}

// databaseFile is the dev server's SQLite file.
func (temporal) databaseFile(s *stack) string {
	return filepath.Join(s.dataDir("temporal"), "temporal.db")
}

// argv is the dev server's command line.
func (t temporal) argv(s *stack) []string {
	argv := []string{
		t.cli(s).binary, "server", "start-dev",
		"--ip", localstack.Host,
		"--port", strconv.Itoa(localstack.TemporalPort),
		"--ui-port", strconv.Itoa(localstack.TemporalUIPort),
		"--metrics-port", strconv.Itoa(localstack.TemporalMetricsPort),
		"--db-filename", t.databaseFile(s),
		"--log-level", "warn",
		// SQLite's default rollback journal writes, syncs and deletes a
		// journal file on every commit; with a write-ahead log a commit is
		// one append, synced only at checkpoints. The dev server took
		// less CPU in each of four pairs of fresh 1,000,000-message runs
		// (docs/performance.md, "Temporal's SQLite in WAL mode"). A crash
		// of the process loses nothing; a crash of the machine may lose
		// the last commits, never the database.
		"--sqlite-pragma", "journal_mode=WAL",
		"--sqlite-pragma", "synchronous=NORMAL",
		// A worker that completes a workflow task gets the activities it
		// schedules on its own task queue in the answer, started, instead
		// of through the queue: 9.7-14.9 against 16.7-21.9 ms of the dev
		// server's CPU an activity, and half the time
		// (deploy/local/activityprice; docs/performance.md, "Temporal:
		// activities started eagerly"). Off by default in the server;
		// users' clusters choose for themselves.
		"--dynamic-config-value", "system.enableActivityEagerExecution=true",
		// A developer's own temporal CLI profile or TEMPORAL_* variables are
		// for their client commands; they must not reshape the stack's server.
		"--disable-config-file", "--disable-config-env",
	}
	for _, ns := range temporalNamespaces() {
		argv = append(argv, "--namespace", ns)
	}
	// Registering attributes that the database already holds with the same
	// type is accepted by the dev server, so a restart passes them again.
	return append(argv, searchattr.DevServerFlags()...)
}

// temporalNamespaces are the namespaces the dev server creates: the
// project's, plus another one when TEMPORAL_NAMESPACE names it, so the worker
// and tests find whichever they were told to use.
func temporalNamespaces() []string {
	namespaces := []string{localstack.TemporalNamespace}
	if ns := localstack.FromEnv().TemporalNamespace; ns != localstack.TemporalNamespace {
		namespaces = append(namespaces, ns)
	}
	return namespaces
}

// check asks the server started here (not a TEMPORAL_ADDRESS override) to
// describe the namespace, and the UI for its front page and settings; both
// must answer.
// The stack's own process must be alive too: otherwise a server of another
// stack dir holding the same ports would pass for this one.
func (temporal) check(ctx context.Context, s *stack) health.Result {
	address := localstack.Host + ":" + strconv.Itoa(localstack.TemporalPort)
	pid, ok := s.running("temporal")
	if !ok {
		return health.Result{
			Component: "temporal",
			Detail:    fmt.Sprintf("temporal process of this stack is not running (see %s)", s.logFile("temporal")),
			Addresses: []string{address, localstack.FromEnv().TemporalUIURL},
		}
	}
	if !listensOn(pid, localstack.TemporalPort) {
		return health.Result{
			Component: "temporal",
			Detail:    fmt.Sprintf("temporal (pid %d) does not listen on port %d (yet); see %s", pid, localstack.TemporalPort, s.logFile("temporal")),
			Addresses: []string{address, localstack.FromEnv().TemporalUIURL},
		}
	}
	return joinTemporalResults(
		health.Temporal(ctx, client.Options{HostPort: address, Namespace: localstack.FromEnv().TemporalNamespace}),
		health.TemporalUI(ctx, localstack.FromEnv().TemporalUIURL))
}

// joinTemporalResults reports the server's and the UI's checks as the
// temporal component's: healthy when both are.
func joinTemporalResults(server, ui health.Result) health.Result {
	res := server
	res.Component = "temporal"
	res.Addresses = append(append([]string(nil), server.Addresses...), ui.Addresses...)
	res.Healthy = server.Healthy && ui.Healthy
	res.LatencyMillis = server.LatencyMillis + ui.LatencyMillis
	res.Detail = strings.Join([]string{server.Detail, ui.Detail}, "; ")
	return res
}

// quietTemporalLogger drops the SDK's lines: stackctl dials every second
// while a server starts, and the SDK would log each attempt.
func quietTemporalLogger() log.Logger {
	return log.NewStructuredLogger(slog.New(slog.DiscardHandler))
}

func (temporal) processes(*stack) []string { return []string{"temporal"} }
