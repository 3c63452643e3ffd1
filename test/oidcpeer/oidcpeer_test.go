package oidcpeer_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/idbridge/idbridge/test/oidcpeer"
)

// TestPeerJWTShape pins what the lead's jwt provider will be checked against: an RFC 9068
// access token with typ at+jwt, the peer's issuer, audience and client.
func TestPeerJWTShape(t *testing.T) {
	start := time.Now()
	p := oidcpeer.Start(t)
	t.Logf("peer up in %v at %s", time.Since(start).Round(time.Millisecond), p.Issuer())

	tok := p.MintJWT(t, "alice@example.com")
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("JWT has %d segments", len(parts))
	}
	var header struct {
		Typ, Alg, Kid string
	}
	var claims struct {
		Iss, Sub, Aud, Scope, Email, Jti string
		ClientID                         string `json:"client_id"`
		EmailVerified                    bool   `json:"email_verified"`
		Exp, Iat                         int64
	}
	decode(t, parts[0], &header)
	decode(t, parts[1], &claims)
	if header.Typ != "at+jwt" || header.Alg != "RS256" || header.Kid == "" {
		t.Errorf("header = %+v, want typ at+jwt, alg RS256, a kid", header)
	}
	if claims.Iss != p.Issuer() || claims.Aud != oidcpeer.JWTAudience || claims.ClientID != oidcpeer.ClientID {
		t.Errorf("claims = %+v", claims)
	}
	if claims.Email != "alice@example.com" || !claims.EmailVerified || claims.Sub == "" || claims.Jti == "" {
		t.Errorf("claims = %+v", claims)
	}
	if claims.Exp <= claims.Iat || claims.Scope != "api:read" {
		t.Errorf("claims = %+v", claims)
	}
}

func decode(t *testing.T, seg string, out any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
}
