package spotnana

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/idbridge/idbridge/configs"
)

type jwksDoc struct {
	Keys []map[string]any `json:"keys"`
}

func parseJWKS(t *testing.T, b []byte) jwksDoc {
	t.Helper()
	var d jwksDoc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("JWKS %s: %v", b, err)
	}
	return d
}

func TestGenerateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	now := time.Now().Add(-time.Hour).Truncate(time.Second)
	kid, path, err := GenerateKey(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, kid+".pem") {
		t.Errorf("path = %s", path)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	if !st.ModTime().Equal(now) {
		t.Errorf("mtime = %v, want %v", st.ModTime(), now)
	}
	if ds, _ := os.Stat(dir); ds.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v, want 0700", ds.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("dir holds %d entries, want only the key", len(ents))
	}

	ks, err := NewKeyStore(&configs.Assertion{KeysDir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	doc := parseJWKS(t, ks.JWKS())
	if len(doc.Keys) != 1 {
		t.Fatalf("JWKS has %d keys", len(doc.Keys))
	}
	k := doc.Keys[0]
	if k["kid"] != kid || k["alg"] != "RS256" || k["use"] != "sig" || k["kty"] != "RSA" {
		t.Errorf("JWKS key = %v", k)
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
		if _, ok := k[private]; ok {
			t.Errorf("JWKS publishes private member %q", private)
		}
	}
	// kid is the RFC 7638 thumbprint of the published key.
	pub, err := jwk.ParseKey(mustJSON(t, k))
	if err != nil {
		t.Fatal(err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if want := base64.RawURLEncoding.EncodeToString(tp); kid != want {
		t.Errorf("kid = %s, thumbprint = %s", kid, want)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSigningKeySelection(t *testing.T) {
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		oldAge     time.Duration // age of key "old" at base
		newAge     time.Duration // age of key "new" at base
		advance    time.Duration
		wantSigner string // "old" | "new"
	}{
		{"new key not yet past publish_ahead: old signs", time.Hour, time.Minute, 0, "old"},
		{"new key past publish_ahead: new signs", time.Hour, time.Minute, 9 * time.Minute, "new"},
		{"exactly publish_ahead counts as old enough", time.Hour, 0, 10 * time.Minute, "new"},
		{"both too young: the oldest signs", 5 * time.Minute, time.Minute, 0, "old"},
		{"both old enough: the newest signs", 2 * time.Hour, time.Hour, 0, "new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			oldKid, oldPath, err := testKey(dir, base)
			if err != nil {
				t.Fatal(err)
			}
			newKid, newPath, err := testKey(dir, base)
			if err != nil {
				t.Fatal(err)
			}
			for p, age := range map[string]time.Duration{oldPath: tc.oldAge, newPath: tc.newAge} {
				if err := os.Chtimes(p, base.Add(-age), base.Add(-age)); err != nil {
					t.Fatal(err)
				}
			}
			clock := &fakeClock{t: base}
			ks, err := NewKeyStore(&configs.Assertion{KeysDir: dir, PublishAhead: 10 * time.Minute}, clock.Now, nil)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(parseJWKS(t, ks.JWKS()).Keys); n != 2 {
				t.Errorf("JWKS has %d keys, want both", n)
			}
			clock.Advance(tc.advance)
			want := map[string]string{"old": oldKid, "new": newKid}[tc.wantSigner]
			if got := ks.SigningKID(); got != want {
				t.Errorf("signer = %s, want the %s key %s", got, tc.wantSigner, want)
			}
			tok, err := ks.Sign(AssertionClaims{Issuer: "https://idbridge.test", Subject: "u1", Email: "a@example.com"})
			if err != nil {
				t.Fatal(err)
			}
			msg, err := jws.Parse([]byte(tok))
			if err != nil {
				t.Fatal(err)
			}
			if kid, _ := msg.Signatures()[0].ProtectedHeaders().KeyID(); kid != want {
				t.Errorf("token kid = %s, want %s", kid, want)
			}
		})
	}
}

func TestSignVerifiesAgainstJWKS(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := testKey(dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	clock := newClock()
	ks, err := NewKeyStore(&configs.Assertion{KeysDir: dir}, clock.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAsserter(&configs.Assertion{Issuer: "https://idbridge.test", KeysDir: dir}, ks, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	tok, stt, err := a.Assert([]byte(`{"sub":"00u123","email":"x@example.com"}`), "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if stt != TokenTypeAccessToken {
		t.Errorf("subject_token_type = %s", stt)
	}
	set, err := jwk.Parse(ks.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set), jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(clock.Now)), jwt.WithAudience("spotnana"), jwt.WithIssuer("https://idbridge.test"))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	sub, _ := parsed.Subject()
	iat, _ := parsed.IssuedAt()
	exp, _ := parsed.Expiration()
	jti, _ := parsed.JwtID()
	var email string
	_ = parsed.Get("email", &email)
	if sub != "00u123" || email != "alice@example.com" || jti == "" {
		t.Errorf("sub %q email %q jti %q", sub, email, jti)
	}
	if !iat.Equal(clock.Now()) || exp.Sub(iat) != 5*time.Minute {
		t.Errorf("iat %v exp %v", iat, exp)
	}
	msg, _ := jws.Parse([]byte(tok))
	h := msg.Signatures()[0].ProtectedHeaders()
	if alg, _ := h.Algorithm(); alg != jwa.RS256() {
		t.Errorf("alg = %v", alg)
	}
	// A second assertion has a fresh jti.
	tok2, _, _ := a.Assert(nil, "alice@example.com")
	p2, err := jwt.Parse([]byte(tok2), jwt.WithKeySet(set), jwt.WithValidate(false))
	if err != nil {
		t.Fatal(err)
	}
	jti2, _ := p2.JwtID()
	sub2, _ := p2.Subject()
	if jti2 == jti || sub2 != "alice@example.com" {
		t.Errorf("jti reused (%s) or sub %q not the email", jti2, sub2)
	}
}

func TestSubjectFor(t *testing.T) {
	for _, tc := range []struct {
		name, doc, path, want string
	}{
		{"default path sub", `{"sub":"u1"}`, "", "u1"},
		{"custom path", `{"directory":{"employeeNumber":["E42"]}}`, "directory.employeeNumber", "E42"},
		{"number", `{"oid":12345}`, "oid", "12345"},
		{"missing falls back to email", `{"x":1}`, "sub", "a@example.com"},
		{"empty string falls back", `{"sub":"  "}`, "sub", "a@example.com"},
		{"object falls back", `{"sub":{"a":1}}`, "sub", "a@example.com"},
		{"invalid JSON falls back", `{`, "sub", "a@example.com"},
		{"nil document falls back", ``, "sub", "a@example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SubjectFor([]byte(tc.doc), tc.path, "a@example.com"); got != tc.want {
				t.Errorf("SubjectFor = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestKeyStoreReload(t *testing.T) {
	dir := t.TempDir()
	k1, _, err := testKey(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ks, err := NewKeyStore(&configs.Assertion{KeysDir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	k2, _, err := testKey(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := kids(t, ks); !got[k1] || !got[k2] || len(got) != 2 {
		t.Errorf("after reload: %v", got)
	}

	// A broken key file fails the reload and keeps the previous set.
	if err := os.WriteFile(filepath.Join(dir, "broken.pem"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ks.Reload(); err == nil || !strings.Contains(err.Error(), "broken.pem") {
		t.Errorf("Reload err = %v, want one naming broken.pem", err)
	}
	if got := kids(t, ks); len(got) != 2 {
		t.Errorf("previous keys lost: %v", got)
	}
	// Other files are ignored.
	_ = os.Remove(filepath.Join(dir, "broken.pem"))
	_ = os.WriteFile(filepath.Join(dir, "README"), []byte("hi"), 0o600)
	if err := ks.Reload(); err != nil {
		t.Errorf("Reload: %v", err)
	}
}

func kids(t *testing.T, ks *KeyStore) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, k := range parseJWKS(t, ks.JWKS()).Keys {
		out[k["kid"].(string)] = true
	}
	return out
}

func TestNewKeyStoreErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  *configs.Assertion
		want string
	}{
		{"no dir", &configs.Assertion{}, "keys_dir"},
		{"empty dir", &configs.Assertion{KeysDir: t.TempDir()}, "keys generate"},
		{"missing dir", &configs.Assertion{KeysDir: filepath.Join(t.TempDir(), "nope")}, "keys dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewKeyStore(tc.cfg, nil, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestKeyStoreWatch(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := testKey(dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	ks, err := NewKeyStore(&configs.Assertion{KeysDir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ks.Watch(ctx, 10*time.Millisecond); close(done) }()
	k2, _, err := testKey(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !kids(t, ks)[k2] {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not pick up the new key")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestJWKSHandler(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := testKey(dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	ks, err := NewKeyStore(&configs.Assertion{KeysDir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method string
		status int
	}{{http.MethodGet, 200}, {http.MethodHead, 200}, {http.MethodPost, 405}} {
		t.Run(tc.method, func(t *testing.T) {
			rec := httptest.NewRecorder()
			ks.Handler().ServeHTTP(rec, httptest.NewRequest(tc.method, DefaultJWKSPath, nil))
			if rec.Code != tc.status {
				t.Fatalf("status = %d", rec.Code)
			}
			if tc.status != 200 {
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "public, max-age=300" {
				t.Errorf("Cache-Control = %q", cc)
			}
			if tc.method == http.MethodGet && rec.Body.String() != string(ks.JWKS()) {
				t.Errorf("body = %s", rec.Body)
			}
		})
	}
}

// testKey makes a 2048-bit key: the 3072-bit default is too slow to generate per case.
func testKey(dir string, now time.Time) (string, string, error) {
	return generateKey(dir, now, MinKeyBits)
}
