package kafkaconn

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestJavaPropertiesPerSecurity(t *testing.T) {
	prefix := "shaded."
	cases := []struct {
		name string
		s    Settings
		c    JavaClient
		want map[string]string
	}{
		{"plaintext", Settings{}, JavaClient{}, map[string]string{}},
		{"TLS with the JVM's CAs", Settings{TLS: true}, JavaClient{}, map[string]string{"security.protocol": "SSL"}},
		{"TLS with a CA file", Settings{TLS: true, CAFile: "/w/ca.pem"}, JavaClient{CAFile: "/f/ca.pem"},
			map[string]string{"security.protocol": "SSL", "ssl.truststore.type": "PEM", "ssl.truststore.location": "/f/ca.pem"}},
		{"SASL PLAIN without TLS", Settings{SASLMechanism: MechanismPlain, SASLUser: "u", SASLPassword: `p"\`}, JavaClient{},
			map[string]string{"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
				"sasl.jaas.config": `shaded.org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p\"\\";`}},
		{"SASL SCRAM over TLS", Settings{TLS: true, SASLMechanism: MechanismSCRAMSHA512, SASLUser: "u", SASLPassword: "p"}, JavaClient{},
			map[string]string{"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
				"sasl.jaas.config": `shaded.org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p";`}},
		{"client certificate elsewhere", Settings{TLS: true, CertFile: "/w/c.pem", KeyFile: "/w/k.pem"}, JavaClient{KeystoreFile: "/f/keystore.pem"},
			map[string]string{"security.protocol": "SSL", "ssl.keystore.type": "PEM", "ssl.keystore.location": "/f/keystore.pem"}},
	}
	for _, c := range cases {
		c.c.ClassPrefix = prefix
		got, err := c.s.JavaProperties(c.c)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", c.name, k, got[k], v)
			}
		}
	}
}

func TestJavaPropertiesThatDoNotFit(t *testing.T) {
	for name, c := range map[string]struct {
		s    Settings
		c    JavaClient
		want string
	}{
		"client certificate without a keystore for Flink": {Settings{TLS: true, CertFile: "c", KeyFile: "k"}, JavaClient{}, EnvFlinkTLSKeystoreFile},
		"keystore without a client certificate":           {Settings{TLS: true}, JavaClient{KeystoreFile: "/f/k.pem"}, "the worker has no client certificate"},
		"CA file for Flink without TLS":                   {Settings{}, JavaClient{CAFile: "/f/ca.pem"}, "is set but " + EnvTLS + " is not"},
		"line break in the password":                      {Settings{SASLMechanism: MechanismPlain, SASLUser: "u", SASLPassword: "a\nb"}, JavaClient{}, "line break"},
	} {
		_, err := c.s.JavaProperties(c.c)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to say %q", name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "a\nb") {
			t.Errorf("%s: error quotes the password", name)
		}
	}
}

// The worker's own cert+key file is checked for what kafka-clients reads
// as a PEM keystore: a PKCS#8 key beside the certificate.
func TestKeystoreFileOfTheWorkerIsChecked(t *testing.T) {
	_, certPEM, ecKeyPEM := selfSignedCAPEM(t)
	dir := t.TempDir()
	sec1 := filepath.Join(dir, "sec1.pem")
	writeTestFile(t, sec1, string(certPEM)+string(ecKeyPEM))
	block, _ := pem.Decode(ecKeyPEM)
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8DER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := filepath.Join(dir, "pkcs8.pem")
	writeTestFile(t, pkcs8, string(certPEM)+string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8DER})))

	s := Settings{TLS: true, CertFile: sec1, KeyFile: sec1}
	if _, err := s.JavaProperties(JavaClient{KeystoreFile: s.DefaultKeystoreFile()}); err == nil || !strings.Contains(err.Error(), "openssl pkcs8 -topk8 -nocrypt") {
		t.Errorf("a SEC1 key for Flink: %v, want the conversion named", err)
	}
	s.CertFile, s.KeyFile = pkcs8, pkcs8
	props, err := s.JavaProperties(JavaClient{KeystoreFile: s.DefaultKeystoreFile()})
	if err != nil || props["ssl.keystore.location"] != pkcs8 {
		t.Errorf("a PKCS#8 cert+key file: %v, %v", props, err)
	}
	if got := (Settings{CertFile: "c", KeyFile: "k"}).DefaultKeystoreFile(); got != "" {
		t.Errorf("separate cert and key files default Flink's keystore to %q, want none", got)
	}
}

func TestReadAndMergePropertiesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "extra.properties")
	writeTestFile(t, path, "! comment\nclient.dns.lookup=use_all_dns_ips\nsasl.login.class = x\\\n  .Y\nliteral=${not.expanded}\n")
	extra, err := ReadPropertiesFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if extra["client.dns.lookup"] != "use_all_dns_ips" || extra["sasl.login.class"] != "x.Y" || extra["literal"] != "${not.expanded}" || len(extra) != 3 {
		t.Errorf("ReadPropertiesFile = %v", extra)
	}
	if _, err := MergeProperties(map[string]string{"sasl.login.class": "a"}, extra, path); err == nil || !strings.Contains(err.Error(), path+" sets sasl.login.class") {
		t.Errorf("a key set twice: %v", err)
	}
	merged, err := MergeProperties(map[string]string{"security.protocol": "SSL"}, extra, path)
	if err != nil || len(merged) != 4 {
		t.Errorf("MergeProperties = %v, %v", merged, err)
	}
}

func writeTestFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
