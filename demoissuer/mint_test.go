package demoissuer

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestMintEndpoint(t *testing.T) {
	is, err := NewIssuer(WithMintEndpoint(map[string]any{"aud": "idbridge"}))
	if err != nil {
		t.Fatal(err)
	}
	defer is.Close()
	claimsOf := func(tok string) map[string]any {
		parts := strings.Split(strings.TrimSpace(tok), ".")
		raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("payload: %v", err)
		}
		return m
	}
	post := func(query, body string) (int, string) {
		resp, err := http.Post(is.URL()+MintPath+query, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, tok := post("", `{"sub":"bob","email":"bob@example.com"}`)
	if code != 200 {
		t.Fatalf("%d %s", code, tok)
	}
	c := claimsOf(tok)
	if c["sub"] != "bob" || c["aud"] != "idbridge" || c["iss"] != is.URL() {
		t.Errorf("claims %v", c)
	}
	code, tok = post("?ttl=-5m", `{"sub":"bob"}`)
	if exp := int64(claimsOf(tok)["exp"].(float64)); code != 200 || exp >= time.Now().Unix() {
		t.Errorf("expired token: %d exp %d", code, exp)
	}
	for _, tc := range []struct{ query, body string }{{"", "[1]"}, {"", "not json"}, {"?ttl=soon", "{}"}, {"", strings.Repeat(" ", maxMintBody+1)}} {
		if code, _ := post(tc.query, tc.body); code != http.StatusBadRequest {
			t.Errorf("%q %.20q: %d, want 400", tc.query, tc.body, code)
		}
	}
	// An algorithm without a key is refused in the caller's terms: what the issuer signs.
	if code, body := post("?alg=ES256", "{}"); code != http.StatusBadRequest || !strings.Contains(body, "this issuer signs RS256") ||
		strings.Contains(body, "WithAlgorithms") {
		t.Errorf("alg=ES256: %d %s", code, body)
	}
	if code, tok := post("?alg=PS256", "{}"); code != 200 || !strings.Contains(tok, ".") {
		t.Errorf("alg=PS256 with the RSA key: %d %s", code, tok)
	}
	// A caller off loopback is refused, whatever the listener.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, MintPath, strings.NewReader("{}"))
	req.RemoteAddr = "192.0.2.7:4242"
	is.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("off-loopback caller: %d, want 403", rec.Code)
	}
}
