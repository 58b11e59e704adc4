package main

import (
	"crypto/tls"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.temporal.io/sdk/contrib/envconfig"
	"go.yaml.in/yaml/v3"

	"github.com/flowproof/flowproof/internal/localstack"
)

// serverConfigView is the part of the Temporal server's config (keys as
// in common/config/config.go of the server module) that the stack relies on.
type serverConfigView struct {
	Persistence struct {
		DefaultStore    string `yaml:"defaultStore"`
		VisibilityStore string `yaml:"visibilityStore"`
		DataStores      map[string]struct {
			SQL struct {
				PluginName   string `yaml:"pluginName"`
				DatabaseName string `yaml:"databaseName"`
				ConnectAddr  string `yaml:"connectAddr"`
				User         string `yaml:"user"`
				Password     string `yaml:"password"`
				MaxConns     int    `yaml:"maxConns"`
			} `yaml:"sql"`
		} `yaml:"datastores"`
	} `yaml:"persistence"`
	Global struct {
		TLS struct {
			Frontend struct {
				Server struct {
					CertFile          string   `yaml:"certFile"`
					KeyFile           string   `yaml:"keyFile"`
					RequireClientAuth bool     `yaml:"requireClientAuth"`
					ClientCAFiles     []string `yaml:"clientCaFiles"`
				} `yaml:"server"`
			} `yaml:"frontend"`
			SystemWorker struct {
				CertFile string `yaml:"certFile"`
				Client   struct {
					ServerName  string   `yaml:"serverName"`
					RootCAFiles []string `yaml:"rootCaFiles"`
				} `yaml:"client"`
			} `yaml:"systemWorker"`
		} `yaml:"tls"`
		Metrics struct {
			Prometheus struct {
				ListenAddress string `yaml:"listenAddress"`
			} `yaml:"prometheus"`
		} `yaml:"metrics"`
	} `yaml:"global"`
	Services map[string]struct {
		RPC struct {
			GRPCPort       int    `yaml:"grpcPort"`
			MembershipPort int    `yaml:"membershipPort"`
			BindOnIP       string `yaml:"bindOnIP"`
		} `yaml:"rpc"`
	} `yaml:"services"`
}

func TestTemporalServerConfigBindsLoopbackAndRequiresClientCertificates(t *testing.T) {
	s := secureTestStack(t)
	raw, err := yaml.Marshal(temporalServerConfig(s, "pw-in-config"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg serverConfigView
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{cfg.Persistence.DefaultStore, cfg.Persistence.VisibilityStore} {
		sql := cfg.Persistence.DataStores[name].SQL
		if sql.PluginName != temporalSQLPlugin || sql.ConnectAddr != postgresAddr() || sql.User != localstack.PostgresUser || sql.Password != "pw-in-config" || sql.MaxConns == 0 {
			t.Errorf("store %q: %+v", name, sql)
		}
	}
	if cfg.Persistence.DataStores[cfg.Persistence.DefaultStore].SQL.DatabaseName != "temporal" ||
		cfg.Persistence.DataStores[cfg.Persistence.VisibilityStore].SQL.DatabaseName != "temporal_visibility" {
		t.Errorf("databases: %+v", cfg.Persistence.DataStores)
	}

	certs := s.certs()
	frontend := cfg.Global.TLS.Frontend.Server
	if frontend.CertFile != certs.serverCert() || frontend.KeyFile != certs.serverKey() || !frontend.RequireClientAuth || !slices.Equal(frontend.ClientCAFiles, []string{certs.caCert()}) {
		t.Errorf("frontend TLS: %+v", frontend)
	}
	worker := cfg.Global.TLS.SystemWorker
	if worker.CertFile != certs.clientCert() || worker.Client.ServerName != serverName || !slices.Equal(worker.Client.RootCAFiles, []string{certs.caCert()}) {
		t.Errorf("the system worker, a client of the frontend, would not pass its TLS: %+v", worker)
	}

	// Every port is on loopback and no two components of the stack share one.
	taken := map[int]string{}
	claim := func(port int, who string) {
		if other, ok := taken[port]; ok {
			t.Errorf("port %d: %s and %s", port, other, who)
		}
		taken[port] = who
	}
	for _, p := range []struct {
		port int
		who  string
	}{
		{localstack.KafkaBrokerPort1, "kafka"}, {localstack.KafkaBrokerPort2, "kafka"}, {localstack.KafkaBrokerPort3, "kafka"},
		{localstack.KafkaControllerPort1, "kafka"}, {localstack.KafkaControllerPort2, "kafka"}, {localstack.KafkaControllerPort3, "kafka"},
		{localstack.FlinkRESTPort, "flink"}, {localstack.FlinkRPCPort, "flink"}, {localstack.SQLGatewayPort, "sql gateway"},
		{localstack.TemporalUIPort, "temporal ui"}, {localstack.TokenServicePort, "token"}, {localstack.EndpointPort, "endpoint"},
		{localstack.PrometheusPort, "prometheus"}, {localstack.RedisPort, "redis"}, {localstack.WorkerMetricsPort, "worker"},
		{localstack.PostgresPort, "postgres"},
	} {
		claim(p.port, p.who)
	}
	for name, svc := range cfg.Services {
		if svc.RPC.BindOnIP != localstack.Host {
			t.Errorf("%s binds %q", name, svc.RPC.BindOnIP)
		}
		claim(svc.RPC.GRPCPort, name+" grpc")
		claim(svc.RPC.MembershipPort, name+" membership")
	}
	if len(cfg.Services) != 4 || cfg.Services["frontend"].RPC.GRPCPort != localstack.TemporalPort {
		t.Errorf("services %v; clients must find the frontend at %d", slices.Sorted(func(yield func(string) bool) {
			for k := range cfg.Services {
				if !yield(k) {
					return
				}
			}
		}), localstack.TemporalPort)
	}
	if cfg.Global.Metrics.Prometheus.ListenAddress != "127.0.0.1:17234" {
		t.Errorf("metrics at %q, want where the dev server has them", cfg.Global.Metrics.Prometheus.ListenAddress)
	}
}

func TestTemporalUIReachesTheFrontendWithTLS(t *testing.T) {
	s := secureTestStack(t)
	raw, err := yaml.Marshal(temporalUIConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Address string `yaml:"temporalGrpcAddress"`
		Host    string `yaml:"host"`
		Port    int    `yaml:"port"`
		TLS     struct {
			CAFile, CertFile, KeyFile string
			Verify                    bool `yaml:"enableHostVerification"`
		} `yaml:"tls"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Address != "127.0.0.1:17233" || cfg.Host != localstack.Host || cfg.Port != localstack.TemporalUIPort {
		t.Errorf("ui at %s:%d for %s", cfg.Host, cfg.Port, cfg.Address)
	}
	if !cfg.TLS.Verify || !strings.Contains(string(raw), "caFile: "+s.certs().caCert()) || !strings.Contains(string(raw), "certFile: "+s.certs().clientCert()) {
		t.Errorf("ui TLS:\n%s", raw)
	}
}

// TestSecureEnvGivesATemporalClientThatPassesMutualTLS reads `stackctl env`
// back as the worker does (the SDK's envconfig) and shakes hands with a
// server that, like the frontend, wants a client certificate from the CA.
func TestSecureEnvGivesATemporalClientThatPassesMutualTLS(t *testing.T) {
	s := secureTestStack(t)
	if err := s.certs().ensure(); err != nil {
		t.Fatal(err)
	}
	if _, err := ensureKafkaPasswords(s); err != nil {
		t.Fatal(err)
	}
	env, out := printedEnv(t, s)
	var profile envconfig.ClientConfigProfile
	if err := profile.ApplyEnvVars(mapEnv(env)); err != nil {
		t.Fatal(err)
	}
	opts, err := profile.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	clientTLS := opts.ConnectionOptions.TLS
	if clientTLS == nil {
		t.Fatalf("no TLS from env:\n%s", out)
	}

	serverCert, err := tls.LoadX509KeyPair(s.certs().serverCert(), s.certs().serverKey())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serverCert}, ClientCAs: clientTLS.RootCAs, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	handshakes := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			handshakes <- err
			return
		}
		handshakes <- conn.(*tls.Conn).Handshake()
		_ = conn.Close()
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), clientTLS)
	if err != nil {
		t.Fatalf("client from env: %v", err)
	}
	_ = conn.Close()
	if err := <-handshakes; err != nil {
		t.Errorf("server side of the handshake (client certificate): %v", err)
	}
}

type mapEnv map[string]string

func (m mapEnv) Environ() []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

func (m mapEnv) LookupEnv(k string) (string, bool) { v, ok := m[k]; return v, ok }

func TestPostgresAdmitsTheSuperuserOnTheSocketOnly(t *testing.T) {
	hba := postgresHBA()
	var rules []string
	for _, line := range strings.Split(hba, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			rules = append(rules, strings.Join(strings.Fields(line), " "))
		}
	}
	want := []string{"local all postgres trust", "host all temporal 127.0.0.1/32 scram-sha-256"}
	if !slices.Equal(rules, want) {
		t.Errorf("pg_hba rules %q, want %q", rules, want)
	}
	argv := strings.Join(postgresArgv("/usr/lib/postgresql/15/bin", "/stack/data/postgres/pgdata"), " ")
	for _, setting := range []string{"listen_addresses=127.0.0.1", "port=15432", "unix_socket_directories=/stack/data/postgres/pgdata", "log_min_error_statement=panic"} {
		if !strings.Contains(argv, "-c "+setting) {
			t.Errorf("postgres argv lacks %s: %s", setting, argv)
		}
	}
}

func TestPostgresPassageIsGrantedWhereTheUserIsStopped(t *testing.T) {
	closed := map[string]bool{"/root": true, "/root/.local/share/flowproof/stack/data": true}
	var granted []string
	canEnter := func(d string) bool {
		for c := d; ; c = filepath.Dir(c) {
			if closed[c] {
				return false
			}
			if filepath.Dir(c) == c {
				return true
			}
		}
	}
	grant := func(d string) error {
		granted = append(granted, d)
		delete(closed, d)
		return nil
	}
	if err := grantPassage("/root/.local/share/flowproof/stack/data/postgres", canEnter, grant); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(granted, []string{"/root", "/root/.local/share/flowproof/stack/data"}) {
		t.Errorf("granted %q, want the two closed directories, top down", granted)
	}

	refusing := func(string) error { return errors.New("operation not supported") }
	err := grantPassage("/srv/stack/data/postgres", func(d string) bool { return d != "/srv" }, refusing)
	if err == nil || !strings.Contains(err.Error(), "cannot enter /srv") || !strings.Contains(err.Error(), "FLOWPROOF_STACK_DIR") {
		t.Errorf("grant refused: %v, want an error naming /srv and what to do", err)
	}
}

func TestSecureProfileRunsPostgresBeforeTheTemporalServer(t *testing.T) {
	var names []string
	for _, c := range coreComponents(secureTestStack(t)) {
		names = append(names, c.name())
	}
	if !slices.Equal(names, []string{"kafka", "flink", "postgres", "temporal", "redis", "refsvc"}) {
		t.Errorf("secure components %q", names)
	}
	if _, ok := coreComponents(secureTestStack(t))[3].(temporalServer); !ok {
		t.Error("the secure profile's temporal is not the server proper")
	}
	if slices.Contains(componentNames(), "postgres") == false {
		t.Error("--only postgres would be refused")
	}
}
