package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

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

func (temporal) binary(s *stack) string {
	return filepath.Join(s.cacheDir, "temporal-"+temporalCLIVersion, "temporal")
}

func (t temporal) install(ctx context.Context, s *stack) error {
	bin := t.binary(s)
	if info, err := os.Stat(bin); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
		return nil
	}
	if _, err := exec.LookPath("go"); err != nil {
		return fmt.Errorf("building the temporal CLI needs the go tool: %w", err)
	}
	// The build goes to a scratch GOBIN and is renamed into place only when
	// complete, so an interrupted build never passes for an installed binary.
	scratch := filepath.Join(s.cacheDir, "temporal-"+temporalCLIVersion+".partial-"+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return fmt.Errorf("create build dir: %w", err)
	}
	defer func() { _ = os.RemoveAll(scratch) }()
	logf("building the temporal CLI %s from Go modules into %s (first time only; takes several minutes)", temporalCLIVersion, bin)
	began := time.Now()
	cmd := exec.CommandContext(ctx, "go", "install", temporalCLIModule+"@"+temporalCLIVersion)
	cmd.Dir = scratch // outside the flowproof module, so its go.mod plays no part
	cmd.Env = append(os.Environ(), "GOBIN="+scratch, "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go install %s@%s: %w\n%s", temporalCLIModule, temporalCLIVersion, err, lastLines(string(out), 30))
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(bin), err)
	}
	if err := os.Rename(filepath.Join(scratch, "temporal"), bin); err != nil {
		return fmt.Errorf("move built temporal CLI into place: %w", err)
	}
	logf("built the temporal CLI in %s", time.Since(began).Round(time.Second))
	return nil
}

func (t temporal) start(_ context.Context, s *stack) error {
	dataDir := s.dataDir("temporal")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dataDir, err)
	}
	return s.start(process{name: "temporal", argv: t.argv(s), dir: dataDir})
}

// argv is the dev server's command line.
func (t temporal) argv(s *stack) []string {
	argv := []string{
		t.binary(s), "server", "start-dev",
		"--ip", localstack.Host,
		"--port", strconv.Itoa(localstack.TemporalPort),
		"--ui-port", strconv.Itoa(localstack.TemporalUIPort),
		"--metrics-port", strconv.Itoa(localstack.TemporalMetricsPort),
		"--db-filename", filepath.Join(s.dataDir("temporal"), "temporal.db"),
		"--log-level", "warn",
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
	server := health.Temporal(ctx, client.Options{HostPort: address, Namespace: localstack.FromEnv().TemporalNamespace})
	ui := health.TemporalUI(ctx, localstack.FromEnv().TemporalUIURL)
	res := server
	res.Component = "temporal"
	res.Addresses = append(append([]string(nil), server.Addresses...), ui.Addresses...)
	res.Healthy = server.Healthy && ui.Healthy
	res.LatencyMillis = server.LatencyMillis + ui.LatencyMillis
	res.Detail = strings.Join([]string{server.Detail, ui.Detail}, "; ")
	return res
}

func (temporal) processes(*stack) []string { return []string{"temporal"} }
