package redact

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestURL(t *testing.T) {
	for raw, want := range map[string]string{
		"http://user:hunter2@127.0.0.1:18091/v1/batches":         "http://REDACTED@127.0.0.1:18091/v1/batches",
		"https://alice@example.test/x":                           "https://REDACTED@example.test/x",
		"http://h/p?token=abc&run=7":                             "http://h/p?token=REDACTED&run=7",
		"http://h/p?run=7&Password=abc&api_key=k&client_secret=": "http://h/p?run=7&Password=REDACTED&api_key=REDACTED&client_secret=REDACTED",
		"http://h/p?access_token=a%20b&sig=x#frag":               "http://h/p?access_token=REDACTED&sig=REDACTED#frag",
		"http://127.0.0.1:18081/jobs/overview":                   "http://127.0.0.1:18081/jobs/overview",
		"127.0.0.1:17233":                                        "127.0.0.1:17233",
		"http://u:p@h:bad port/?secret=s":                        "http://REDACTED@h:bad port/?secret=REDACTED",
	} {
		if got := URL(raw); got != want {
			t.Errorf("URL(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestTextRedactsEveryURLInAMessage(t *testing.T) {
	msg := `GET "http://u:pw@h/a?key=k1": status 500; retried http://h/b?password=p2 and "https://h/c?x=1"`
	got := Text(msg)
	for _, secret := range []string{"pw", "k1", "p2"} {
		if strings.Contains(got, secret) {
			t.Errorf("Text(...) = %q still holds %q", got, secret)
		}
	}
	if !strings.Contains(got, "https://h/c?x=1") || !strings.Contains(got, "status 500") {
		t.Errorf("Text(...) = %q lost what was not secret", got)
	}
}

func TestErrorRedactsAnHTTPClientErrorAndKeepsItsMeaning(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://flowproof:s3cret@127.0.0.1:1/x?token=t0k", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = http.DefaultClient.Do(req)
	if err == nil {
		t.Fatal("request with an expired context succeeded")
	}
	wrapped := fmt.Errorf("deliver batch: %w", Error(err))
	msg := wrapped.Error()
	if strings.Contains(msg, "s3cret") || strings.Contains(msg, "t0k") || !strings.Contains(msg, "127.0.0.1:1/x") {
		t.Errorf("message %q: want the credentials gone and the address kept", msg)
	}
	if !errors.Is(wrapped, context.DeadlineExceeded) {
		t.Error("errors.Is no longer finds context.DeadlineExceeded")
	}
	var netErr net.Error
	if !errors.As(wrapped, &netErr) || !netErr.Timeout() {
		t.Error("errors.As no longer finds the timeout")
	}
	// Nothing that walks the chain by Unwrap may find the original message.
	for e := error(wrapped); e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), "s3cret") {
			t.Errorf("unwrapping reaches %q", e.Error())
		}
	}
}

func TestErrorLeavesCleanErrorsAlone(t *testing.T) {
	if Error(nil) != nil {
		t.Error("Error(nil) is not nil")
	}
	clean := &url.Error{Op: "Get", URL: "http://127.0.0.1:18091/healthz", Err: errors.New("connection refused")}
	if got := Error(clean); got != error(clean) { //nolint:errorlint // the very same error is the point
		t.Errorf("Error(clean) = %#v, want the same error", got)
	}
}

func TestValuesRedactsEveryKnownSecretLongestFirst(t *testing.T) {
	got := Values(`jaas 'user="u" password="pw-long";' and pw-long again, pw alone`, "pw", "pw-long", "")
	want := `jaas 'user="u" password="REDACTED";' and REDACTED again, REDACTED alone`
	if got != want {
		t.Errorf("Values = %q\nwant     %q", got, want)
	}
}
