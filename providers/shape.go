package providers

import (
	"encoding/base64"
	"github.com/idbridge/idbridge/configs"
	"net/url"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/idbridge/idbridge/jsonlimit"

	"github.com/idbridge/idbridge/internal/loopback"
)

// maxPeekBytes bounds the work done on an unverified token before any provider has
// accepted it: no identity provider issues a multi-kilobyte iss.
const maxPeekBytes = 16 << 10

// IsJWT reports whether token has the compact JWS shape: three base64url segments, the
// first a JSON object. Opaque tokens never have it, so shape alone steers a token away
// from IdPs that did not issue it.
func IsJWT(token string) bool {
	_, ok := jwtPayload(token)
	return ok
}

// PeekIssuer returns the unverified iss claim of a JWT-shaped token. It proves nothing:
// it only tells which jwt provider should verify the token.
func PeekIssuer(token string) (string, bool) {
	payload, ok := jwtPayload(token)
	if !ok {
		return "", false
	}
	iss := gjson.GetBytes(payload, "iss")
	if iss.Type != gjson.String {
		return "", false
	}
	return iss.Str, true
}

func jwtPayload(token string) ([]byte, bool) {
	if len(token) > maxPeekBytes {
		return nil, false
	}
	h, rest, ok := strings.Cut(token, ".")
	if !ok {
		return nil, false
	}
	p, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sig, ".") || h == "" || p == "" {
		return nil, false
	}
	header, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil || jsonlimit.Check(header) != nil || !gjson.ValidBytes(header) || !gjson.ParseBytes(header).IsObject() {
		return nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil || jsonlimit.Check(payload) != nil || !gjson.ValidBytes(payload) || !gjson.ParseBytes(payload).IsObject() {
		return nil, false
	}
	return payload, true
}

// CheckEndpointURL validates an IdP endpoint from the config: an absolute http(s) URL
// without user info (credentials belong in their own, secret, fields). It returns a
// short problem description, or "" when the URL is fine.
func CheckEndpointURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "is not a URL"
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "must be an absolute http(s) URL"
	}
	if u.User != nil {
		return "must not carry credentials (put them in their own, secret, fields)"
	}
	return ""
}

// PlainHTTPWarning returns a warning for key of sec when raw is a plain http:// URL to a
// host off loopback: what travels there (tokens, client credentials, the keys that
// decide which tokens are genuine) can be read or replaced on the network. nil otherwise.
func PlainHTTPWarning(sec *configs.ProviderSection, key, raw, what string) *configs.Error {
	host, plain := plainHTTPHost(raw)
	if !plain {
		return nil
	}
	w := sec.Errorf(key, plainHTTPFormat, host, what)
	w.Warning = true
	return w
}

// PlainHTTPStepWarning is PlainHTTPWarning for a key of an enrichment step's section
// (a userinfo: endpoint, a rest: url or token_url).
func PlainHTTPStepWarning(step *configs.Section, key, raw, what string) *configs.Error {
	host, plain := plainHTTPHost(raw)
	if !plain {
		return nil
	}
	return step.Warnf(key, plainHTTPFormat, host, what)
}

const plainHTTPFormat = "plain http to %s: %s cross the network in clear; use https"

// plainHTTPHost reports raw's host when raw is an http:// URL to a host off loopback.
func plainHTTPHost(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return "", false
	}
	host := u.Hostname()
	if loopback.Host(host) {
		return "", false
	}
	return host, true
}
