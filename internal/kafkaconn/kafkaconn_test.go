package kafkaconn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestSASLMechanisms(t *testing.T) {
	for mechanism, want := range map[string]string{
		"PLAIN":         "PLAIN",
		"scram-sha-256": "SCRAM-SHA-256",
		"SCRAM-SHA-512": "SCRAM-SHA-512",
	} {
		s, err := FromEnv(envMap(map[string]string{
			EnvSASLMechanism: mechanism, EnvSASLUser: "u", EnvSASLPassword: "p",
		}))
		if err != nil {
			t.Fatalf("%s: %v", mechanism, err)
		}
		if got := s.saslMechanism(); got == nil || got.Name() != want {
			t.Errorf("%s: mechanism %v, want %s", mechanism, got, want)
		}
		opts, err := s.ClientOptions()
		if err != nil || len(opts) != 1 {
			t.Errorf("%s: %d client options (%v), want 1 (SASL)", mechanism, len(opts), err)
		}
		if s.Describe() != "plaintext, SASL "+want+" as u" {
			t.Errorf("describe = %q", s.Describe())
		}
	}
}

func TestSettingsThatDoNotFit(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"sasl without mechanism": {map[string]string{EnvSASLUser: "u", EnvSASLPassword: "p"}, EnvSASLMechanism},
		"sasl without password":  {map[string]string{EnvSASLMechanism: "PLAIN", EnvSASLUser: "u"}, EnvSASLPassword},
		"sasl unknown":           {map[string]string{EnvSASLMechanism: "GSSAPI", EnvSASLUser: "u", EnvSASLPassword: "p"}, "GSSAPI"},
		"tls not a bool":         {map[string]string{EnvTLS: "yes please"}, EnvTLS},
		"ca without tls":         {map[string]string{EnvTLSCAFile: "/ca.pem"}, EnvTLS + "=1"},
		"cert without key":       {map[string]string{EnvTLS: "1", EnvTLSCertFile: "/c.pem"}, EnvTLSKeyFile},
	} {
		_, err := FromEnv(envMap(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %s", name, err, tc.want)
		}
	}
}

func TestPasswordStaysOutOfErrorsAndDescription(t *testing.T) {
	s, err := FromEnv(envMap(map[string]string{EnvSASLMechanism: "SCRAM-SHA-1", EnvSASLUser: "alice", EnvSASLPassword: "hunter2-password"}))
	if err == nil || strings.Contains(err.Error(), "hunter2-password") {
		t.Fatalf("error %v: want a failure that does not contain the password", err)
	}
	s.SASLMechanism = MechanismSCRAMSHA512
	if strings.Contains(s.Describe(), "hunter2") {
		t.Errorf("describe shows the password: %q", s.Describe())
	}
}

func TestTLSWithCAFileAndClientCertificate(t *testing.T) {
	dir := t.TempDir()
	caPEM, certPEM, keyPEM := selfSignedCAPEM(t)
	ca, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	for path, content := range map[string][]byte{ca: caPEM, cert: certPEM, key: keyPEM} {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := FromEnv(envMap(map[string]string{EnvTLS: "1", EnvTLSCAFile: ca, EnvTLSServerName: "kafka.internal", EnvTLSCertFile: cert, EnvTLSKeyFile: key}))
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	cfg, err := s.tlsConfig()
	if err != nil {
		t.Fatalf("tlsConfig: %v", err)
	}
	if cfg.RootCAs == nil || cfg.ServerName != "kafka.internal" || len(cfg.Certificates) != 1 {
		t.Fatalf("tls config = %+v, want a CA pool, the server name and a client certificate", cfg)
	}
	if s.Describe() != "TLS (client certificate)" {
		t.Errorf("describe = %q", s.Describe())
	}

	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = FromEnv(envMap(map[string]string{EnvTLS: "true", EnvTLSCAFile: notPEM}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClientOptions(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a CA file without certificates gave %v", err)
	}
}

// selfSignedCAPEM returns a self-signed certificate (doubling as CA and
// client certificate) and its key, PEM encoded.
func selfSignedCAPEM(t *testing.T) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "flowproof test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
