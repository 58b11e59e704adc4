package deliver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/refsvcapi"
	"github.com/flowproof/flowproof/internal/tokenapi"
)

func randomKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, TokenKeyBytes)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

func sealerFor(t *testing.T, key []byte) tokenClient {
	t.Helper()
	tc, err := newTokenClient(Config{TokenKey: key})
	if err != nil {
		t.Fatalf("newTokenClient: %v", err)
	}
	return tc
}

func TestSealUnsealRoundTrip(t *testing.T) {
	tc := sealerFor(t, randomKey(t))
	const token = "eyJhbGciOiJIUzI1NiJ9.payload.signature"
	obtained := time.UnixMilli(1_780_000_000_123)
	st, err := tc.seal(token, obtained, 3600, 10_000)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	if bytes.Contains(st.Sealed, []byte(token)) || bytes.Contains(st.Sealed, []byte("payload")) {
		t.Fatal("sealed token contains the plaintext")
	}
	if st.Quota != 10_000 || st.ObtainedAtUnixM != obtained.UnixMilli() || st.ExpiresAtUnix != obtained.Unix()+3600 {
		t.Fatalf("metadata = %+v", st)
	}
	if len(st.KeyID) != 8 {
		t.Fatalf("key id %q, want 8 hex digits", st.KeyID)
	}
	// What the workflow history holds is the JSON of st.
	history, _ := json.Marshal(st)
	if strings.Contains(string(history), token) {
		t.Fatal("JSON of the sealed token contains the plaintext")
	}
	got, err := tc.unseal(st)
	if err != nil {
		t.Fatalf("unseal: %v", err)
	}
	if got != token {
		t.Fatalf("unseal = %q, want %q", got, token)
	}

	again, err := tc.seal(token, obtained, 3600, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again.Sealed, st.Sealed) {
		t.Fatal("sealing twice gave the same ciphertext; the nonce must be random")
	}
}

func TestUnsealDetectsTampering(t *testing.T) {
	tc := sealerFor(t, randomKey(t))
	st, err := tc.seal("the-token", time.Now(), 60, 100)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(SealedToken) SealedToken{
		"ciphertext bit flipped": func(s SealedToken) SealedToken {
			s.Sealed = bytes.Clone(s.Sealed)
			s.Sealed[len(s.Sealed)-20] ^= 0x01
			return s
		},
		"nonce changed": func(s SealedToken) SealedToken {
			s.Sealed = bytes.Clone(s.Sealed)
			s.Sealed[0] ^= 0x80
			return s
		},
		"quota raised":       func(s SealedToken) SealedToken { s.Quota = 1_000_000; return s },
		"expiry extended":    func(s SealedToken) SealedToken { s.ExpiresAtUnix += 3600; return s },
		"obtained-at moved":  func(s SealedToken) SealedToken { s.ObtainedAtUnixM--; return s },
		"truncated":          func(s SealedToken) SealedToken { s.Sealed = s.Sealed[:10]; return s },
		"empty":              func(s SealedToken) SealedToken { s.Sealed = nil; return s },
		"tag stripped a bit": func(s SealedToken) SealedToken { s.Sealed = s.Sealed[:len(s.Sealed)-1]; return s },
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := tc.unseal(tamper(st))
			if err == nil {
				t.Fatalf("unseal of a tampered token succeeded: %q", got)
			}
			if strings.Contains(err.Error(), "the-token") {
				t.Fatalf("error reveals the token: %v", err)
			}
		})
	}
}

func TestUnsealWithWrongKey(t *testing.T) {
	sealer := sealerFor(t, randomKey(t))
	other := sealerFor(t, randomKey(t))
	st, err := sealer.seal("the-token", time.Now(), 60, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.unseal(st); !errors.Is(err, ErrUnknownTokenKey) {
		t.Fatalf("unseal with another key: err = %v, want ErrUnknownTokenKey", err)
	}
	// Even with the key id forged, the other key cannot open it.
	st.KeyID = other.keyID
	if _, err := other.unseal(st); err == nil {
		t.Fatal("unseal with another key and a forged key id succeeded")
	}
}

func TestTokenKeyMustBe32Bytes(t *testing.T) {
	_, err := newTokenClient(Config{TokenKey: []byte("short-key")})
	if err == nil || !strings.Contains(err.Error(), "9 bytes") {
		t.Fatalf("err = %v, want the length named", err)
	}
	if strings.Contains(err.Error(), "short-key") {
		t.Fatalf("error reveals the key: %v", err)
	}
	// No key at all is allowed: only the token activities need one.
	tc, err := newTokenClient(Config{})
	if err != nil {
		t.Fatalf("no key: %v", err)
	}
	if _, err := tc.unseal(SealedToken{Sealed: []byte("x")}); err == nil || !strings.Contains(err.Error(), "TokenKey is not configured") {
		t.Fatalf("unseal without a key: err = %v", err)
	}
}

// tokenActivities builds Activities with only the token client, against a
// token service served by handler.
func tokenActivities(t *testing.T, handler http.HandlerFunc) (*Activities, string) {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	const secret = "s3cret-value-never-printed"
	tc, err := newTokenClient(Config{TokenURL: srv.URL, TokenClientID: "flowproof", TokenClientSecret: secret, TokenKey: randomKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	tc.retry.waitMin, tc.retry.waitMax = time.Millisecond, 5*time.Millisecond
	return &Activities{token: tc}, secret
}

func TestObtainTokenRetriesTransientFailuresAndSeals(t *testing.T) {
	var calls atomic.Int32
	a, _ := tokenActivities(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		id, pw, ok := r.BasicAuth()
		if !ok || id != "flowproof" || pw != "s3cret-value-never-printed" {
			t.Errorf("basic auth = %q/%q/%v", id, pw, ok)
		}
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		if got := r.PostForm.Get("grant_type"); got != "client_credentials" {
			t.Errorf("grant_type = %q", got)
		}
		if got := r.PostForm.Get("quota"); got != "250" {
			t.Errorf("quota = %q, want 250", got)
		}
		_ = json.NewEncoder(w).Encode(tokenapi.TokenResponse{AccessToken: "tok-123", TokenType: "Bearer", ExpiresIn: 60, Quota: 250})
	})
	st, err := a.obtainToken(context.Background(), ObtainTokenInput{Quota: 250}, discard)
	if err != nil {
		t.Fatalf("ObtainToken: %v", err)
	}
	if calls.Load() != 3 {
		t.Fatalf("token service called %d times, want 3 (two 503s retried)", calls.Load())
	}
	if st.Quota != 250 {
		t.Fatalf("quota = %d", st.Quota)
	}
	if got, err := a.token.unseal(st); err != nil || got != "tok-123" {
		t.Fatalf("unseal = %q, %v", got, err)
	}
}

func TestObtainTokenInvalidClientIsNotRetried(t *testing.T) {
	var calls atomic.Int32
	a, secret := tokenActivities(t, func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.Header().Set("WWW-Authenticate", `Basic realm="x"`)
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(refsvcapi.ErrorResponse{Error: "invalid_client", ErrorDescription: "client authentication failed"})
	})
	_, err := a.obtainToken(context.Background(), ObtainTokenInput{}, discard)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.NonRetryable() || appErr.Type() != errtype.TokenClientRejected {
		t.Fatalf("err = %v, want a non-retryable %s", err, errtype.TokenClientRejected)
	}
	if !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("err = %v, want the OAuth2 error code", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error reveals the client secret: %v", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("token service called %d times, want 1", calls.Load())
	}
}

func TestObtainTokenRejectsIncompleteAnswer(t *testing.T) {
	a, _ := tokenActivities(t, func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(tokenapi.TokenResponse{AccessToken: "tok", TokenType: "mac", ExpiresIn: 0, Quota: 5})
	})
	_, err := a.obtainToken(context.Background(), ObtainTokenInput{}, discard)
	if err == nil || !strings.Contains(err.Error(), "token_type") || !strings.Contains(err.Error(), "expires_in") {
		t.Fatalf("err = %v, want token_type and expires_in named", err)
	}
	if strings.Contains(err.Error(), "tok\"") {
		t.Fatalf("error quotes the token: %v", err)
	}
}

// A rotation: the worker seals with the new key and still opens what the
// old key sealed while it holds it as an unseal key; without it, the token
// is ErrUnknownTokenKey, which the segment answers with a renewal.
func TestKeyRingOpensTokensOfOlderKeys(t *testing.T) {
	oldKey, newKey := randomKey(t), randomKey(t)
	before := sealerFor(t, oldKey)
	st, err := before.seal("the-token", time.Now(), 60, 100)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := newTokenClient(Config{TokenKey: newKey, TokenUnsealKeys: [][]byte{oldKey}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ring.unseal(st); err != nil || got != "the-token" {
		t.Fatalf("ring with the old key: unseal = %q, %v", got, err)
	}
	fresh, err := ring.seal("new-token", time.Now(), 60, 100)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.KeyID != sealerFor(t, newKey).keyID || fresh.KeyID == st.KeyID {
		t.Fatalf("ring sealed with key %q, want the current key's id", fresh.KeyID)
	}
	if _, err := before.unseal(fresh); !errors.Is(err, ErrUnknownTokenKey) {
		t.Fatalf("a worker with the old key only: err = %v, want ErrUnknownTokenKey", err)
	}
	after := sealerFor(t, newKey)
	_, err = after.unseal(st)
	if !errors.Is(err, ErrUnknownTokenKey) {
		t.Fatalf("a worker with the new key only: err = %v, want ErrUnknownTokenKey", err)
	}
	if strings.Contains(err.Error(), "the-token") || strings.Contains(err.Error(), string(oldKey)) {
		t.Fatalf("error reveals the token or a key: %v", err)
	}
	if _, err := newTokenClient(Config{TokenUnsealKeys: [][]byte{oldKey}}); err == nil {
		t.Fatal("unseal keys without a current key were accepted")
	}
	if _, err := newTokenClient(Config{TokenKey: newKey, TokenUnsealKeys: [][]byte{[]byte("short")}}); err == nil || !strings.Contains(err.Error(), "TokenUnsealKeys[0]") {
		t.Fatalf("short unseal key: err = %v, want it named", err)
	}
}

// goldenSealedToken was sealed by the worker before key rings existed
// (commit 0664407), with goldenKey; workflow histories hold tokens like it,
// which the ring must still open.
var (
	goldenKey         = bytes.Repeat([]byte{0x5a}, TokenKeyBytes)
	goldenSealedToken = `{"sealed":"M+rY7Kk2pmXxYx9oPlOtXLJL4m2M0r4g4+cE9qGu0C1WGuvtWgEBZGdK678Vk6Lk5FrtkhGwDVaW","key_id":"60bf07c4","expires_at_unix":1780003600,"quota":10000,"obtained_at_unix_ms":1780000000123}`
)

func TestTokensSealedBeforeKeyRingsStillOpen(t *testing.T) {
	var st SealedToken
	if err := json.Unmarshal([]byte(goldenSealedToken), &st); err != nil {
		t.Fatal(err)
	}
	ring, err := newTokenClient(Config{TokenKey: randomKey(t), TokenUnsealKeys: [][]byte{goldenKey}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ring.unseal(st); err != nil || got != "token-sealed-before-key-rings" {
		t.Fatalf("unseal = %q, %v", got, err)
	}
}

// A segment whose token this worker cannot open sends nothing and hands
// the whole plan back as the rest, marked as a refused token, so the
// workflow renews the token and sends the same batches.
func TestUnopenedTokenResultHandsTheWholePlanBack(t *testing.T) {
	plan := &SegmentPlan{Ends: map[int32]int64{0: 500, 1: 700}, Records: 900}
	in := SegmentInput{Offsets: map[int32]int64{0: 100, 1: 200}, Plan: plan, Token: SealedToken{KeyID: "0badc0de"}}
	res := unopenedTokenResult(in, fmt.Errorf("%w: key %q", ErrUnknownTokenKey, in.Token.KeyID))
	if !res.TokenRejected || res.Delivered != 0 || res.Batches != 0 || !strings.Contains(res.RejectReason, "0badc0de") {
		t.Fatalf("result %+v, want a refused token with nothing delivered and the key id in the reason", res)
	}
	if fmt.Sprint(res.Offsets) != fmt.Sprint(in.Offsets) {
		t.Fatalf("offsets %v, want the segment's start %v", res.Offsets, in.Offsets)
	}
	if res.Rest == nil || res.Rest.Records != plan.Records || fmt.Sprint(res.Rest.Ends) != fmt.Sprint(plan.Ends) {
		t.Fatalf("rest %+v, want the whole plan %+v", res.Rest, plan)
	}
	res.Offsets[0] = 42
	if in.Offsets[0] != 100 {
		t.Fatal("the result shares its offsets map with the input")
	}
	legacy := unopenedTokenResult(SegmentInput{}, ErrUnknownTokenKey)
	if legacy.Rest != nil || legacy.Offsets == nil {
		t.Fatalf("segment without a plan: %+v, want no rest and empty offsets", legacy)
	}
}
