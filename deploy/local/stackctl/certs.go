package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/flowproof/flowproof/internal/localstack"
)

// The secure profile's certificates, made by stackctl once per stack dir
// under tls/: a CA of the stack's own, a server certificate for 127.0.0.1
// and localhost (Kafka's brokers, Temporal's frontend) and a client
// certificate (Temporal's mTLS). Keys are unencrypted PKCS#8 PEM, mode
// 0600: they protect a throwaway local stack, and every consumer (Go,
// Kafka's PEM key store, Temporal) reads that form.
type stackTLS struct{ dir string }

func (s *stack) certs() stackTLS { return stackTLS{dir: filepath.Join(s.dir, "tls")} }

func (t stackTLS) caCert() string     { return filepath.Join(t.dir, "ca.pem") }
func (t stackTLS) caKey() string      { return filepath.Join(t.dir, "ca.key") }
func (t stackTLS) serverCert() string { return filepath.Join(t.dir, "server.pem") }
func (t stackTLS) serverKey() string  { return filepath.Join(t.dir, "server.key") }
func (t stackTLS) clientCert() string { return filepath.Join(t.dir, "client.pem") }
func (t stackTLS) clientKey() string  { return filepath.Join(t.dir, "client.key") }

// serverKeyStore is the server's key and certificate chain in one file,
// the form of Kafka's PEM key store (ssl.keystore.type=PEM).
func (t stackTLS) serverKeyStore() string { return filepath.Join(t.dir, "server-keystore.pem") }

// serverName is the name clients check in the server certificate.
const serverName = "localhost"

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 2 * 365 * 24 * time.Hour
	// renewBefore renews a leaf certificate this long before it expires,
	// so that a stack that runs for days does not see it lapse.
	renewBefore = 30 * 24 * time.Hour
)

// ensure makes what is missing: a new CA also renews the certificates it
// signs, and a leaf near its end is renewed from the CA it has.
func (t stackTLS) ensure() error {
	if err := os.MkdirAll(t.dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", t.dir, err)
	}
	ca, caKey, err := loadCertAndKey(t.caCert(), t.caKey())
	if err != nil {
		return err
	}
	newCA := ca == nil
	if newCA {
		logf("generating the stack's certificate authority in %s", t.dir)
		if ca, caKey, err = t.writeCA(); err != nil {
			return err
		}
	}
	leaves := []struct {
		cert, key string
		template  func() *x509.Certificate
	}{
		{t.serverCert(), t.serverKey(), serverTemplate},
		{t.clientCert(), t.clientKey(), clientTemplate},
	}
	for _, leaf := range leaves {
		have, _, err := loadCertAndKey(leaf.cert, leaf.key)
		if err != nil {
			return err
		}
		if !newCA && have != nil && time.Until(have.NotAfter) > renewBefore && have.CheckSignatureFrom(ca) == nil {
			continue
		}
		if err := writeLeaf(leaf.template(), ca, caKey, leaf.cert, leaf.key); err != nil {
			return err
		}
	}
	return t.writeServerKeyStore()
}

func (t stackTLS) writeCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	template := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"flowproof local stack"}, CommonName: "flowproof local stack CA"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		NotAfter:              time.Now().Add(caValidity),
	}
	key, der, err := signCertificate(template, nil, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("stack CA: %w", err)
	}
	if err := writePEMFiles(t.caCert(), t.caKey(), key, der); err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

func serverTemplate() *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"flowproof local stack"}, CommonName: serverName},
		DNSNames:    []string{serverName},
		IPAddresses: []net.IP{net.ParseIP(localstack.Host)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		// Brokers are clients of each other too.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		NotAfter:    time.Now().Add(leafValidity),
	}
}

func clientTemplate() *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"flowproof local stack"}, CommonName: "flowproof"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		NotAfter:    time.Now().Add(leafValidity),
	}
}

func writeLeaf(template, ca *x509.Certificate, caKey *ecdsa.PrivateKey, certFile, keyFile string) error {
	key, der, err := signCertificate(template, ca, caKey)
	if err != nil {
		return fmt.Errorf("%s: %w", certFile, err)
	}
	return writePEMFiles(certFile, keyFile, key, der)
}

// signCertificate makes a P-256 key and a certificate for it, signed by
// the CA, or by itself when ca is nil.
func signCertificate(template, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	template.SerialNumber = serial
	// An hour back, for clocks a little behind.
	template.NotBefore = time.Now().Add(-time.Hour)
	if ca == nil {
		ca, caKey = template, key
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
	return key, der, err
}

func writePEMFiles(certFile, keyFile string, key *ecdsa.PrivateKey, der []byte) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("%s: %w", keyFile, err)
	}
	if err := writeFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// writeServerKeyStore joins the server's key, its certificate and the CA's
// into Kafka's PEM key store.
func (t stackTLS) writeServerKeyStore() error {
	var store []byte
	for _, file := range []string{t.serverKey(), t.serverCert(), t.caCert()} {
		raw, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("kafka key store: %w", err)
		}
		store = append(store, raw...)
	}
	return writeFileAtomic(t.serverKeyStore(), store, 0o600)
}

// loadCertAndKey reads a certificate and its key; nil, nil when either
// file is missing, so that the caller makes both anew.
func loadCertAndKey(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(certFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", keyFile, err)
	}
	certBlock, _ := pem.Decode(certPEM)
	keyBlock, _ := pem.Decode(keyPEM)
	if certBlock == nil || keyBlock == nil {
		return nil, nil, fmt.Errorf("%s or %s holds no PEM block; remove both to generate new ones", certFile, keyFile)
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", certFile, err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", keyFile, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("%s: want an ECDSA key, got %T; remove it and %s to generate new ones", keyFile, parsed, certFile)
	}
	return cert, key, nil
}

// writeFileAtomic writes through a temporary file, so that a reader never
// sees half a key, and gives the file its mode even when it existed.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := tmp.Chmod(mode); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
