package deliver

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/internal/errtype"
	"github.com/flowproof/flowproof/internal/refsvcapi"
	"github.com/flowproof/flowproof/internal/tokenapi"
)

// TokenKeyBytes is the length of Config.TokenKey: an AES-256 key.
const TokenKeyBytes = 32

// sealedTokenVersion is bound into every sealed token, so a future change of
// the format cannot be misread as the current one.
const sealedTokenVersion = "flowproof.sealed-token.v1"

// maxErrorBodyBytes bounds what is read of an error answer.
const maxErrorBodyBytes = 64 << 10

// tokenClient obtains access tokens from the token service and seals them
// with the workers' token key.
type tokenClient struct {
	tokenURL     string
	clientID     string
	clientSecret string
	pool         *http.Client
	retry        retryPolicy
	// aead seals with the current key; nil when the worker has no token
	// key, and the token activities then fail with an error saying so,
	// while every other activity works.
	aead  cipher.AEAD
	keyID string
	// unsealers open tokens sealed with any key of the ring, the current
	// one included, by key id.
	unsealers map[string]cipher.AEAD
}

// ErrUnknownTokenKey is a sealed token whose key is not in this worker's
// key ring: sealed by a worker with another key, or before a rotation that
// dropped the old key. The token is useless here, but a new one is not.
var ErrUnknownTokenKey = errors.New("token sealed with a key this worker does not hold")

func newTokenClient(cfg Config) (tokenClient, error) {
	tc := tokenClient{
		clientID:     cfg.TokenClientID,
		clientSecret: cfg.TokenClientSecret,
		pool:         pooledClient(10 * time.Second),
		retry:        retryPolicy{retryMax: 4, waitMin: 200 * time.Millisecond, waitMax: 3 * time.Second},
	}
	if cfg.TokenURL != "" {
		u, err := url.Parse(strings.TrimRight(cfg.TokenURL, "/") + tokenapi.TokenPath)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return tokenClient{}, fmt.Errorf("TokenURL %q: want http(s)://host:port", cfg.TokenURL)
		}
		tc.tokenURL = u.String()
	}
	if len(cfg.TokenKey) == 0 {
		if len(cfg.TokenUnsealKeys) > 0 {
			return tokenClient{}, errors.New("TokenUnsealKeys without a TokenKey: a worker needs a current key to seal with")
		}
		return tc, nil
	}
	aead, keyID, err := newTokenSealer(cfg.TokenKey)
	if err != nil {
		return tokenClient{}, err
	}
	tc.aead, tc.keyID = aead, keyID
	tc.unsealers = map[string]cipher.AEAD{keyID: aead}
	for i, key := range cfg.TokenUnsealKeys {
		aead, keyID, err := newTokenSealer(key)
		if err != nil {
			return tokenClient{}, fmt.Errorf("TokenUnsealKeys[%d]: %w", i, err)
		}
		tc.unsealers[keyID] = aead
	}
	return tc, nil
}

// KeyIDs are the ids of the worker's token keys, the current one first,
// for the start-up log: they tell which workers share which keys without
// revealing any.
func KeyIDs(cfg Config) ([]string, error) {
	var ids []string
	for _, key := range append([][]byte{cfg.TokenKey}, cfg.TokenUnsealKeys...) {
		_, id, err := newTokenSealer(key)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// newTokenSealer returns the AEAD for key and the key's id: the first four
// bytes of its SHA-256, in hex, which tells keys apart without revealing them.
func newTokenSealer(key []byte) (cipher.AEAD, string, error) {
	if len(key) != TokenKeyBytes {
		// The length only; never the key.
		return nil, "", fmt.Errorf("TokenKey is %d bytes; want %d (AES-256)", len(key), TokenKeyBytes)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, "", fmt.Errorf("token key cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, "", fmt.Errorf("token key GCM: %w", err)
	}
	sum := sha256.Sum256(key)
	return aead, hex.EncodeToString(sum[:4]), nil
}

// ObtainToken asks the token service for an access token (OAuth2 client
// credentials) and returns it sealed, so that only ciphertext reaches the
// workflow history. Transient failures are retried here and then by
// Temporal; refused credentials fail with the non-retryable
// errtype.TokenClientRejected, since retrying only adds load.
func (a *Activities) ObtainToken(ctx context.Context, in ObtainTokenInput) (SealedToken, error) {
	return a.obtainToken(ctx, in, activity.GetLogger(ctx))
}

func (a *Activities) obtainToken(ctx context.Context, in ObtainTokenInput, logger log.Logger) (SealedToken, error) {
	tc := &a.token
	if err := tc.ready(); err != nil {
		return SealedToken{}, temporal.NewNonRetryableApplicationError(err.Error(), errtype.TokenConfig, nil)
	}
	if in.Quota < 0 {
		return SealedToken{}, errtype.InvalidInputf("ObtainTokenInput.Quota must not be negative, got %d", in.Quota)
	}
	if in.TTLSeconds < 0 {
		return SealedToken{}, errtype.InvalidInputf("ObtainTokenInput.TTLSeconds must not be negative, got %d", in.TTLSeconds)
	}
	obtainedAt := time.Now()
	granted, err := tc.request(ctx, in, logger)
	if err != nil {
		return SealedToken{}, err
	}
	sealed, err := tc.seal(granted.AccessToken, obtainedAt, granted.ExpiresIn, granted.Quota)
	if err != nil {
		return SealedToken{}, err
	}
	logger.Info("token obtained", "Renewal", in.Renewal, "KeyID", sealed.KeyID,
		"Quota", sealed.Quota, "ExpiresInSeconds", granted.ExpiresIn)
	return sealed, nil
}

func (tc *tokenClient) ready() error {
	var missing []string
	if tc.tokenURL == "" {
		missing = append(missing, "TokenURL")
	}
	if tc.clientID == "" {
		missing = append(missing, "TokenClientID")
	}
	if tc.clientSecret == "" {
		missing = append(missing, "TokenClientSecret")
	}
	if tc.aead == nil {
		missing = append(missing, "TokenKey")
	}
	if len(missing) > 0 {
		return fmt.Errorf("token service not configured: %s empty", strings.Join(missing, ", "))
	}
	return nil
}

// request performs the client-credentials grant.
func (tc *tokenClient) request(ctx context.Context, in ObtainTokenInput, logger log.Logger) (tokenapi.TokenResponse, error) {
	form := url.Values{tokenapi.FormGrantType: {tokenapi.GrantTypeClientCredentials}}
	if in.Quota > 0 {
		form.Set(tokenapi.FormQuota, strconv.Itoa(in.Quota))
	}
	if in.TTLSeconds > 0 {
		form.Set(tokenapi.FormTTLSeconds, strconv.Itoa(in.TTLSeconds))
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, tc.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return tokenapi.TokenResponse{}, fmt.Errorf("token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: the credentials are form-encoded before Basic.
	req.SetBasicAuth(url.QueryEscape(tc.clientID), url.QueryEscape(tc.clientSecret))

	resp, err := newRetryingClient(tc.pool, tc.retry, logger).Do(req)
	if err != nil {
		return tokenapi.TokenResponse{}, fmt.Errorf("token request to %s: %w", tc.tokenURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
	if err != nil {
		return tokenapi.TokenResponse{}, fmt.Errorf("token response from %s: read body: %w", tc.tokenURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := fmt.Sprintf("token service %s answered %d%s", tc.tokenURL, resp.StatusCode, describeErrorBody(body))
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusBadRequest {
			// The client id is no secret and tells the operator which
			// credentials to fix; the secret is never part of a message.
			return tokenapi.TokenResponse{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("%s (client id %q)", msg, tc.clientID), errtype.TokenClientRejected, nil)
		}
		return tokenapi.TokenResponse{}, errors.New(msg)
	}
	var granted tokenapi.TokenResponse
	if err := json.Unmarshal(body, &granted); err != nil {
		// The decoder's error can quote the body, which holds the token.
		return tokenapi.TokenResponse{}, fmt.Errorf("token response from %s is not the expected JSON", tc.tokenURL)
	}
	var problems []string
	if granted.AccessToken == "" {
		problems = append(problems, "access_token is empty")
	}
	if !strings.EqualFold(granted.TokenType, "Bearer") {
		problems = append(problems, fmt.Sprintf("token_type is %q, want Bearer", granted.TokenType))
	}
	if granted.ExpiresIn <= 0 {
		problems = append(problems, fmt.Sprintf("expires_in is %d, want a positive number of seconds", granted.ExpiresIn))
	}
	if granted.Quota <= 0 {
		problems = append(problems, fmt.Sprintf("quota is %d, want a positive number of messages", granted.Quota))
	}
	if len(problems) > 0 {
		return tokenapi.TokenResponse{}, fmt.Errorf("token response from %s: %s", tc.tokenURL, strings.Join(problems, "; "))
	}
	return granted, nil
}

// describeErrorBody renders an OAuth2 / endpoint error body as
// ": <error>: <description>", or "" when the body is not one.
func describeErrorBody(body []byte) string {
	var e refsvcapi.ErrorResponse
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		return ""
	}
	if e.ErrorDescription == "" {
		return ": " + e.Error
	}
	return ": " + e.Error + ": " + e.ErrorDescription
}

// seal encrypts token with AES-256-GCM under a random nonce. The metadata
// shown in clear (key id, expiry, quota, time obtained) is bound as
// additional data, so changing any of it makes unsealing fail.
func (tc *tokenClient) seal(token string, obtainedAt time.Time, expiresInSeconds, quota int64) (SealedToken, error) {
	if tc.aead == nil {
		return SealedToken{}, errors.New("cannot seal token: TokenKey is not configured")
	}
	st := SealedToken{
		KeyID:           tc.keyID,
		ExpiresAtUnix:   obtainedAt.Add(time.Duration(expiresInSeconds) * time.Second).Unix(),
		Quota:           int(quota),
		ObtainedAtUnixM: obtainedAt.UnixMilli(),
	}
	nonce := make([]byte, tc.aead.NonceSize(), tc.aead.NonceSize()+len(token)+tc.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return SealedToken{}, fmt.Errorf("token nonce: %w", err)
	}
	st.Sealed = tc.aead.Seal(nonce, nonce, []byte(token), sealedTokenAAD(st))
	return st, nil
}

// unseal decrypts a token sealed by seal with a key of the ring; a key
// outside it is ErrUnknownTokenKey.
func (tc *tokenClient) unseal(st SealedToken) (string, error) {
	if tc.aead == nil {
		return "", errors.New("cannot unseal token: TokenKey is not configured")
	}
	aead, ok := tc.unsealers[st.KeyID]
	if !ok {
		return "", fmt.Errorf("%w: key %q, this worker has %q (current) and %d older or newer key(s)", ErrUnknownTokenKey, st.KeyID, tc.keyID, len(tc.unsealers)-1)
	}
	ns := aead.NonceSize()
	if len(st.Sealed) < ns+aead.Overhead() {
		return "", fmt.Errorf("sealed token is %d bytes, too short to be one", len(st.Sealed))
	}
	plain, err := aead.Open(nil, st.Sealed[:ns], st.Sealed[ns:], sealedTokenAAD(st))
	if err != nil {
		return "", errors.New("sealed token failed authentication: it was altered or sealed with another key")
	}
	return string(plain), nil
}

func sealedTokenAAD(st SealedToken) []byte {
	aad := make([]byte, 0, len(sealedTokenVersion)+len(st.KeyID)+2+3*8)
	aad = append(aad, sealedTokenVersion...)
	aad = append(aad, 0)
	aad = append(aad, st.KeyID...)
	aad = append(aad, 0)
	aad = binary.BigEndian.AppendUint64(aad, uint64(st.ExpiresAtUnix))
	aad = binary.BigEndian.AppendUint64(aad, uint64(st.Quota))
	aad = binary.BigEndian.AppendUint64(aad, uint64(st.ObtainedAtUnixM))
	return aad
}
