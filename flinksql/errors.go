package flinksql

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// APIError is an answer of Flink's REST API (JobManager or SQL Gateway) with
// a status other than 2xx. Messages holds Flink's own "errors" array as
// sent: for failures inside Flink the last element is the server-side Java
// exception, stack trace included, whose innermost "Caused by:" names the
// real problem (a SQL parse error, a missing connector option, ...).
type APIError struct {
	Method   string
	Path     string
	Status   int
	Messages []string
}

// Error gives one line: the request, the status, Flink's most specific
// message (the first exception in the chain that is not the gateway's own
// wrapper) and the root cause when it adds something.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "flinksql: %s %s: HTTP %d", e.Method, e.Path, e.Status)
	summary, root := e.Summary(), e.RootCause()
	if summary != "" {
		b.WriteString(": ")
		b.WriteString(summary)
	}
	// A root cause whose first line the summary already says adds only
	// noise, such as a parser's list of expected tokens.
	if root != "" && !strings.Contains(summary, messageOf(firstLine(root))) {
		root = compact(root, maxRootCauseLen)
		b.WriteString(": root cause: ")
		b.WriteString(root)
	}
	return b.String()
}

// maxRootCauseLen keeps Error() to a line while leaving room for the detail
// a root cause puts on its second line ("Unsupported options: x").
const maxRootCauseLen = 300

// compact joins the non-empty lines of s with spaces and shortens the
// result to at most limit bytes.
func compact(s string, limit int) string {
	var parts []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, line)
		}
	}
	out := strings.Join(parts, " ")
	if len(out) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut] + "..."
	}
	return out
}

// Summary is the first line of the most specific message: in a Java
// exception chain the first cause that is not a wrapper of the gateway or
// of java.util.concurrent ("SqlParserException: SQL parse failed. ..."),
// otherwise the first message that is not a bare "Internal server error.".
func (e *APIError) Summary() string {
	for i := len(e.Messages) - 1; i >= 0; i-- {
		chain := causeChain(e.Messages[i])
		for _, c := range chain {
			if !isWrapper(c.class) {
				return firstLine(c.String())
			}
		}
		if len(chain) > 0 {
			return firstLine(chain[len(chain)-1].String())
		}
	}
	for _, m := range e.Messages {
		if line := firstLine(m); line != "" && !isGenericMessage(line) {
			return line
		}
	}
	if len(e.Messages) > 0 {
		return firstLine(e.Messages[0])
	}
	return ""
}

// RootCause is the innermost exception of the server-side chain, without
// stack frames, the class reduced to its simple name
// ("SqlValidatorException: Object 'x' not found"). It can span several
// lines (a parser's "Was expecting one of:" list). It is empty when Flink
// sent no exception.
func (e *APIError) RootCause() string {
	for i := len(e.Messages) - 1; i >= 0; i-- {
		if chain := causeChain(e.Messages[i]); len(chain) > 0 {
			return chain[len(chain)-1].String()
		}
	}
	return ""
}

// errorBody is the shape of every Flink REST error answer.
type errorBody struct {
	Errors []string `json:"errors"`
}

// newAPIError builds the typed error from a response body; a body that is
// not Flink's JSON (a proxy's HTML page, say) is kept as the only message,
// shortened, so the status is never all the caller learns.
func newAPIError(method, path string, status int, body []byte) *APIError {
	e := &APIError{Method: method, Path: path, Status: status}
	var parsed errorBody
	if err := json.Unmarshal(body, &parsed); err == nil && len(parsed.Errors) > 0 {
		e.Messages = parsed.Errors
		return e
	}
	if text := strings.TrimSpace(string(body)); text != "" {
		const limit = 512
		if len(text) > limit {
			text = text[:limit] + "..."
		}
		e.Messages = []string{text}
	}
	return e
}

// cause is one exception of a Java "Caused by:" chain.
type cause struct {
	class   string // fully qualified
	message string // may span lines
}

func (c cause) String() string {
	simple := c.class[strings.LastIndex(c.class, ".")+1:]
	if c.message == "" {
		return simple
	}
	return simple + ": " + c.message
}

// causeChain parses a Java stack trace as Flink prints it into the
// exception and its causes, outermost first; nil when text is not one.
func causeChain(text string) []cause {
	var chain []cause
	inMessage := false
	for _, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "at ") || strings.HasPrefix(trimmed, "... ") ||
			strings.HasPrefix(trimmed, "Suppressed: ") || strings.HasPrefix(trimmed, "End of exception on server side"):
			inMessage = false
			continue
		case strings.HasPrefix(trimmed, "Caused by: ") || len(chain) == 0:
			if class, msg, ok := parseException(strings.TrimPrefix(trimmed, "Caused by: ")); ok {
				chain = append(chain, cause{class, msg})
				inMessage = true
				continue
			}
		}
		if inMessage && len(chain) > 0 {
			c := &chain[len(chain)-1]
			c.message = strings.TrimSpace(c.message + "\n" + strings.TrimRight(line, " \t"))
		}
	}
	return chain
}

// parseException recognises "org.example.FooException: message": a dotted
// Java class name whose last part ends in Exception, Error or Throwable.
func parseException(line string) (class, message string, ok bool) {
	class, message, _ = strings.Cut(line, ":")
	if class == "" || strings.ContainsAny(class, " \t<>") || !strings.Contains(class, ".") {
		return "", "", false
	}
	simple := class[strings.LastIndex(class, ".")+1:]
	if !strings.HasSuffix(simple, "Exception") && !strings.HasSuffix(simple, "Error") && !strings.HasSuffix(simple, "Throwable") {
		return "", "", false
	}
	return class, strings.TrimSpace(message), true
}

// isWrapper tells the exceptions that only carry another one: the
// gateway's "Failed to fetchResults." and "Failed to execute the operation"
// and the futures' wrappers.
func isWrapper(class string) bool {
	return strings.HasPrefix(class, "org.apache.flink.table.gateway.") ||
		strings.HasPrefix(class, "java.util.concurrent.") ||
		class == "org.apache.flink.runtime.rest.handler.RestHandlerException" ||
		class == "java.lang.reflect.InvocationTargetException"
}

// messageOf drops the "Class: " prefix of a cause line.
func messageOf(line string) string {
	if _, msg, ok := strings.Cut(line, ": "); ok {
		return msg
	}
	return line
}

func isGenericMessage(m string) bool {
	switch strings.TrimSuffix(strings.ToLower(strings.TrimSpace(m)), ".") {
	case "internal server error", "bad request", "not found":
		return true
	}
	return false
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}
