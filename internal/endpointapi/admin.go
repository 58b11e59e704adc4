package endpointapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/flowproof/flowproof/internal/redact"
)

// The admin credential of the fault API (FaultsPath). It is sent as
// `Authorization: Bearer <token>`; a request without it is answered 401, one
// with another token 403.
const (
	// EnvAdminToken holds the admin token, for the endpoint process and for
	// its clients. It is read only from the environment or a file, never a
	// flag, so it does not show in a process list.
	EnvAdminToken = "FLOWPROOF_ENDPOINT_ADMIN_TOKEN"
	// AdminTokenFile is the file under the local stack's data dir
	// (<stack dir>/data/refsvc) where stackctl keeps the token, mode 0600.
	AdminTokenFile = "endpoint-admin.token"
	// MinAdminTokenBytes is the shortest admin token the endpoint accepts.
	MinAdminTokenBytes = 32
)

// RunIDQuery names a run on DELETE FaultsPath (repeatable): only those runs'
// settings are removed.
const RunIDQuery = "run_id"

// LoadAdminToken returns the admin token from EnvAdminToken or, when that is
// unset, from AdminTokenFile in stackDir's data/refsvc.
func LoadAdminToken(stackDir string) (string, error) {
	if token := strings.TrimSpace(os.Getenv(EnvAdminToken)); token != "" {
		return token, nil
	}
	path := filepath.Join(stackDir, "data", "refsvc", AdminTokenFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("endpoint admin token: %s is not set and %w", EnvAdminToken, err)
	}
	token := strings.TrimSpace(string(raw))
	if token == "" {
		return "", fmt.Errorf("endpoint admin token: %s is empty", path)
	}
	return token, nil
}

// AdminClient calls the endpoint's fault API with the admin token.
type AdminClient struct {
	BaseURL string // e.g. http://127.0.0.1:18091
	Token   string
	HTTP    *http.Client // http.DefaultClient when nil
}

// SetFaults sets f for the runs f.RunIDs names and returns the setting as the
// endpoint normalised it.
func (c AdminClient) SetFaults(ctx context.Context, f Faults) (Faults, error) {
	body, err := json.Marshal(f)
	if err != nil {
		return Faults{}, fmt.Errorf("encode faults: %w", err)
	}
	var set Faults
	return set, c.do(ctx, http.MethodPost, FaultsPath, body, &set)
}

// State returns every fault setting of the endpoint.
func (c AdminClient) State(ctx context.Context) (FaultState, error) {
	var state FaultState
	return state, c.do(ctx, http.MethodGet, FaultsPath, nil, &state)
}

// Reset removes the settings of runIDs, or every setting (the start-time
// one too) when none is named.
func (c AdminClient) Reset(ctx context.Context, runIDs ...string) error {
	path := FaultsPath
	if len(runIDs) > 0 {
		path += "?" + url.Values{RunIDQuery: runIDs}.Encode()
	}
	return c.do(ctx, http.MethodDelete, path, nil, nil)
}

func (c AdminClient) do(ctx context.Context, method, path string, body []byte, out any) error {
	target := strings.TrimRight(c.BaseURL, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, redact.URL(target), redact.Error(err))
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := c.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, FaultsPath, redact.Error(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, FaultsPath, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: status %d: %s", method, FaultsPath, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, FaultsPath, err)
	}
	return nil
}
