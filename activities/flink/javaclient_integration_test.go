//go:build integration

package flink

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magiconair/properties"

	"github.com/flowproof/flowproof/internal/kafkaconn"
	"github.com/flowproof/flowproof/internal/localstack"
)

// The properties the jobs' Kafka tables get are checked by the Kafka
// client inside the stack's own flink-sql-connector-kafka jar (see
// testdata/KafkaClientCheck.java): the JAAS configuration names the
// connector's shaded login module and parses back to the user and the
// password, quotes and backslashes included, and a consumer builds with
// the PEM truststore and the PEM keystore of certificate and PKCS#8 key.
func TestJavaKafkaClientTakesTheJobsProperties(t *testing.T) {
	jars, err := filepath.Glob(filepath.Join(localstack.CacheDir(), "jars", "flink-*", "*.jar"))
	if err != nil {
		t.Fatal(err)
	}
	var classpath []string
	for _, jar := range jars {
		if base := filepath.Base(jar); strings.HasPrefix(base, "flink-sql-connector-kafka-") || strings.HasPrefix(base, "slf4j-api-") {
			classpath = append(classpath, jar)
		}
	}
	if len(classpath) != 2 {
		t.Fatalf("want the connector and slf4j-api jars under %s, found %v: run bin/stackctl install", localstack.CacheDir(), classpath)
	}
	dir := t.TempDir()
	keystore := writePEMKeystore(t, dir)
	const password = `p'w"d\x ${not.a.reference}`
	for _, mechanism := range []string{kafkaconn.MechanismSCRAMSHA512, kafkaconn.MechanismPlain} {
		t.Run(mechanism, func(t *testing.T) {
			security := kafkaconn.Settings{TLS: true, CAFile: keystore, CertFile: keystore, KeyFile: keystore,
				SASLMechanism: mechanism, SASLUser: "flowproof", SASLPassword: password}
			kafka, err := KafkaFor(security, []string{"127.0.0.1:1"}, kafkaconn.JavaClient{CAFile: keystore, KeystoreFile: security.DefaultKeystoreFile()}, "")
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, mechanism+".properties")
			p := properties.NewProperties()
			p.DisableExpansion = true
			for k, v := range kafka.Properties {
				if _, _, err := p.Set(k, v); err != nil {
					t.Fatal(err)
				}
			}
			f, err := os.Create(file)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Write(f, properties.UTF8); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("java", "-cp", strings.Join(classpath, ":"), "testdata/KafkaClientCheck.java", file).CombinedOutput()
			if err != nil {
				t.Fatalf("KafkaClientCheck: %v\n%s", err, out)
			}
			module := "org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.ScramLoginModule"
			if mechanism == kafkaconn.MechanismPlain {
				module = "org.apache.flink.kafka.shaded.org.apache.kafka.common.security.plain.PlainLoginModule"
			}
			for _, want := range []string{"login-module=" + module, "username=flowproof", "password=" + password, "consumer=built"} {
				if !strings.Contains(string(out), want+"\n") {
					t.Errorf("Kafka's Java client did not say %q:\n%s", want, out)
				}
			}
		})
	}
}

// writePEMKeystore writes a self-signed certificate and its PKCS#8 key
// into one PEM file, which serves as CA, truststore and keystore.
func writePEMKeystore(t *testing.T, dir string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flowproof test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "keystore.pem")
	text := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) + string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
