package server

import "errors"

var (
	errNoCredentials = errors.New("no Authorization header")
	errMalformed     = errors.New("malformed Authorization header")
)

// maxTokenBytes bounds a bearer token; the header as a whole is already bounded by
// max_header_bytes.
const maxTokenBytes = 8 << 10

// ParseBearer extracts the token from Authorization header values (RFC 6750 §2.1). The
// scheme is case-insensitive; exactly one space follows it; the token is a token68.
// Several Authorization headers are refused as malformed rather than guessed at.
func ParseBearer(values []string) (string, error) {
	if len(values) == 0 {
		return "", errNoCredentials
	}
	if len(values) > 1 {
		return "", errMalformed
	}
	h := values[0]
	if h == "" {
		return "", errNoCredentials
	}
	const scheme = "bearer "
	if len(h) <= len(scheme) || !asciiEqualFold(h[:len(scheme)], scheme) {
		return "", errMalformed
	}
	tok := h[len(scheme):]
	if len(tok) > maxTokenBytes || !isToken68(tok) {
		return "", errMalformed
	}
	return tok, nil
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != b[i] {
			return false
		}
	}
	return true
}

// token68Chars marks the bytes RFC 7235's token68 allows before its "=" padding. A
// table lookup: a bearer JWT is near a kilobyte, and this runs on every request.
var token68Chars = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
	}
	return t
}()

// isToken68 checks RFC 7235's token68: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+"
// / "/" ) *"=".
func isToken68(s string) bool {
	i := 0
	for i < len(s) && token68Chars[s[i]] {
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}
