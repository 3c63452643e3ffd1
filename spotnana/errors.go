package spotnana

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/idbridge/idbridge/jsonlimit"
)

// ErrUnavailable means Spotnana could not be reached, kept failing (5xx), or kept
// rate-limiting us (429) after every retry. The error wrapping it is an
// *UnavailableError, which carries the Retry-After to pass on to the caller (503).
var ErrUnavailable = errors.New("spotnana: unavailable")

// ErrNoSigningKey means the key store holds no key to sign an assertion with.
var ErrNoSigningKey = errors.New("spotnana: no signing key")

// UnavailableError is returned when Spotnana could not answer after retries. It
// matches ErrUnavailable with errors.Is and unwraps to the last underlying cause (a
// network error, or the caller's context error).
type UnavailableError struct {
	// Status is the last HTTP status seen (0 for a network error).
	Status int
	// Attempts is how many requests were sent.
	Attempts int
	// RetryAfter is the wait to suggest to our own caller: Spotnana's last
	// Retry-After when it sent one, else a short default.
	RetryAfter time.Duration
	// Err is the last cause; nil when the last answer was a 5xx or 429.
	Err error
}

func (e *UnavailableError) Error() string {
	var b strings.Builder
	b.WriteString("spotnana: unavailable after ")
	b.WriteString(strconv.Itoa(e.Attempts))
	b.WriteString(" attempt(s)")
	if e.Status != 0 {
		fmt.Fprintf(&b, ": last status %d", e.Status)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Unwrap returns the last cause, so that errors.Is(err, context.DeadlineExceeded) works.
func (e *UnavailableError) Unwrap() error { return e.Err }

// RefusedError is Spotnana's definite answer "no" (a 4xx other than 429), or a 200
// whose body is not a usable token response. It is not retried.
type RefusedError struct {
	Status      int    // HTTP status (200 for an unusable success body)
	Code        string // Spotnana's errorCode, RFC 6749's error, or derived from Status
	Description string // Spotnana's message or RFC 6749's error_description; may be empty
	DebugID     string // Spotnana's debugIdentifier, for their support; may be empty
}

func (e *RefusedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "spotnana: exchange refused: %d %s", e.Status, e.Code)
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.DebugID != "" {
		b.WriteString(" (debugIdentifier ")
		b.WriteString(e.DebugID)
		b.WriteString(")")
	}
	return b.String()
}

// maxErrorField bounds each string taken from an error body: they end up in logs and
// in our own error bodies, and a hostile or broken upstream must not inflate either.
const maxErrorField = 256

// spotnanaErrorBody is Spotnana's own error shape.
type spotnanaErrorBody struct {
	DebugIdentifier string `json:"debugIdentifier"`
	ErrorMessages   []struct {
		ErrorCode string `json:"errorCode"`
		Message   string `json:"message"`
	} `json:"errorMessages"`
}

// oauthErrorBody is RFC 6749 §5.2's error shape.
type oauthErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// ParseErrorBody turns an error answer of the token endpoint into a RefusedError. It
// understands Spotnana's {"debugIdentifier","errorMessages":[{"errorCode","message"}]}
// and RFC 6749's {"error","error_description"}; any other body yields a Code derived
// from the status (e.g. 400 → BAD_REQUEST) and no description, so that an unknown
// body (an HTML error page, say) is never echoed. Code is never empty.
func ParseErrorBody(status int, body []byte) *RefusedError {
	e := &RefusedError{Status: status}
	if jsonlimit.Check(body) != nil {
		body = nil // too deep to read: the status alone names the error
	}
	var sp spotnanaErrorBody
	if json.Unmarshal(body, &sp) == nil {
		e.DebugID = clean(sp.DebugIdentifier)
		for _, m := range sp.ErrorMessages {
			if c := clean(m.ErrorCode); c != "" {
				e.Code = c
				e.Description = clean(m.Message)
				break
			}
		}
	}
	if e.Code == "" {
		var oe oauthErrorBody
		if json.Unmarshal(body, &oe) == nil {
			if c := clean(oe.Error); c != "" {
				e.Code = c
				e.Description = clean(oe.ErrorDescription)
			}
		}
	}
	if e.Code == "" {
		e.Code = statusCode(status)
	}
	return e
}

// redact drops every field the upstream sent that holds a run of echoRun bytes or more of
// one of secrets (as sent in the form body, percent-encoded, or raw): an error page that
// echoes the request, even cut short, never carries them into a log line or an error
// body. A code that held one is replaced by the status's name, since the code is passed
// on to our caller.
func (e *RefusedError) redact(secrets ...string) *RefusedError {
	g := newEchoGuard(secrets...)
	if g.holds(e.Code) {
		e.Code = statusCode(e.Status)
	}
	if g.holds(e.Description) {
		e.Description = "(the answer echoed the request; not shown)"
	}
	if g.holds(e.DebugID) {
		e.DebugID = ""
	}
	return e
}

// echoRun is the shortest run of a secret that counts as echoed.
const echoRun = 8

// echoGuard holds every echoRun-byte run of some secrets, to find any piece of them.
type echoGuard struct {
	runs  map[string]struct{}
	short []string // secrets shorter than echoRun, matched whole
}

func newEchoGuard(secrets ...string) *echoGuard {
	g := &echoGuard{runs: map[string]struct{}{}}
	for _, s := range secrets {
		for _, form := range []string{s, url.QueryEscape(s)} {
			if form == "" {
				continue
			}
			if len(form) < echoRun {
				g.short = append(g.short, form)
				continue
			}
			for i := 0; i+echoRun <= len(form); i++ {
				g.runs[form[i:i+echoRun]] = struct{}{}
			}
		}
	}
	return g
}

// holds reports whether s contains a piece of a secret.
func (g *echoGuard) holds(s string) bool {
	for i := 0; i+echoRun <= len(s); i++ {
		if _, ok := g.runs[s[i:i+echoRun]]; ok {
			return true
		}
	}
	for _, sh := range g.short {
		if strings.Contains(s, sh) {
			return true
		}
	}
	return false
}

// statusCode names a status the way Spotnana names its codes (UPPER_SNAKE).
func statusCode(status int) string {
	if t := http.StatusText(status); t != "" {
		return strings.ToUpper(strings.NewReplacer(" ", "_", "-", "_", "'", "").Replace(t))
	}
	return "HTTP_" + strconv.Itoa(status)
}

// clean trims a remote string, drops control characters (log injection) and bounds
// its length.
func clean(s string) string {
	s = strings.TrimSpace(s)
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > maxErrorField {
		// Cut on a rune boundary.
		s = strings.ToValidUTF8(s[:maxErrorField], "")
	}
	return s
}
