package providers

import "fmt"

// Accepts is a provider's `accepts:` key: the token shapes it is sent. A provider that
// calls an IdP with the token (introspection, userinfo) or searches a directory by its
// hash (ldap) must not be handed tokens another provider issued: a JWT is usually not
// its business, and sending it elsewhere leaks it.
type Accepts string

// The shapes.
const (
	AcceptsOpaque Accepts = "opaque" // the default: anything that is not a JWT
	AcceptsJWT    Accepts = "jwt"    // compact JWS only (IsJWT)
	AcceptsAny    Accepts = "any"
)

// ParseAccepts reads an `accepts:` value; "" is the default, opaque. The error is a
// message for the key (configs' Errorf adds the position).
func ParseAccepts(s string) (Accepts, error) {
	switch a := Accepts(s); a {
	case "":
		return AcceptsOpaque, nil
	case AcceptsOpaque, AcceptsJWT, AcceptsAny:
		return a, nil
	}
	return "", fmt.Errorf("must be opaque, jwt or any, not %q", s)
}

// Considers reports whether a token of this shape is for the provider. An empty token
// never is.
func (a Accepts) Considers(token string) bool {
	if token == "" {
		return false
	}
	switch a {
	case AcceptsAny:
		return true
	case AcceptsJWT:
		return IsJWT(token)
	}
	return !IsJWT(token)
}
