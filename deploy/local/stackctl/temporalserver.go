package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flowproof/flowproof/internal/health"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/searchattr"
)

// The secure profile's Temporal is the server proper, as a cluster runs
// it: frontend, history, matching and worker services (in one process) on
// PostgreSQL, the schema set up by Temporal's own SQL tool, the frontend
// serving TLS and requiring a client certificate signed by the stack's CA,
// and the Temporal UI server as its own process. Clients reach it at the
// dev server's addresses.
//
//	data/temporal/config/flowproof.yaml     the server's config (0600: it holds the PostgreSQL password)
//	data/temporal/ui/config/flowproof.yaml  the UI server's config
//	logs/temporal-sql-tool.log              what the schema tool did at each up
const (
	// temporalServerVersion is the server the CLI of temporalCLIVersion
	// embeds, so that both profiles run the same server.
	temporalServerVersion = "v1.29.1"
	temporalServerModule  = "go.temporal.io/server"
	// temporalUIServerVersion is the UI the CLI of temporalCLIVersion embeds.
	temporalUIServerVersion = "v2.42.1"
	temporalUIServerModule  = "github.com/temporalio/ui-server/v2"
)

const (
	temporalServerProcess = "temporal"
	temporalUIProcess     = "temporal-ui"
	// temporalConfigEnv is the --env of both servers, which read
	// config/<env>.yaml under their --root.
	temporalConfigEnv = "flowproof"
	temporalSQLPlugin = "postgres12"
	// temporalRetention is how long a namespace keeps the histories of
	// closed workflows; the dev server keeps them as long.
	temporalRetention = 24 * time.Hour
)

type temporalServer struct{}

func (temporalServer) name() string { return "temporal" }

func (temporalServer) processes(*stack) []string {
	return []string{temporalServerProcess, temporalUIProcess}
}

// temporalBuilds are the server, its SQL tool and the UI server, built
// from the modules' own go.mod files.
type temporalBuilds struct{ server, sqlTool, ui goInstalled }

func temporalServerBuilds(s *stack) temporalBuilds {
	serverDir := filepath.Join(s.cacheDir, "temporal-server-"+temporalServerVersion)
	return temporalBuilds{
		server: goInstalled{what: "the Temporal server", pkg: temporalServerModule + "/cmd/server", version: temporalServerVersion,
			binary: filepath.Join(serverDir, "temporal-server")},
		sqlTool: goInstalled{what: "Temporal's SQL schema tool", pkg: temporalServerModule + "/cmd/tools/sql", version: temporalServerVersion,
			binary: filepath.Join(serverDir, "temporal-sql-tool")},
		ui: goInstalled{what: "the Temporal UI server", pkg: temporalUIServerModule + "/cmd/server", version: temporalUIServerVersion,
			binary: filepath.Join(s.cacheDir, "temporal-ui-server-"+temporalUIServerVersion, "temporal-ui-server")},
	}
}

func (temporalServer) install(ctx context.Context, s *stack) error {
	builds := temporalServerBuilds(s)
	for _, b := range []goInstalled{builds.server, builds.sqlTool, builds.ui} {
		if err := b.install(ctx); err != nil {
			return err
		}
	}
	return nil
}

func temporalServerDir(s *stack) string { return s.dataDir("temporal") }
func temporalUIDir(s *stack) string     { return filepath.Join(s.dataDir("temporal"), "ui") }

func (temporalServer) start(ctx context.Context, s *stack) error {
	builds := temporalServerBuilds(s)
	password, err := localstack.PostgresPassword(s.dir)
	if err != nil {
		return fmt.Errorf("the Temporal server needs PostgreSQL, which makes the password (stackctl up --only postgres): %w", err)
	}
	if err := setupTemporalSchema(ctx, s, builds.sqlTool.binary, password); err != nil {
		return err
	}
	config, err := yaml.Marshal(temporalServerConfig(s, password))
	if err != nil {
		return fmt.Errorf("render the Temporal server config: %w", err)
	}
	if err := writeConfigFile(filepath.Join(temporalServerDir(s), "config", temporalConfigEnv+".yaml"), config, 0o600); err != nil {
		return err
	}
	err = s.start(process{name: temporalServerProcess, dir: temporalServerDir(s), argv: []string{
		builds.server.binary, "--root", temporalServerDir(s), "--config", "config", "--env", temporalConfigEnv,
		// Client certificates authenticate; authorization (claims, roles)
		// is for a real cluster's own plugins.
		"--allow-no-auth", "start",
	}})
	if err != nil {
		return err
	}
	if err := prepareTemporalNamespaces(ctx, s); err != nil {
		return err
	}
	uiConfig, err := yaml.Marshal(temporalUIConfig(s))
	if err != nil {
		return fmt.Errorf("render the Temporal UI config: %w", err)
	}
	if err := writeConfigFile(filepath.Join(temporalUIDir(s), "config", temporalConfigEnv+".yaml"), uiConfig, 0o644); err != nil {
		return err
	}
	return s.start(process{name: temporalUIProcess, dir: temporalUIDir(s), argv: []string{
		builds.ui.binary, "--root", temporalUIDir(s), "--config", "config", "--env", temporalConfigEnv, "start",
	}})
}

func writeConfigFile(path string, content []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	header := []byte("# Written by flowproof stackctl on every `up`; edits are overwritten.\n")
	return writeFileAtomic(path, append(header, content...), mode)
}

// temporalSchemas are Temporal's databases with the schema the SQL tool
// embeds for each.
var temporalSchemas = []struct{ database, schema string }{
	{"temporal", "postgresql/v12/temporal"},
	{"temporal_visibility", "postgresql/v12/visibility"},
}

// setupTemporalSchema runs Temporal's SQL tool as its docs say: create the
// database, set up the versioning tables, update to the newest schema the
// tool embeds. Each step is a no-op on a database that has it already, so
// every up runs them all and a newer server's schema arrives by itself.
func setupTemporalSchema(ctx context.Context, s *stack, sqlTool, password string) error {
	logFile := s.logFile("temporal-sql-tool")
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", logFile, err)
	}
	defer func() { _ = out.Close() }()
	for _, db := range temporalSchemas {
		for _, step := range [][]string{
			{"create-database"},
			{"setup-schema", "--version", "0.0"},
			{"update-schema", "--schema-name", db.schema},
		} {
			argv := append([]string{
				"--plugin", temporalSQLPlugin, "--endpoint", localstack.Host, "--port", strconv.Itoa(localstack.PostgresPort),
				"--user", localstack.PostgresUser, "--database", db.database,
			}, step...)
			fmt.Fprintf(out, "==== %s temporal-sql-tool %s\n", time.Now().Format(time.RFC3339), strings.Join(argv, " "))
			cmd := exec.CommandContext(ctx, sqlTool, argv...)
			// The password goes through the environment, never argv.
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SQL_PASSWORD=" + password}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("temporal-sql-tool %s on %s: %w (see %s)", step[0], db.database, err, logFile)
			}
		}
	}
	return nil
}

// yamlMap keeps the config renderers short; the server's own schema
// (common/config/config.go of the server module) is what the keys follow.
type yamlMap = map[string]any

// temporalServerConfig is the server's config: PostgreSQL for persistence
// and visibility, every service on loopback, TLS with client certificates
// on the frontend (the system worker, a client of the frontend, presents
// the stack's client certificate) and Prometheus metrics where the dev
// server has them. The services behind the frontend talk plaintext on
// loopback.
func temporalServerConfig(s *stack, password string) yamlMap {
	certs := s.certs()
	datastore := func(database string, conns int) yamlMap {
		return yamlMap{"sql": yamlMap{
			"pluginName": temporalSQLPlugin, "databaseName": database,
			"connectAddr": postgresAddr(), "connectProtocol": "tcp",
			"user": localstack.PostgresUser, "password": password,
			// Each of the four services opens pools of this size.
			"maxConns": conns, "maxIdleConns": conns, "maxConnLifetime": "1h",
		}}
	}
	rpc := func(grpcPort, membershipPort int) yamlMap {
		return yamlMap{"rpc": yamlMap{"grpcPort": grpcPort, "membershipPort": membershipPort, "bindOnIP": localstack.Host}}
	}
	frontendClient := yamlMap{"serverName": serverName, "rootCaFiles": []string{certs.caCert()}}
	return yamlMap{
		"log": yamlMap{"stdout": true, "level": "warn"},
		"persistence": yamlMap{
			"defaultStore": "default", "visibilityStore": "visibility", "numHistoryShards": 4,
			"datastores": yamlMap{
				"default":    datastore(temporalSchemas[0].database, 10),
				"visibility": datastore(temporalSchemas[1].database, 5),
			},
		},
		"global": yamlMap{
			"membership": yamlMap{"maxJoinDuration": "30s", "broadcastAddress": localstack.Host},
			"tls": yamlMap{
				"frontend": yamlMap{
					"server": yamlMap{
						"certFile": certs.serverCert(), "keyFile": certs.serverKey(),
						"requireClientAuth": true, "clientCaFiles": []string{certs.caCert()},
					},
					"client": frontendClient,
				},
				"systemWorker": yamlMap{"certFile": certs.clientCert(), "keyFile": certs.clientKey(), "client": frontendClient},
			},
			"metrics": yamlMap{"prometheus": yamlMap{
				"framework": "tally", "timerType": "histogram",
				"listenAddress": fmt.Sprintf("%s:%d", localstack.Host, localstack.TemporalMetricsPort),
			}},
		},
		"services": yamlMap{
			"frontend": rpc(localstack.TemporalPort, localstack.TemporalFrontendMembershipPort),
			"history":  rpc(localstack.TemporalHistoryPort, localstack.TemporalHistoryMembershipPort),
			"matching": rpc(localstack.TemporalMatchingPort, localstack.TemporalMatchingMembershipPort),
			"worker":   rpc(localstack.TemporalWorkerPort, localstack.TemporalWorkerMembershipPort),
		},
		"clusterMetadata": yamlMap{
			"enableGlobalNamespace": false, "failoverVersionIncrement": 10,
			"masterClusterName": "active", "currentClusterName": "active",
			"clusterInformation": yamlMap{"active": yamlMap{
				"enabled": true, "initialFailoverVersion": 1, "rpcName": "frontend",
				"rpcAddress": fmt.Sprintf("%s:%d", localstack.Host, localstack.TemporalPort),
			}},
		},
		"dcRedirectionPolicy": yamlMap{"policy": "noop"},
		"archival": yamlMap{
			"history":    yamlMap{"state": "disabled"},
			"visibility": yamlMap{"state": "disabled"},
		},
		"namespaceDefaults": yamlMap{"archival": yamlMap{
			"history":    yamlMap{"state": "disabled"},
			"visibility": yamlMap{"state": "disabled"},
		}},
	}
}

// temporalUIConfig is the UI server's config: on loopback where the dev
// server has its UI, reaching the frontend with TLS and the stack's client
// certificate, checking the frontend's certificate against the stack's CA.
func temporalUIConfig(s *stack) yamlMap {
	certs := s.certs()
	return yamlMap{
		"temporalGrpcAddress": fmt.Sprintf("%s:%d", localstack.Host, localstack.TemporalPort),
		"host":                localstack.Host,
		"port":                localstack.TemporalUIPort,
		"enableUi":            true,
		"defaultNamespace":    localstack.FromEnv().TemporalNamespace,
		"notifyOnNewVersion":  false,
		// The UI is served over plain HTTP on loopback; a Secure cookie
		// would never come back, and the UI's write actions need it.
		"cors": yamlMap{"cookieInsecure": true},
		"auth": yamlMap{"enabled": false},
		"tls": yamlMap{
			"caFile": certs.caCert(), "certFile": certs.clientCert(), "keyFile": certs.clientKey(),
			"enableHostVerification": true, "serverName": serverName,
		},
	}
}

// temporalClientProfile is how a client reaches the secure profile's
// frontend, in the terms of the SDK's envconfig: stackctl's own clients
// are built from it, and `stackctl env` prints it for the others.
func temporalClientProfile(s *stack) envconfig.ClientConfigProfile {
	certs := s.certs()
	return envconfig.ClientConfigProfile{
		Address:   fmt.Sprintf("%s:%d", localstack.Host, localstack.TemporalPort),
		Namespace: localstack.FromEnv().TemporalNamespace,
		TLS: &envconfig.ClientConfigTLS{
			ServerCACertPath: certs.caCert(),
			ClientCertPath:   certs.clientCert(),
			ClientKeyPath:    certs.clientKey(),
			ServerName:       serverName,
		},
	}
}

// temporalClientOptions are temporalClientProfile's, for stackctl's own
// clients.
func temporalClientOptions(s *stack) (client.Options, error) {
	profile := temporalClientProfile(s)
	opts, err := profile.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil {
		return client.Options{}, fmt.Errorf("temporal client options: %w", err)
	}
	return opts, nil
}

// prepareTemporalNamespaces waits for the frontend, then registers the
// namespaces and, in each, flowproof's search attributes. The dev server
// does both from its flags; the server proper has none, and its SQL
// visibility rejects a search attribute that was not added through the
// operator service first. Each step leaves what exists alone, so every up
// runs them.
func prepareTemporalNamespaces(ctx context.Context, s *stack) error {
	opts, err := temporalClientOptions(s)
	if err != nil {
		return err
	}
	opts.Logger = quietTemporalLogger()
	deadline := time.Now().Add(s.opts.readyTimeout)
	for {
		err := registerTemporalNamespaces(ctx, opts)
		if err == nil {
			return nil
		}
		if _, ok := s.running(temporalServerProcess); !ok {
			return fmt.Errorf("temporal server exited; see %s: %w", s.logFile(temporalServerProcess), err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespaces and search attributes not registered after %s: %w; see %s", s.opts.readyTimeout, err, s.logFile(temporalServerProcess))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func registerTemporalNamespaces(ctx context.Context, opts client.Options) error {
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := client.DialContext(dialCtx, opts)
	if err != nil {
		return fmt.Errorf("dial temporal at %s: %w", opts.HostPort, err)
	}
	defer c.Close()
	for _, ns := range temporalNamespaces() {
		_, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace:                        ns,
			WorkflowExecutionRetentionPeriod: durationpb.New(temporalRetention),
		})
		if err != nil && !errors.As(err, new(*serviceerror.NamespaceAlreadyExists)) {
			return fmt.Errorf("register namespace %s: %w", ns, err)
		}
		if err := addSearchAttributes(ctx, c.OperatorService(), ns); err != nil {
			return err
		}
	}
	return nil
}

// addSearchAttributes adds those of searchattr.Definitions that the
// namespace lacks; one it has with another type is an error, since
// workflows would fail to upsert it.
func addSearchAttributes(ctx context.Context, operator operatorservice.OperatorServiceClient, namespace string) error {
	listed, err := operator.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, d := range searchattr.Definitions() {
		have, ok := listed.GetCustomAttributes()[d.Name]
		switch {
		case !ok:
			missing[d.Name] = d.IndexedType
		case have != d.IndexedType:
			return fmt.Errorf("namespace %s has search attribute %s as %s, flowproof needs %s", namespace, d.Name, have, d.IndexedType)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := operator.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing}); err != nil {
		return fmt.Errorf("add search attributes to %s: %w", namespace, err)
	}
	logf("registered search attributes %s in namespace %s", strings.Join(slices.Sorted(maps.Keys(missing)), ", "), namespace)
	return nil
}

// check is the dev server's check over TLS with the stack's client
// certificate: the namespace described by the frontend and the UI's front
// page and settings; both processes of this stack must be alive.
func (temporalServer) check(ctx context.Context, s *stack) health.Result {
	address := fmt.Sprintf("%s:%d", localstack.Host, localstack.TemporalPort)
	addresses := []string{address, localstack.FromEnv().TemporalUIURL}
	for _, p := range []struct {
		name string
		port int
	}{{temporalServerProcess, localstack.TemporalPort}, {temporalUIProcess, localstack.TemporalUIPort}} {
		pid, ok := s.running(p.name)
		if !ok {
			return health.Result{Component: "temporal", Addresses: addresses,
				Detail: fmt.Sprintf("%s process of this stack is not running (see %s)", p.name, s.logFile(p.name))}
		}
		if !listensOn(pid, p.port) {
			return health.Result{Component: "temporal", Addresses: addresses,
				Detail: fmt.Sprintf("%s (pid %d) does not listen on port %d (yet); see %s", p.name, pid, p.port, s.logFile(p.name))}
		}
	}
	opts, err := temporalClientOptions(s)
	if err != nil {
		return health.Result{Component: "temporal", Addresses: addresses, Detail: err.Error()}
	}
	return joinTemporalResults(health.Temporal(ctx, opts), health.TemporalUI(ctx, localstack.FromEnv().TemporalUIURL))
}
