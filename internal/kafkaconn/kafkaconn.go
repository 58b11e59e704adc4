// Package kafkaconn is the one place where flowproof's Kafka connection
// security is configured: TLS (a CA, an optional client certificate) and
// SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), read once from the
// environment and turned into options for every franz-go client the worker
// makes. Secrets come from the environment only, never from flags, which
// other users of a machine can read in the process list.
package kafkaconn

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// The environment variables of the settings.
const (
	EnvTLS           = "FLOWPROOF_KAFKA_TLS"
	EnvTLSCAFile     = "FLOWPROOF_KAFKA_TLS_CA_FILE"
	EnvTLSCertFile   = "FLOWPROOF_KAFKA_TLS_CERT_FILE"
	EnvTLSKeyFile    = "FLOWPROOF_KAFKA_TLS_KEY_FILE"
	EnvTLSServerName = "FLOWPROOF_KAFKA_TLS_SERVER_NAME"
	EnvSASLMechanism = "FLOWPROOF_KAFKA_SASL_MECHANISM"
	EnvSASLUser      = "FLOWPROOF_KAFKA_SASL_USER"
	EnvSASLPassword  = "FLOWPROOF_KAFKA_SASL_PASSWORD"
)

// SASL mechanisms flowproof speaks, as Kafka names them.
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
)

// Settings say how to reach a Kafka cluster securely. The zero value is
// plaintext without authentication.
type Settings struct {
	TLS bool
	// CAFile is a PEM bundle of the CAs to trust; empty trusts the system's.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// clusters that authenticate clients by certificate (mTLS); both or
	// neither.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the brokers' certificates.
	ServerName string

	SASLMechanism string // empty: no SASL
	SASLUser      string
	SASLPassword  string
}

// FromEnv reads the settings from the FLOWPROOF_KAFKA_TLS* and
// FLOWPROOF_KAFKA_SASL_* variables (getenv is os.Getenv outside tests) and
// checks that they fit together. Errors name variables, never a password.
func FromEnv(getenv func(string) string) (Settings, error) {
	s := Settings{
		CAFile:        getenv(EnvTLSCAFile),
		CertFile:      getenv(EnvTLSCertFile),
		KeyFile:       getenv(EnvTLSKeyFile),
		ServerName:    getenv(EnvTLSServerName),
		SASLMechanism: strings.ToUpper(strings.TrimSpace(getenv(EnvSASLMechanism))),
		SASLUser:      getenv(EnvSASLUser),
		SASLPassword:  getenv(EnvSASLPassword),
	}
	if raw := strings.TrimSpace(getenv(EnvTLS)); raw != "" {
		on, err := strconv.ParseBool(raw)
		if err != nil {
			return Settings{}, fmt.Errorf("%s: want true or false (1 or 0), got %q", EnvTLS, raw)
		}
		s.TLS = on
	}
	return s, s.Check()
}

// Check says what does not fit together, naming the variables to fix.
func (s Settings) Check() error {
	if !s.TLS && (s.CAFile != "" || s.CertFile != "" || s.KeyFile != "" || s.ServerName != "") {
		return fmt.Errorf("%s, %s, %s or %s is set but %s is not: set %s=1 to use TLS",
			EnvTLSCAFile, EnvTLSCertFile, EnvTLSKeyFile, EnvTLSServerName, EnvTLS, EnvTLS)
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return fmt.Errorf("a client certificate needs both %s and %s", EnvTLSCertFile, EnvTLSKeyFile)
	}
	if s.SASLMechanism == "" {
		if s.SASLUser != "" || s.SASLPassword != "" {
			return fmt.Errorf("%s or %s is set but %s is not: set it to %s, %s or %s",
				EnvSASLUser, EnvSASLPassword, EnvSASLMechanism, MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512)
		}
		return nil
	}
	switch s.SASLMechanism {
	case MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512:
	default:
		return fmt.Errorf("%s: want %s, %s or %s, got %q", EnvSASLMechanism, MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512, s.SASLMechanism)
	}
	if s.SASLUser == "" || s.SASLPassword == "" {
		return fmt.Errorf("%s=%s needs both %s and %s", EnvSASLMechanism, s.SASLMechanism, EnvSASLUser, EnvSASLPassword)
	}
	return nil
}

// ClientOptions are the franz-go options that apply the settings; none for
// plaintext. They read the certificate files, so a missing or broken file
// is reported here, once, rather than on every dial.
func (s Settings) ClientOptions() ([]kgo.Opt, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	var opts []kgo.Opt
	if s.TLS {
		cfg, err := s.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if mechanism := s.saslMechanism(); mechanism != nil {
		opts = append(opts, kgo.SASL(mechanism))
	}
	return opts, nil
}

func (s Settings) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: read CA file: %w", EnvTLSCAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", EnvTLSCAFile, s.CAFile)
		}
		cfg.RootCAs = pool
	}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			// The error of LoadX509KeyPair names files and PEM blocks, never
			// key material.
			return nil, fmt.Errorf("%s / %s: load client certificate: %w", EnvTLSCertFile, EnvTLSKeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (s Settings) saslMechanism() sasl.Mechanism {
	switch s.SASLMechanism {
	case MechanismPlain:
		return plain.Auth{User: s.SASLUser, Pass: s.SASLPassword}.AsMechanism()
	case MechanismSCRAMSHA256:
		return scram.Auth{User: s.SASLUser, Pass: s.SASLPassword}.AsSha256Mechanism()
	case MechanismSCRAMSHA512:
		return scram.Auth{User: s.SASLUser, Pass: s.SASLPassword}.AsSha512Mechanism()
	}
	return nil
}

// Describe names the security for logs, without any secret: "plaintext",
// "TLS", "TLS (client certificate), SASL SCRAM-SHA-512 as flowproof".
func (s Settings) Describe() string {
	parts := []string{"plaintext"}
	if s.TLS {
		parts[0] = "TLS"
		if s.CertFile != "" {
			parts[0] = "TLS (client certificate)"
		}
	}
	if s.SASLMechanism != "" {
		parts = append(parts, "SASL "+s.SASLMechanism+" as "+s.SASLUser)
	}
	return strings.Join(parts, ", ")
}

// Variable is one environment variable of the settings, for help texts.
type Variable struct{ Name, Meaning string }

// Variables lists the settings' environment variables with their meaning.
func Variables() []Variable {
	return []Variable{
		{EnvTLS, "1: connect to Kafka over TLS"},
		{EnvTLSCAFile, "PEM file of the CAs that sign the brokers' certificates (default: the system's)"},
		{EnvTLSCertFile, "PEM client certificate, for clusters that authenticate clients by certificate"},
		{EnvTLSKeyFile, "PEM key of the client certificate"},
		{EnvTLSServerName, "name to verify the brokers' certificates against (default: the broker's host)"},
		{EnvSASLMechanism, MechanismPlain + ", " + MechanismSCRAMSHA256 + " or " + MechanismSCRAMSHA512},
		{EnvSASLUser, "SASL user"},
		{EnvSASLPassword, "SASL password"},
	}
}
