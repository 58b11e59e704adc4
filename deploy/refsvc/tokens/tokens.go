// Package tokens defines the access tokens the token service signs and the
// endpoint verifies: HS256 JWTs with a message quota claim, signed with a key
// both processes read from the same file.
package tokens

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer and Audience tie a token to this pair of services: the endpoint
// refuses a token signed with the right key but meant for something else.
const (
	Issuer   = "flowproof-token-service"
	Audience = "flowproof-endpoint"
)

// MinKeyBytes is the shortest signing key accepted; HS256 needs at least the
// hash size to be as strong as the hash.
const MinKeyBytes = 32

// Claims are the registered JWT claims plus the message quota.
type Claims struct {
	jwt.RegisteredClaims
	// Quota is the number of messages the endpoint accepts under this token.
	Quota int64 `json:"quota"`
}

// Validate is called by the jwt parser after the registered claims pass.
func (c Claims) Validate() error {
	if c.ID == "" {
		return errors.New("jti claim is missing")
	}
	if c.Quota <= 0 {
		return fmt.Errorf("quota claim must be positive, got %d", c.Quota)
	}
	return nil
}

// LoadKey reads a signing key file: base64 text (standard or URL alphabet,
// surrounding whitespace ignored) of at least MinKeyBytes bytes. Like ssh with
// private keys, it refuses a file that group or others can read.
func LoadKey(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("signing key file: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("signing key file %s has mode %04o; it must not be readable by group or others (chmod 600)", path, perm)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key file: %w", err)
	}
	text := strings.TrimSpace(string(raw))
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		key, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(text, "="))
	}
	if err != nil {
		// The decoder's error quotes input bytes, which here are key material.
		return nil, fmt.Errorf("signing key file %s is not base64 text", path)
	}
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("signing key in %s is %d bytes; at least %d are required", path, len(key), MinKeyBytes)
	}
	return key, nil
}

// NewKeyFile writes a fresh random key to path with mode 0600, failing if the
// file already exists so that a running pair of services never has its key
// replaced underneath it.
func NewKeyFile(path string) error {
	key := make([]byte, MinKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("generate signing key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create signing key file: %w", err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write signing key file %s: %w", path, err)
	}
	return nil
}

// NewID returns a random token id (jti).
func NewID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Sign issues a token for subject with the given lifetime and quota.
func Sign(key []byte, subject string, issuedAt time.Time, ttl time.Duration, quota int64) (signed string, claims Claims, err error) {
	id, err := NewID()
	if err != nil {
		return "", Claims{}, err
	}
	claims = Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{Audience},
			IssuedAt:  jwt.NewNumericDate(issuedAt),
			NotBefore: jwt.NewNumericDate(issuedAt),
			ExpiresAt: jwt.NewNumericDate(issuedAt.Add(ttl)),
			ID:        id,
		},
		Quota: quota,
	}
	signed, err = jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
	if err != nil {
		return "", Claims{}, fmt.Errorf("sign token: %w", err)
	}
	return signed, claims, nil
}

// Verifier checks tokens against one key.
type Verifier struct {
	key    []byte
	parser *jwt.Parser
}

// NewVerifier returns a Verifier that accepts only HS256 tokens of this
// issuer and audience, with an expiry, judged by now with the given leeway.
func NewVerifier(key []byte, now func() time.Time, leeway time.Duration) *Verifier {
	return &Verifier{
		key: key,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(Issuer),
			jwt.WithAudience(Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(leeway),
			jwt.WithTimeFunc(now),
		),
	}
}

// Rejection says why a token was refused, in words fit for an
// error_description: it never quotes the token.
type Rejection struct {
	Reason      string // short metric label: "expired", "bad_signature", ...
	Description string
}

func (r *Rejection) Error() string { return r.Description }

// Verify parses and checks a token. Its error is a *Rejection.
func (v *Verifier) Verify(token string) (Claims, error) {
	var claims Claims
	_, err := v.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return v.key, nil })
	if err == nil {
		return claims, nil
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return Claims{}, &Rejection{"malformed", "token is malformed"}
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return Claims{}, &Rejection{"bad_signature", "token signature is invalid"}
	case errors.Is(err, jwt.ErrTokenExpired):
		return Claims{}, &Rejection{"expired", "token expired"}
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return Claims{}, &Rejection{"not_yet_valid", "token is not valid yet"}
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidAudience):
		return Claims{}, &Rejection{"wrong_audience", "token was not issued for this endpoint"}
	default:
		// Missing or invalid claims; the jwt error names the claim, not its value.
		return Claims{}, &Rejection{"invalid_claims", "token claims are invalid: " + err.Error()}
	}
}
