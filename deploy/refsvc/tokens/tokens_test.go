package tokens

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func testKey(fill byte) []byte {
	key := make([]byte, MinKeyBytes)
	for i := range key {
		key[i] = fill + byte(i)
	}
	return key
}

func TestNewKeyFileRoundTripAndRefusesToOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.key")
	if err := NewKeyFile(path); err != nil {
		t.Fatalf("NewKeyFile: %v", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode = %04o, want 0600", perm)
	}
	key, err := LoadKey(path)
	if err != nil {
		t.Fatalf("LoadKey: %v", err)
	}
	if len(key) != MinKeyBytes {
		t.Fatalf("key length = %d, want %d", len(key), MinKeyBytes)
	}
	if err := NewKeyFile(path); err == nil {
		t.Fatal("NewKeyFile overwrote an existing key file")
	}
	again, err := LoadKey(path)
	if err != nil || string(again) != string(key) {
		t.Fatalf("key changed after a refused NewKeyFile (err %v)", err)
	}
}

func TestLoadKeyRefusesUnsafeOrBadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // umask may have narrowed it
			t.Fatal(err)
		}
		return path
	}
	good := base64.StdEncoding.EncodeToString(testKey(1))
	secretLooking := "not-base64!!" + strings.Repeat("s3cr3t", 8)
	cases := []struct {
		name, path, wantErr string
	}{
		{"world readable", write("open.key", good, 0o644), "must not be readable by group or others"},
		{"too short", write("short.key", base64.StdEncoding.EncodeToString([]byte("short")), 0o600), "at least 32 are required"},
		{"not base64", write("text.key", secretLooking, 0o600), "is not base64 text"},
		{"missing", filepath.Join(dir, "absent.key"), "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadKey(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("LoadKey error = %v, want one containing %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("error quotes the key file's content: %v", err)
			}
		})
	}
	// URL-safe base64 with surrounding whitespace is accepted too.
	urlSafe := write("url.key", "\n "+base64.RawURLEncoding.EncodeToString(testKey(200))+" \n", 0o600)
	if key, err := LoadKey(urlSafe); err != nil || string(key) != string(testKey(200)) {
		t.Fatalf("LoadKey(url-safe) = %v, %v", key, err)
	}
}

func TestVerifyAcceptsSignedTokenAndRejectsBadOnes(t *testing.T) {
	key := testKey(7)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	verifier := NewVerifier(key, clock, 0)

	signed, issued, err := Sign(key, "flowproof", now, time.Hour, 500)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := verifier.Verify(signed)
	if err != nil {
		t.Fatalf("Verify(valid) = %v", err)
	}
	if claims.ID != issued.ID || claims.Subject != "flowproof" || claims.Quota != 500 || !claims.ExpiresAt.Time.Equal(now.Add(time.Hour)) {
		t.Fatalf("claims = %+v, want jti %s, sub flowproof, quota 500, exp %s", claims, issued.ID, now.Add(time.Hour))
	}

	forged, _, err := Sign(testKey(99), "flowproof", now, time.Hour, 500)
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := Sign(key, "flowproof", now.Add(-2*time.Hour), time.Hour, 500)
	if err != nil {
		t.Fatal(err)
	}
	future, _, err := Sign(key, "flowproof", now.Add(time.Hour), time.Hour, 500)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(claims jwt.Claims, method jwt.SigningMethod, k any) string {
		t.Helper()
		s, err := jwt.NewWithClaims(method, claims).SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := issued
	wrongAudience := base
	wrongAudience.Audience = jwt.ClaimStrings{"someone-else"}
	noQuota := base
	noQuota.Quota = 0
	noExpiry := base
	noExpiry.ExpiresAt = nil

	cases := []struct {
		name, token, reason string
	}{
		{"forged", forged, "bad_signature"},
		{"alg none", sign(base, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType), "bad_signature"},
		{"HS512", sign(base, jwt.SigningMethodHS512, key), "bad_signature"},
		{"expired", expired, "expired"},
		{"not yet valid", future, "not_yet_valid"},
		{"wrong audience", sign(wrongAudience, jwt.SigningMethodHS256, key), "wrong_audience"},
		{"no quota", sign(noQuota, jwt.SigningMethodHS256, key), "invalid_claims"},
		{"no expiry", sign(noExpiry, jwt.SigningMethodHS256, key), "invalid_claims"},
		{"malformed", "not.a.jwt", "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifier.Verify(tc.token)
			var rej *Rejection
			if !errors.As(err, &rej) {
				t.Fatalf("Verify error = %v (%T), want a *Rejection", err, err)
			}
			if rej.Reason != tc.reason {
				t.Fatalf("reason = %q (%s), want %q", rej.Reason, rej.Description, tc.reason)
			}
			if strings.Contains(rej.Description, tc.token) {
				t.Fatal("rejection quotes the token")
			}
		})
	}

	// Leeway lets a just-expired token through.
	lenient := NewVerifier(key, func() time.Time { return now.Add(time.Hour + 5*time.Second) }, 10*time.Second)
	if _, err := lenient.Verify(signed); err != nil {
		t.Fatalf("Verify within leeway = %v", err)
	}
}
