package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	flinkactivities "github.com/flowproof/flowproof/activities/flink"
	"github.com/flowproof/flowproof/internal/kafkaconn"
	"github.com/flowproof/flowproof/internal/localstack"
)

func secureTestStack(t *testing.T) *stack {
	t.Helper()
	s := testStack(t)
	s.opts.profile = profileSecure
	return s
}

func TestStackDataKeepsItsProfile(t *testing.T) {
	s := secureTestStack(t)
	if err := s.claimDataProfile(); err != nil {
		t.Fatal(err)
	}
	s.opts.profile = profileDefault
	err := s.claimDataProfile()
	if err == nil || !strings.Contains(err.Error(), `made for profile "secure"`) || !strings.Contains(err.Error(), "FLOWPROOF_STACK_DIR="+s.dir+"-default") {
		t.Fatalf("claiming secure data for the default profile: %v, want a refusal that says what to do", err)
	}
	// A secure stack beside the default one, as make test-secure keeps it.
	beside := &stack{dir: filepath.Join(t.TempDir(), "stack-secure"), opts: defaultOptions()}
	beside.opts.profile = profileSecure
	if err := beside.claimDataProfile(); err != nil {
		t.Fatal(err)
	}
	beside.opts.profile = profileDefault
	if err := beside.claimDataProfile(); err == nil || !strings.Contains(err.Error(), "FLOWPROOF_STACK_DIR="+strings.TrimSuffix(beside.dir, "-secure")+")") {
		t.Errorf("default profile on a secure stack dir: %v, want it to point at the default stack's dir", err)
	}
	s.opts.profile = "sekure"
	if err := s.claimDataProfile(); err == nil || !strings.Contains(err.Error(), "unknown profile") {
		t.Errorf("unknown profile: %v", err)
	}
}

func TestKafkaDataFromBeforeProfilesIsTheDefaultProfiles(t *testing.T) {
	s := secureTestStack(t)
	if err := os.MkdirAll(kafkaLogDir(s, 2), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(kafkaLogDir(s, 2), "meta.properties"), []byte("cluster.id=x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.claimDataProfile(); err == nil {
		t.Fatal("formatted Kafka storage without a profile record was taken for the secure profile")
	}
	s.opts.profile = profileDefault
	if err := s.claimDataProfile(); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.dataProfile(); got != profileDefault {
		t.Errorf("recorded profile %q", got)
	}
}

// TestCertificatesServeTLSToClientsThatTrustTheCA runs a TLS handshake
// with the generated files, as Kafka's and Temporal's clients will: the
// server certificate must verify for 127.0.0.1 and localhost against the
// CA, and the server must accept the client certificate.
func TestCertificatesServeTLSToClientsThatTrustTheCA(t *testing.T) {
	certs := secureTestStack(t).certs()
	if err := certs.ensure(); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{certs.caKey(), certs.serverKey(), certs.clientKey(), certs.serverKeyStore()} {
		if info, err := os.Stat(key); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v, want 0600", key, err, info.Mode().Perm())
		}
	}
	store, err := os.ReadFile(certs.serverKeyStore())
	if err != nil || !bytes.HasPrefix(store, []byte("-----BEGIN PRIVATE KEY-----")) || bytes.Count(store, []byte("BEGIN CERTIFICATE")) != 2 {
		t.Errorf("key store: want a PKCS#8 key, then the server's and the CA's certificates (%v)", err)
	}

	caPEM, _ := os.ReadFile(certs.caCert())
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	serverCert, err := tls.LoadX509KeyPair(certs.serverCert(), certs.serverKey())
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := tls.LoadX509KeyPair(certs.clientCert(), certs.clientKey())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.(*tls.Conn).Handshake()
			_ = conn.Close()
		}
	}()
	for _, name := range []string{"", serverName} {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: name, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Errorf("handshake with server name %q: %v", name, err)
			continue
		}
		_ = conn.Close()
	}
	if _, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{MinVersion: tls.VersionTLS12}); err == nil {
		t.Error("a client that does not trust the stack's CA completed a handshake")
	}
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); host != localstack.Host {
		t.Fatalf("listener on %s", host)
	}
}

func TestCertificatesAreKeptAndRenewedNearTheirEnd(t *testing.T) {
	certs := secureTestStack(t).certs()
	if err := certs.ensure(); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(certs.serverCert())
	caFirst, _ := os.ReadFile(certs.caCert())
	if err := certs.ensure(); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(certs.serverCert()); !bytes.Equal(first, again) {
		t.Error("a second ensure replaced a valid server certificate")
	}
	// A server certificate about to expire, signed by the same CA.
	ca, caKey, err := loadCertAndKey(certs.caCert(), certs.caKey())
	if err != nil {
		t.Fatal(err)
	}
	old := serverTemplate()
	old.NotAfter = time.Now().Add(renewBefore / 2)
	if err := writeLeaf(old, ca, caKey, certs.serverCert(), certs.serverKey()); err != nil {
		t.Fatal(err)
	}
	if err := certs.ensure(); err != nil {
		t.Fatal(err)
	}
	renewed, _, err := loadCertAndKey(certs.serverCert(), certs.serverKey())
	if err != nil || time.Until(renewed.NotAfter) < leafValidity-time.Hour {
		t.Errorf("server certificate near its end was not renewed (%v)", err)
	}
	if caAgain, _ := os.ReadFile(certs.caCert()); !bytes.Equal(caFirst, caAgain) {
		t.Error("renewing a leaf replaced the CA, which every client trusts")
	}
}

func TestSecureEnvGivesKafkaSettingsThatFitTogether(t *testing.T) {
	s := secureTestStack(t)
	if _, err := printEnvString(s); err == nil || !strings.Contains(err.Error(), "up --profile secure") {
		t.Errorf("env before up: %v, want a hint to bring the secure stack up", err)
	}
	passwords, err := ensureKafkaPasswords(s)
	if err != nil {
		t.Fatal(err)
	}
	env, _ := printedEnv(t, s)
	settings, err := kafkaconn.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if !settings.TLS || settings.SASLMechanism != kafkaconn.MechanismSCRAMSHA512 || settings.SASLUser != kafkaClientUser ||
		settings.SASLPassword != passwords[kafkaClientUser] || settings.CAFile != s.certs().caCert() {
		t.Errorf("settings from env: %s, CA %s", settings.Describe(), settings.CAFile)
	}
	if env[EnvStackProfile] != profileSecure || env[localstack.EnvStackDir] != s.dir {
		t.Errorf("profile %q, stack dir %q", env[EnvStackProfile], env[localstack.EnvStackDir])
	}
	if info, err := os.Stat(kafkaPasswordFile(s, kafkaClientUser)); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("password file: %v", err)
	}

	// The worker and the drill worker get the same settings in their
	// environment, the password nowhere on their command line.
	for _, specOf := range []func(*stack) (process, error){workerProcessSpec, drillWorkerProcessSpec} {
		spec, err := specOf(s)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.Join(spec.argv, " "), passwords[kafkaClientUser]) {
			t.Errorf("the SCRAM password is on the command line of %s", spec.name)
		}
		processEnv := strings.Join(spec.environment(nil), "\n")
		if !strings.Contains(processEnv, kafkaconn.EnvSASLPassword+"="+passwords[kafkaClientUser]) || !strings.Contains(processEnv, kafkaconn.EnvTLS+"=1") {
			t.Errorf("%s's environment lacks the Kafka settings:\n%s", spec.name, strings.ReplaceAll(processEnv, passwords[kafkaClientUser], "***"))
		}
	}
}

// The Flink jobs' Kafka clients get the secure profile's longer connection
// set-up through the worker's own path: stackctl env, then the properties
// file the worker reads and checks.
func TestSecureEnvGivesFlinksKafkaClientsLongerToConnect(t *testing.T) {
	s := secureTestStack(t)
	if _, err := ensureKafkaPasswords(s); err != nil {
		t.Fatal(err)
	}
	if err := writeFlinkKafkaProperties(s); err != nil {
		t.Fatal(err)
	}
	env, _ := printedEnv(t, s)
	getenv := func(k string) string { return env[k] }
	settings, err := kafkaconn.FromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	kafka, err := flinkactivities.KafkaFromEnv(getenv, settings, []string{"127.0.0.1:19092"})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"socket.connection.setup.timeout.ms": "30000", "socket.connection.setup.timeout.max.ms": "60000"} {
		if got := kafka.Properties[key]; got != want {
			t.Errorf("Flink's Kafka property %s = %q, want %q", key, got, want)
		}
	}
}

func TestDefaultEnvUnsetsTheSecureSettings(t *testing.T) {
	out, err := printEnvString(testStack(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "unset "+kafkaconn.EnvTLS+" ") || !strings.Contains(out, "export "+EnvStackProfile+"='default'") || strings.Contains(out, "export "+kafkaconn.EnvSASLPassword) {
		t.Errorf("default env:\n%s", out)
	}
}

func TestSecureKafkaConfigHasNoPlaintextListenerForClients(t *testing.T) {
	s := secureTestStack(t)
	cfg := parseSettings(t, kafkaServerConfig(s, 1, map[string]string{kafkaBrokerUser: "brokerpw", kafkaClientUser: "clientpw"}), "=", false)
	if cfg["listeners"] != "SASL_SSL://127.0.0.1:19092,CONTROLLER://127.0.0.1:19192" || cfg["advertised.listeners"] != "SASL_SSL://127.0.0.1:19092" {
		t.Errorf("listeners %q, advertised %q", cfg["listeners"], cfg["advertised.listeners"])
	}
	if cfg["inter.broker.listener.name"] != "SASL_SSL" || !strings.Contains(cfg["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"], `username="broker" password="brokerpw"`) {
		t.Errorf("inter-broker: %q", cfg["inter.broker.listener.name"])
	}
	if cfg["listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config"] != scramLoginModule+" required;" {
		t.Errorf("SCRAM-SHA-256 on the listener needs a login of its own, got %q", cfg["listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config"])
	}
	if strings.Contains(kafkaServerConfig(s, 1, map[string]string{kafkaBrokerUser: "brokerpw", kafkaClientUser: "clientpw"}), "clientpw") {
		t.Error("the client user's password is in the brokers' config; only format needs it")
	}
	args := strings.Join(kafkaFormatSCRAMArgs(map[string]string{kafkaBrokerUser: "b", kafkaClientUser: "c"}), " ")
	if args != "--add-scram SCRAM-SHA-512=[name=flowproof,password=c] --add-scram SCRAM-SHA-256=[name=flowproof,password=c] --add-scram SCRAM-SHA-512=[name=broker,password=b]" {
		t.Errorf("format args %q", args)
	}
}

func printEnvString(s *stack) (string, error) {
	var b bytes.Buffer
	err := printEnv(s, &b)
	return b.String(), err
}

func TestSCRAMPasswordsReachFormatThroughAFileOnly(t *testing.T) {
	dir := t.TempDir()
	args := kafkaFormatSCRAMArgs(map[string]string{kafkaBrokerUser: "b-secret", kafkaClientUser: "c-secret"})
	file, err := argumentFile(dir, args)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n"); !slices.Equal(got, args) {
		t.Errorf("argument file lines %q, want one per argument %q", got, args)
	}
	if info, _ := os.Stat(file); info.Mode().Perm() != 0o600 {
		t.Errorf("argument file mode %v", info.Mode().Perm())
	}
	if _, err := argumentFile(dir, []string{"a\nb"}); err == nil {
		t.Error("an argument with a newline was written, which the parser would split")
	}
	out := redactPasswords("unrecognized arguments: password=c-secret] password=b-secret]", map[string]string{kafkaBrokerUser: "b-secret", kafkaClientUser: "c-secret"})
	if strings.Contains(out, "secret") {
		t.Errorf("redacted output %q", out)
	}
}

// printedEnv reads `stackctl env` of s back into variables, as a shell
// that evaluates it would have them, and returns its text too.
func printedEnv(t *testing.T, s *stack) (map[string]string, string) {
	t.Helper()
	out, err := printEnvString(s)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			name, value, _ := strings.Cut(kv, "=")
			env[name] = strings.Trim(value, "'")
		}
	}
	return env, out
}
