// Package redact takes credentials out of URLs before they reach a log line,
// an error or workflow history: the password (and user) of user:password@host
// and the values of query parameters whose names say they are secret.
package redact

import (
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Placeholder replaces every credential.
const Placeholder = "REDACTED"

// secretParamWords are parts of query parameter names whose values are
// credentials: "token" covers access_token and id_token, "key" api_key and
// apikey, and so on.
var secretParamWords = []string{"token", "password", "passwd", "pwd", "secret", "key", "signature", "sig", "auth", "credential"}

// isSecretParam reports whether a query parameter of that name carries a
// credential. Matching parts of the name errs towards redacting too much.
func isSecretParam(name string) bool {
	name = strings.ToLower(name)
	for _, word := range secretParamWords {
		if strings.Contains(name, word) {
			return true
		}
	}
	return false
}

// URL returns raw with its user information and the values of secret query
// parameters replaced by Placeholder; everything else is kept so the URL
// still says where a request went. A string that does not parse as a URL is
// redacted as Text.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redactUnparsed(raw)
	}
	changed := false
	if u.User != nil {
		u.User = url.User(Placeholder)
		changed = true
	}
	if u.RawQuery != "" {
		if query, ok := redactQuery(u.RawQuery); ok {
			u.RawQuery = query
			changed = true
		}
	}
	if !changed {
		return raw
	}
	return u.String()
}

// redactQuery rewrites the secret parameters of a raw query, keeping the
// order and the encoding of the others.
func redactQuery(raw string) (string, bool) {
	parts := strings.Split(raw, "&")
	changed := false
	for i, part := range parts {
		name, _, hasValue := strings.Cut(part, "=")
		decoded, err := url.QueryUnescape(name)
		if err != nil {
			decoded = name
		}
		if hasValue && isSecretParam(decoded) {
			parts[i] = name + "=" + Placeholder
			changed = true
		}
	}
	return strings.Join(parts, "&"), changed
}

var (
	// urlInText finds URLs inside free text such as an error message; it
	// stops at white space and at the quotes net/http puts around a URL.
	urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>` + "`" + `]+`)
	// userInfo and secretParam catch what a URL too broken to parse still
	// shows.
	userInfo    = regexp.MustCompile(`(://)[^/@\s]*@`)
	secretParam = regexp.MustCompile(`([?&;])([^=&;#\s]+)=([^&;#\s]*)`)
)

func redactUnparsed(raw string) string {
	raw = userInfo.ReplaceAllString(raw, "${1}"+Placeholder+"@")
	return secretParam.ReplaceAllStringFunc(raw, func(m string) string {
		sub := secretParam.FindStringSubmatch(m)
		if !isSecretParam(sub[2]) {
			return m
		}
		return sub[1] + sub[2] + "=" + Placeholder
	})
}

// Text redacts every URL found in s, e.g. an error message that quotes the
// URL of a failed request.
func Text(s string) string {
	return urlInText.ReplaceAllStringFunc(s, URL)
}

// Error returns err with every URL in its message redacted, as net/http's
// *url.Error quotes the request's URL whole. The result does not unwrap to
// err, because whatever walks the chain (Temporal's failure converter writes
// every cause's message into history) would find the credentials again;
// errors.Is and errors.As still see through it to err's chain, so a caller
// can test for context.DeadlineExceeded or a timeout (what As hands out is
// the original, unredacted, error). nil stays nil, and err itself is
// returned when its message holds nothing to redact.
func Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	redacted := Text(msg)
	if redacted == msg {
		return err
	}
	return &redactedError{msg: redacted, err: err}
}

// Values returns s with every occurrence of each non-empty secret replaced
// by Placeholder, longest secret first, so a secret that holds a shorter
// one is not left half redacted. It is for text that may quote a known
// secret as it was sent (a SQL statement, a server's error about it).
func Values(s string, secrets ...string) string {
	sorted := slices.Clone(secrets)
	slices.SortFunc(sorted, func(a, b string) int { return len(b) - len(a) })
	for _, secret := range sorted {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, Placeholder)
		}
	}
	return s
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

// Is lets errors.Is match err's chain without an Unwrap that exposes it.
func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }

// As lets errors.As find a type in err's chain, e.g. a net.Error to ask
// whether it timed out.
func (e *redactedError) As(target any) bool { return errors.As(e.err, target) }
