package kafkaconn

import (
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/magiconair/properties"
)

// The environment variables of how the Flink jobs' Kafka clients connect,
// where that differs from the worker's own connection; the worker has a
// flag for each.
const (
	// EnvFlinkBrokers are the bootstrap servers as Flink reaches them;
	// default the worker's.
	EnvFlinkBrokers = "FLOWPROOF_FLINK_KAFKA_BROKERS"
	// EnvFlinkTLSCAFile is the CA bundle's path on Flink's hosts; default
	// the worker's FLOWPROOF_KAFKA_TLS_CA_FILE.
	EnvFlinkTLSCAFile = "FLOWPROOF_FLINK_KAFKA_TLS_CA_FILE"
	// EnvFlinkTLSKeystoreFile is, for a client certificate, the path on
	// Flink's hosts of one PEM file with the key and the certificate chain.
	EnvFlinkTLSKeystoreFile = "FLOWPROOF_FLINK_KAFKA_TLS_KEYSTORE_FILE"
	// EnvFlinkPropertiesFile is a Java properties file, read by the
	// worker, whose entries every Kafka table of the jobs gets.
	EnvFlinkPropertiesFile = "FLOWPROOF_FLINK_KAFKA_PROPERTIES_FILE"
)

// JavaClient is what a Kafka client in a JVM elsewhere (Flink's Kafka
// connector) needs beyond Settings to connect as the worker does. Its
// files are paths on that client's hosts, which the worker cannot check.
type JavaClient struct {
	// CAFile is the PEM CA bundle to trust; empty trusts the JVM's own CAs.
	CAFile string
	// KeystoreFile is one PEM file with the client's unencrypted PKCS#8
	// private key ("BEGIN PRIVATE KEY") and its certificate chain:
	// kafka-clients reads a PEM keystore from a single file. Required
	// when Settings has a client certificate.
	KeystoreFile string
	// ClassPrefix is the package prefix of a relocated (shaded)
	// kafka-clients, which the JAAS login module's class is named with.
	ClassPrefix string
}

// JavaProperties are the kafka-clients properties that connect as s says
// (security.protocol, sasl.mechanism, sasl.jaas.config, ssl.truststore.*,
// ssl.keystore.*); none for plaintext. sasl.jaas.config holds the SASL
// password: the caller must keep the properties out of logs and errors.
//
// Kafka's Java client verifies the brokers' certificates against the
// address it dials and has no setting for another name, so s.ServerName
// has no counterpart here: Flink must dial the brokers by a name their
// certificates carry (EnvFlinkBrokers).
func (s Settings) JavaProperties(c JavaClient) (map[string]string, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	props := map[string]string{}
	switch {
	case s.TLS && s.SASLMechanism != "":
		props["security.protocol"] = "SASL_SSL"
	case s.TLS:
		props["security.protocol"] = "SSL"
	case s.SASLMechanism != "":
		props["security.protocol"] = "SASL_PLAINTEXT"
	}
	if s.SASLMechanism != "" {
		jaas, err := s.jaasConfig(c.ClassPrefix)
		if err != nil {
			return nil, err
		}
		props["sasl.mechanism"] = s.SASLMechanism
		props["sasl.jaas.config"] = jaas
	}
	if !s.TLS {
		if c.CAFile != "" || c.KeystoreFile != "" {
			return nil, fmt.Errorf("%s or %s is set but %s is not: the worker and Flink use the same security", EnvFlinkTLSCAFile, EnvFlinkTLSKeystoreFile, EnvTLS)
		}
		return props, nil
	}
	if c.CAFile != "" {
		props["ssl.truststore.type"] = "PEM"
		props["ssl.truststore.location"] = c.CAFile
	}
	switch {
	case s.CertFile != "" && c.KeystoreFile == "":
		return nil, fmt.Errorf("the worker has a client certificate (%s) but Flink has none: set %s to one PEM file with the PKCS#8 key and the certificate chain as Flink's hosts see it",
			EnvTLSCertFile, EnvFlinkTLSKeystoreFile)
	case s.CertFile == "" && c.KeystoreFile != "":
		return nil, fmt.Errorf("%s is set but the worker has no client certificate (%s): the worker and Flink use the same security", EnvFlinkTLSKeystoreFile, EnvTLSCertFile)
	case c.KeystoreFile != "":
		if c.KeystoreFile == s.CertFile {
			// Only a file on the worker's own host can be looked at.
			if err := checkPEMKeystore(c.KeystoreFile); err != nil {
				return nil, fmt.Errorf("%s %s: %w", EnvFlinkTLSKeystoreFile, c.KeystoreFile, err)
			}
		}
		props["ssl.keystore.type"] = "PEM"
		props["ssl.keystore.location"] = c.KeystoreFile
	}
	return props, nil
}

// DefaultKeystoreFile is the worker's client certificate file when Flink
// can use it as it is: cert and key in one file.
func (s Settings) DefaultKeystoreFile() string {
	if s.CertFile != "" && s.CertFile == s.KeyFile {
		return s.CertFile
	}
	return ""
}

// jaasConfig is the JAAS configuration of the SASL login, the values
// quoted as Kafka's JAAS parser reads them (backslash escapes).
func (s Settings) jaasConfig(classPrefix string) (string, error) {
	module := "org.apache.kafka.common.security.plain.PlainLoginModule"
	if s.SASLMechanism != MechanismPlain {
		module = "org.apache.kafka.common.security.scram.ScramLoginModule"
	}
	if strings.ContainsAny(s.SASLUser+s.SASLPassword, "\r\n") {
		// Kafka's JAAS parser ends a quoted value at a line break.
		return "", fmt.Errorf("%s or %s holds a line break, which a JAAS configuration cannot carry", EnvSASLUser, EnvSASLPassword)
	}
	quote := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace
	return fmt.Sprintf(`%s%s required username="%s" password="%s";`, classPrefix, module, quote(s.SASLUser), quote(s.SASLPassword)), nil
}

// checkPEMKeystore checks that path holds what kafka-clients takes as a
// PEM keystore: a PKCS#8 private key and at least one certificate.
func checkPEMKeystore(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var keys, certs []string
	for {
		var block *pem.Block
		if block, raw = pem.Decode(raw); block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			certs = append(certs, block.Type)
		} else if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			keys = append(keys, block.Type)
		}
	}
	switch {
	case len(certs) == 0 || len(keys) == 0:
		return fmt.Errorf("want the private key and the certificate chain in one PEM file; found %d certificates and %d keys", len(certs), len(keys))
	case keys[0] != "PRIVATE KEY":
		return fmt.Errorf("the key is %q; Kafka's Java client reads only unencrypted PKCS#8 keys (BEGIN PRIVATE KEY): convert it with openssl pkcs8 -topk8 -nocrypt", keys[0])
	}
	return nil
}

// ReadPropertiesFile reads a Java properties file (key=value, key: value,
// # comments, backslash escapes and continuations), without expanding
// ${...} references, which kafka-clients does not do either.
func ReadPropertiesFile(path string) (map[string]string, error) {
	loader := properties.Loader{Encoding: properties.UTF8, DisableExpansion: true}
	p, err := loader.LoadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read properties file %s: %w", path, err)
	}
	return p.Map(), nil
}

// MergeProperties adds extra to props, refusing any key that props sets:
// one value per key, with no doubt about which one wins. source names
// where extra came from, for the error.
func MergeProperties(props, extra map[string]string, source string) (map[string]string, error) {
	merged := make(map[string]string, len(props)+len(extra))
	var twice []string
	for k, v := range props {
		merged[k] = v
	}
	for k, v := range extra {
		if _, set := props[k]; set {
			twice = append(twice, k)
			continue
		}
		merged[k] = v
	}
	if len(twice) > 0 {
		slices.Sort(twice)
		return nil, fmt.Errorf("%s sets %s, which the worker's Kafka security settings (FLOWPROOF_KAFKA_TLS*, FLOWPROOF_KAFKA_SASL_*) already set; remove them from it",
			source, strings.Join(twice, ", "))
	}
	return merged, nil
}
