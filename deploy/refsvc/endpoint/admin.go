package endpoint

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"

	"go.uber.org/zap"

	"github.com/flowproof/flowproof/deploy/refsvc/internal/httpx"
)

// adminGuard admits a request to the fault API only with the admin token as
// its bearer credential.
type adminGuard struct {
	// digest is the token's SHA-256: comparing digests takes the same time
	// whatever the length of the token presented.
	digest     [sha256.Size]byte
	configured bool
	log        *zap.Logger
}

func newAdminGuard(token string, log *zap.Logger) adminGuard {
	return adminGuard{digest: sha256.Sum256([]byte(token)), configured: token != "", log: log}
}

// wrap answers 401 without a bearer credential and 403 with another one
// (or when the endpoint has no admin token, which closes the fault API).
func (g adminGuard) wrap(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, found := bearerToken(r.Header.Get("Authorization"))
		if !found {
			w.Header().Set("WWW-Authenticate", `Bearer realm="flowproof-admin"`)
			g.refuse(w, r, http.StatusUnauthorized, "the fault API needs the admin token as a bearer credential")
			return
		}
		presented := sha256.Sum256([]byte(token))
		if !g.configured {
			g.refuse(w, r, http.StatusForbidden, "the fault API is closed: the endpoint has no admin token")
			return
		}
		if subtle.ConstantTimeCompare(presented[:], g.digest[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="flowproof-admin", error="invalid_token"`)
			g.refuse(w, r, http.StatusForbidden, "admin token is not valid")
			return
		}
		next(w, r)
	}
}

// refuse logs who was turned away, never what they presented.
func (g adminGuard) refuse(w http.ResponseWriter, r *http.Request, status int, description string) {
	g.log.Warn("admin request refused", zap.String("method", r.Method), zap.String("remote", r.RemoteAddr),
		zap.Int("status", status))
	httpx.WriteError(w, status, "invalid_token", description)
}
