package providers

import (
	"encoding/base64"
	"strings"
	"testing"
)

func seg(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestPeekIssuer(t *testing.T) {
	tests := []struct {
		name, token, iss string
		jwt, ok          bool
	}{
		{"jwt", seg(`{"alg":"RS256"}`) + "." + seg(`{"iss":"https://idp"}`) + ".sig", "https://idp", true, true},
		{"unsigned jwt shape still peeks", seg(`{"alg":"none"}`) + "." + seg(`{"iss":"x"}`) + ".", "x", true, true},
		{"no iss", seg(`{"alg":"RS256"}`) + "." + seg(`{"sub":"a"}`) + ".sig", "", true, false},
		{"iss not a string", seg(`{"alg":"RS256"}`) + "." + seg(`{"iss":1}`) + ".sig", "", true, false},
		{"opaque", "2YotnFZFEjr1zCsicMWpAA", "", false, false},
		{"two segments", seg(`{}`) + "." + seg(`{}`), "", false, false},
		{"four segments (JWE-like)", "a.b.c.d", "", false, false},
		{"payload not json", seg(`{}`) + "." + seg(`nope`) + ".s", "", false, false},
		{"payload an array", seg(`{}`) + "." + seg(`[1]`) + ".s", "", false, false},
		{"padding is not base64url raw", seg(`{}`) + "=." + seg(`{"iss":"x"}`) + ".s", "", false, false},
		{"huge", strings.Repeat("a", maxPeekBytes+1), "", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsJWT(tc.token); got != tc.jwt {
				t.Errorf("IsJWT = %v, want %v", got, tc.jwt)
			}
			iss, ok := PeekIssuer(tc.token)
			if iss != tc.iss || ok != tc.ok {
				t.Errorf("PeekIssuer = %q, %v; want %q, %v", iss, ok, tc.iss, tc.ok)
			}
		})
	}
}

func FuzzPeekIssuer(f *testing.F) {
	for _, s := range []string{
		seg(`{"alg":"RS256","kid":"k"}`) + "." + seg(`{"iss":"https://idp.example.com","sub":"a"}`) + ".c2ln",
		"opaque-token", "..", "a.b.c", seg(`{"a":`) + "." + seg(`{"iss":"\u0000"}`) + ".x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		iss, ok := PeekIssuer(token)
		if ok && !IsJWT(token) {
			t.Fatalf("peeked iss %q from a token that is not JWT-shaped", iss)
		}
		if !ok && iss != "" {
			t.Fatal("iss returned without ok")
		}
	})
}
