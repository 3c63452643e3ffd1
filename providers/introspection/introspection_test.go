package introspection_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/providers/introspection"
	"github.com/idbridge/idbridge/providers/introspection/idptest"
)

const (
	testSecret = "s3cr3t-client-secret-value"
	testToken  = "opaque-user-token-4f1c2a9b7e"
)

// newProvider builds a provider for endpoint with extra YAML keys.
func newProvider(t testing.TB, endpoint, extra string, deps providers.Deps) providers.Instance {
	t.Helper()
	text := fmt.Sprintf("endpoint: %s\nclient_id: idbridge\nclient_secret: %s\naudiences: [idbridge]\n%s", endpoint, testSecret, extra)
	inst, err := introspection.New(idptest.Section(t, "corp", introspection.Type, text), deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return inst
}

func authenticate(t testing.TB, inst providers.Instance, token string) (providers.Identity, error) {
	t.Helper()
	return inst.Provider.Authenticate(context.Background(), token)
}

func TestActiveAnswerIsTheDocument(t *testing.T) {
	exp := time.Now().Add(30 * time.Minute).Unix()
	srv := idptest.New(t, idptest.Active(map[string]any{
		"sub": "u1", "aud": "idbridge", "client_id": "app", "scope": "openid email", "exp": exp,
		"email": "alice@example.com",
	}))
	inst := newProvider(t, srv.URL, "", providers.Deps{})

	id, err := authenticate(t, inst, testToken)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if !bytes.Contains(id.Document, []byte(`"email":"alice@example.com"`)) || !bytes.Contains(id.Document, []byte(`"active":true`)) {
		t.Errorf("document = %s", id.Document)
	}
	if id.Expires.Unix() != exp {
		t.Errorf("Expires = %v, want unix %d", id.Expires, exp)
	}
	if got := srv.LastForm("token"); got != testToken {
		t.Errorf("form token = %q", got)
	}
	if got := srv.LastForm("token_type_hint"); got != "access_token" {
		t.Errorf("form token_type_hint = %q, want the default access_token", got)
	}
	if got := srv.LastHeader("Content-Type"); got != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", got)
	}
	if err := inst.Provider.(providers.Policy).CheckPolicy(id.Document, time.Now()); err != nil {
		t.Errorf("CheckPolicy on the accepted document: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		name          string
		extra         string
		cache, negTTL time.Duration
	}{
		{"defaults", "", 60 * time.Second, 10 * time.Second},
		{"cache_ttl 0 disables", "cache_ttl: 0s\nnegative_cache_ttl: 0s", 0, 0},
		{"explicit", "cache_ttl: 5m\nnegative_cache_ttl: 1s", 5 * time.Minute, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst := newProvider(t, "https://idp.example.com/introspect", tt.extra, providers.Deps{})
			if inst.CacheTTL != tt.cache || inst.NegativeTTL != tt.negTTL {
				t.Errorf("CacheTTL, NegativeTTL = %v, %v; want %v, %v", inst.CacheTTL, inst.NegativeTTL, tt.cache, tt.negTTL)
			}
			if inst.Name != "corp" || inst.Type != "introspection" || inst.Final || inst.Fingerprint != "test" {
				t.Errorf("instance = %+v", inst)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // substrings, one per expected error
	}{
		{"empty", "{}", []string{"providers[0].endpoint: is required", "providers[0].client_id: is required", "providers[0].client_secret: is required"}},
		{"bad endpoint", "endpoint: ftp://x\nclient_id: a\nclient_secret: b", []string{"endpoint: must be an absolute http(s) URL"}},
		{"credentials in endpoint", "endpoint: https://u:p@x/i\nclient_id: a\nclient_secret: b", []string{"endpoint: must not carry credentials"}},
		{"accepts", "endpoint: https://x/i\nclient_id: a\nclient_secret: b\naccepts: jwe", []string{"accepts: must be opaque, jwt or any"}},
		{"auth_method", "endpoint: https://x/i\nclient_id: a\nclient_secret: b\nauth_method: tls_client_auth", []string{"auth_method: must be"}},
		{"private_key_jwt without key", "endpoint: https://x/i\nclient_id: a\nauth_method: private_key_jwt", []string{"private_key_file: is required"}},
		{"missing key file", "endpoint: https://x/i\nclient_id: a\nauth_method: private_key_jwt\nprivate_key_file: /nonexistent/key.pem", []string{"private_key_file: cannot read the key file"}},
		{"negative durations", "endpoint: https://x/i\nclient_id: a\nclient_secret: b\ntimeout: -1s\ncache_ttl: -1s\nnegative_cache_ttl: -1s", []string{"timeout: must be positive", "cache_ttl: must not be negative", "negative_cache_ttl: must not be negative"}},
		{"bad scope", "endpoint: https://x/i\nclient_id: a\nclient_secret: b\nrequired_scopes: ['a b']", []string{"required_scopes:"}},
		{"bad claim value", "endpoint: https://x/i\nclient_id: a\nclient_secret: b\nrequired_claims: {groups: [a, b]}", []string{"required_claims: \"groups\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := introspection.New(idptest.Section(t, "corp", introspection.Type, tt.text), providers.Deps{})
			var errs configs.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v, want configs.Errors", err)
			}
			if len(errs) != len(tt.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("errors lack %q:\n%v", w, err)
				}
			}
			if !strings.HasPrefix(errs[0].Error(), "test.yaml:") {
				t.Errorf("error not located: %v", errs[0])
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	open := idptest.Section(t, "corp", introspection.Type, "endpoint: https://x/i\nclient_id: a\nclient_secret: b")
	ws := introspection.Warnings(open)
	if len(ws) != 1 || !ws[0].Warning || !strings.Contains(ws[0].Msg, "any client's token, however low its trust, is accepted") {
		t.Errorf("Warnings = %v", ws)
	}
	closed := idptest.Section(t, "corp", introspection.Type, "endpoint: https://x/i\nclient_id: a\nclient_secret: b\nclient_ids: [app]")
	if ws := introspection.Warnings(closed); len(ws) != 0 {
		t.Errorf("Warnings with client_ids = %v", ws)
	}
	plain := idptest.Section(t, "corp", introspection.Type, "endpoint: http://idp.example.com/i\nclient_id: a\nclient_secret: b\naudiences: [x]")
	if ws := introspection.Warnings(plain); len(ws) != 1 || !strings.Contains(ws[0].Msg, "plain http") {
		t.Errorf("Warnings for plain http = %v", ws)
	}
}

func TestAcceptsShapes(t *testing.T) {
	jwtShaped := "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"
	tests := []struct {
		accepts string
		token   string
		mine    bool
	}{
		{"", testToken, true},
		{"", jwtShaped, false},
		{"opaque", jwtShaped, false},
		{"jwt", testToken, false},
		{"jwt", jwtShaped, true},
		{"any", jwtShaped, true},
		{"any", testToken, true},
		{"any", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.accepts+"/"+tt.token, func(t *testing.T) {
			srv := idptest.New(t, idptest.Active(map[string]any{"aud": "idbridge"}))
			extra := ""
			if tt.accepts != "" {
				extra = "accepts: " + tt.accepts
			}
			inst := newProvider(t, srv.URL, extra, providers.Deps{})
			_, err := authenticate(t, inst, tt.token)
			if tt.mine {
				if err != nil || srv.Hits() != 1 {
					t.Errorf("err = %v, hits = %d; want accepted after one call", err, srv.Hits())
				}
				return
			}
			if !errors.Is(err, providers.ErrNotMine) || srv.Hits() != 0 {
				t.Errorf("err = %v, hits = %d; want ErrNotMine and no call (never send a token to an IdP that did not issue it)", err, srv.Hits())
			}
		})
	}
}

func TestInactiveIsInvalid(t *testing.T) {
	srv := idptest.New(t, idptest.Inactive())
	inst := newProvider(t, srv.URL, "", providers.Deps{})
	_, err := authenticate(t, inst, testToken)
	if !errors.Is(err, providers.ErrInvalidToken) || errors.Is(err, providers.ErrUnavailable) {
		t.Errorf("err = %v, want ErrInvalidToken only", err)
	}
}

func TestFaultsAreUnavailable(t *testing.T) {
	for _, f := range idptest.Faults() {
		t.Run(f.Name, func(t *testing.T) {
			srv := idptest.New(t, f.Handler)
			inst := newProvider(t, srv.URL, "timeout: 300ms", providers.Deps{})
			start := time.Now()
			id, err := authenticate(t, inst, testToken)
			if !errors.Is(err, providers.ErrUnavailable) || errors.Is(err, providers.ErrInvalidToken) {
				t.Errorf("err = %v, want ErrUnavailable only", err)
			}
			if id.Document != nil {
				t.Errorf("a fault yielded a document: %s", id.Document)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v: the timeout did not bound the call", d)
			}
		})
	}
}

func TestCredentialsRefusedIsUnavailableAndLogged(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			srv := idptest.New(t, idptest.Raw(status, "application/json", []byte(`{"error":"invalid_client"}`)))
			var logs bytes.Buffer
			inst := newProvider(t, srv.URL, "", providers.Deps{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			_, err := authenticate(t, inst, testToken)
			if !errors.Is(err, providers.ErrUnavailable) || errors.Is(err, providers.ErrInvalidToken) {
				t.Errorf("err = %v: a refusal of OUR credentials is never the user's fault", err)
			}
			if !strings.Contains(logs.String(), `"level":"ERROR"`) || !strings.Contains(logs.String(), "client credentials") {
				t.Errorf("no error log: %s", logs.String())
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	now := time.Now()
	base := func(extra map[string]any) map[string]any {
		doc := map[string]any{"sub": "u1", "aud": "idbridge", "exp": now.Add(time.Hour).Unix()}
		for k, v := range extra {
			doc[k] = v
		}
		return doc
	}
	tests := []struct {
		name   string
		config string
		answer map[string]any
		want   error // nil: accepted
	}{
		{"expired", "", base(map[string]any{"exp": now.Add(-time.Second).Unix()}), providers.ErrExpired},
		{"not yet valid", "", base(map[string]any{"nbf": now.Add(time.Hour).Unix()}), providers.ErrInvalidToken},
		{"nbf past", "", base(map[string]any{"nbf": now.Add(-time.Hour).Unix()}), nil},
		{"no exp", "", map[string]any{"aud": "idbridge"}, nil},
		{"issuer matches", "issuer: https://idp", base(map[string]any{"iss": "https://idp"}), nil},
		{"issuer differs", "issuer: https://idp", base(map[string]any{"iss": "https://evil"}), providers.ErrInvalidToken},
		{"issuer missing", "issuer: https://idp", base(nil), providers.ErrInvalidToken},
		{"audience array", "", base(map[string]any{"aud": []string{"other", "idbridge"}}), nil},
		{"audience differs", "", base(map[string]any{"aud": "other"}), providers.ErrInvalidToken},
		{"audience missing", "", map[string]any{"sub": "u1"}, providers.ErrInvalidToken},
		{"client allowed", "client_ids: [app]", base(map[string]any{"client_id": "app"}), nil},
		{"client refused", "client_ids: [app]", base(map[string]any{"client_id": "low-trust"}), providers.ErrInvalidToken},
		{"client missing", "client_ids: [app]", base(nil), providers.ErrInvalidToken},
		{"claims match", "required_claims: {tid: t1, level: 3, staff: true}", base(map[string]any{"tid": "t1", "level": 3, "staff": true}), nil},
		{"claim differs", "required_claims: {tid: t1}", base(map[string]any{"tid": "t2"}), providers.ErrInvalidToken},
		{"claim missing", "required_claims: {tid: t1}", base(nil), providers.ErrInvalidToken},
		{"claim wrong type", "required_claims: {level: 3}", base(map[string]any{"level": "3"}), providers.ErrInvalidToken},
		{"claim in array", "required_claims: {groups: travel}", base(map[string]any{"groups": []string{"staff", "travel"}}), nil},
		{"claim dotted name", "required_claims: {'https://x.example/tenant': t1}", base(map[string]any{"https://x.example/tenant": "t1"}), nil},
		{"scopes in scope", "required_scopes: [read, write]", base(map[string]any{"scope": "openid read write"}), nil},
		{"scopes in scp array", "required_scopes: [read]", base(map[string]any{"scp": []string{"read"}}), nil},
		{"scopes in scp string", "required_scopes: [read]", base(map[string]any{"scp": "read write"}), nil},
		{"scope missing", "required_scopes: [read, write]", base(map[string]any{"scope": "read"}), providers.ErrInsufficientScope},
		{"scope prefix is not a scope", "required_scopes: [read]", base(map[string]any{"scope": "reader"}), providers.ErrInsufficientScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := idptest.New(t, idptest.JSON(withActive(tt.answer)))
			inst := newProvider(t, srv.URL, tt.config, providers.Deps{})
			id, err := authenticate(t, inst, testToken)
			check := func(stage string, err error) {
				t.Helper()
				if tt.want == nil {
					if err != nil {
						t.Errorf("%s: %v, want accepted", stage, err)
					}
					return
				}
				if !errors.Is(err, tt.want) {
					t.Errorf("%s: err = %v, want %v", stage, err, tt.want)
				}
				if errors.Is(err, providers.ErrUnavailable) {
					t.Errorf("%s: a policy failure is not an outage: %v", stage, err)
				}
			}
			// A fresh answer, as the chain sees it: Authenticate, then CheckPolicy on the
			// document (required_scopes is checked there only, so that an answer lacking
			// a scope is cached and refused from the cache).
			if err == nil {
				err = inst.Provider.(providers.Policy).CheckPolicy(id.Document, now)
			} else if errors.Is(err, providers.ErrInsufficientScope) {
				t.Errorf("Authenticate: %v: scopes are CheckPolicy's, or the answer is never cached", err)
			}
			check("Authenticate+CheckPolicy", err)
			// The chain caches the raw answer and runs CheckPolicy on every hit: it must
			// reach the same verdict on the same document.
			body, _ := jsonMarshal(withActive(tt.answer))
			if id.Document != nil {
				body = id.Document
			}
			check("CheckPolicy", inst.Provider.(providers.Policy).CheckPolicy(body, now))
			if tt.want == providers.ErrInsufficientScope {
				var se *providers.ScopeError
				if !errors.As(err, &se) || strings.Join(se.Required, " ") != "read write" && strings.Join(se.Required, " ") != "read" {
					t.Errorf("err = %#v, want *ScopeError listing the required scopes", err)
				}
			}
		})
	}
}

// TestCheckPolicyExpiresOnCachedDocument: a document accepted an hour ago is refused by
// CheckPolicy once its exp has passed, whatever the cache kept.
func TestCheckPolicyExpiresOnCachedDocument(t *testing.T) {
	now := time.Now()
	srv := idptest.New(t, idptest.Active(map[string]any{"aud": "idbridge", "exp": now.Add(time.Minute).Unix()}))
	inst := newProvider(t, srv.URL, "", providers.Deps{})
	id, err := authenticate(t, inst, testToken)
	if err != nil {
		t.Fatal(err)
	}
	pol := inst.Provider.(providers.Policy)
	if err := pol.CheckPolicy(id.Document, now); err != nil {
		t.Errorf("now: %v", err)
	}
	if err := pol.CheckPolicy(id.Document, now.Add(2*time.Minute)); !errors.Is(err, providers.ErrExpired) {
		t.Errorf("after exp: %v, want ErrExpired", err)
	}
}

// TestBasicAuthEncoding: RFC 6749 §2.3.1 form-urlencodes id and secret before base64,
// which http.Request.SetBasicAuth does not.
func TestBasicAuthEncoding(t *testing.T) {
	id, secret := "client:id%odd +x", "p:a%s s+w/rd"
	srv := idptest.New(t, idptest.Active(map[string]any{"aud": "idbridge"}))
	text := fmt.Sprintf("endpoint: %s\nclient_id: %q\nclient_secret: %q\naudiences: [idbridge]", srv.URL, id, secret)
	inst, err := introspection.New(idptest.Section(t, "corp", introspection.Type, text), providers.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authenticate(t, inst, testToken); err != nil {
		t.Fatal(err)
	}
	got := srv.LastHeader("Authorization")
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("client%3Aid%25odd+%2Bx:p%3Aa%25s+s%2Bw%2Frd"))
	if got != want {
		t.Errorf("Authorization = %q, want %q", got, want)
	}
	if srv.LastForm("client_secret") != "" || srv.LastForm("client_id") != "" {
		t.Error("client_secret_basic must not put credentials in the body")
	}
}

func TestClientSecretPost(t *testing.T) {
	srv := idptest.New(t, idptest.Active(map[string]any{"aud": "idbridge"}))
	inst := newProvider(t, srv.URL, "auth_method: client_secret_post", providers.Deps{})
	if _, err := authenticate(t, inst, testToken); err != nil {
		t.Fatal(err)
	}
	if srv.LastForm("client_id") != "idbridge" || srv.LastForm("client_secret") != testSecret {
		t.Errorf("form client_id/secret = %q/%q", srv.LastForm("client_id"), srv.LastForm("client_secret"))
	}
	if srv.LastHeader("Authorization") != "" {
		t.Error("client_secret_post sent an Authorization header")
	}
}

func TestPrivateKeyJWT(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		priv any
		pub  any
		alg  jwa.SignatureAlgorithm
	}{
		{"RS256", rsaKey, &rsaKey.PublicKey, jwa.RS256()},
		{"ES256", ecKey, &ecKey.PublicKey, jwa.ES256()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			der, err := x509.MarshalPKCS8PrivateKey(tt.priv)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
				t.Fatal(err)
			}
			srv := idptest.New(t, idptest.Active(map[string]any{"aud": "idbridge"}))
			sec := idptest.Section(t, "corp", introspection.Type, fmt.Sprintf(
				"endpoint: %s\nclient_id: idbridge\nauth_method: private_key_jwt\nprivate_key_file: key.pem\naudiences: [idbridge]", srv.URL))
			sec.File = filepath.Join(dir, "idbridge.yaml") // key.pem is relative to the config
			inst, err := introspection.New(sec, providers.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := authenticate(t, inst, testToken); err != nil {
				t.Fatal(err)
			}
			if got := srv.LastForm("client_assertion_type"); got != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
				t.Errorf("client_assertion_type = %q", got)
			}
			assertion := srv.LastForm("client_assertion")
			tok, err := jwt.Parse([]byte(assertion), jwt.WithKey(tt.alg, tt.pub), jwt.WithValidate(true),
				jwt.WithIssuer("idbridge"), jwt.WithSubject("idbridge"), jwt.WithAudience(srv.URL))
			if err != nil {
				t.Fatalf("assertion does not verify with the public key: %v", err)
			}
			if jti, ok := tok.JwtID(); !ok || jti == "" {
				t.Error("assertion has no jti")
			}
			if exp, ok := tok.Expiration(); !ok || time.Until(exp) > 2*time.Minute {
				t.Errorf("assertion exp = %v, want a short lifetime", exp)
			}
			if srv.LastHeader("Authorization") != "" || srv.LastForm("client_secret") != "" {
				t.Error("private_key_jwt also sent a secret")
			}
		})
	}
}

// TestSecretsNeverLeak drives every path (accepted, inactive, faults, refused
// credentials, policy failures) and looks for the client secret and the token in the
// logs and the errors.
func TestSecretsNeverLeak(t *testing.T) {
	var logs bytes.Buffer
	deps := providers.Deps{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	handlers := []http.Handler{
		idptest.Active(map[string]any{"aud": "idbridge", "scope": "x"}),
		idptest.Active(map[string]any{"aud": "other"}),
		idptest.Inactive(),
		idptest.Raw(http.StatusUnauthorized, "application/json", []byte(`{"error":"invalid_client"}`)),
		// An endpoint that echoes what it got must not make us repeat it.
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "bad token "+r.PostFormValue("token"), http.StatusBadRequest)
		}),
	}
	for _, f := range idptest.Faults() {
		handlers = append(handlers, f.Handler)
	}
	var errs []string
	for _, h := range handlers {
		srv := idptest.New(t, h)
		for _, method := range []string{"client_secret_basic", "client_secret_post"} {
			inst := newProvider(t, srv.URL, "timeout: 200ms\nrequired_scopes: [y]\nauth_method: "+method, deps)
			if _, err := authenticate(t, inst, testToken); err != nil {
				errs = append(errs, err.Error(), fmt.Sprintf("%+v %#v", err, err))
			}
			inst.Provider.(providers.HealthChecker).Health(context.Background())
		}
	}
	_, err := introspection.New(idptest.Section(t, "corp", introspection.Type,
		"endpoint: ftp://x\nclient_id: a\nclient_secret: "+testSecret+"\naccepts: bogus"), deps)
	errs = append(errs, err.Error())
	all := logs.String() + strings.Join(errs, "\n")
	for _, secret := range []string{testSecret, testToken, base64.StdEncoding.EncodeToString([]byte("idbridge:" + testSecret))} {
		if strings.Contains(all, secret) {
			t.Errorf("%q leaked into logs or errors:\n%s", secret, all)
		}
	}
	if len(errs) < 10 {
		t.Errorf("only %d errors exercised", len(errs))
	}
}

func TestHealth(t *testing.T) {
	tests := []struct {
		name    string
		handler http.Handler
		ok      bool
	}{
		{"400 for the missing token", idptest.Raw(http.StatusBadRequest, "application/json", []byte(`{"error":"invalid_request"}`)), true},
		{"200 inactive", idptest.Inactive(), true},
		{"401 credentials", idptest.Raw(http.StatusUnauthorized, "application/json", nil), false},
		{"500", idptest.Raw(http.StatusInternalServerError, "", nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := idptest.New(t, tt.handler)
			inst := newProvider(t, srv.URL, "", providers.Deps{})
			h := inst.Provider.(providers.HealthChecker).Health(context.Background())
			if h.OK != tt.ok || !h.Ready {
				t.Errorf("Health = %+v, want OK %v", h, tt.ok)
			}
			if srv.LastForm("token") != "" {
				t.Error("the probe sent a token")
			}
		})
	}
	t.Run("down", func(t *testing.T) {
		srv := idptest.New(t, idptest.Inactive())
		srv.Close()
		inst := newProvider(t, srv.URL, "", providers.Deps{})
		if h := inst.Provider.(providers.HealthChecker).Health(context.Background()); h.OK {
			t.Errorf("Health = %+v for a closed endpoint", h)
		}
	})
	t.Run("recent call stands in", func(t *testing.T) {
		srv := idptest.New(t, idptest.Active(map[string]any{"aud": "idbridge"}))
		inst := newProvider(t, srv.URL, "", providers.Deps{})
		if _, err := authenticate(t, inst, testToken); err != nil {
			t.Fatal(err)
		}
		if h := inst.Provider.(providers.HealthChecker).Health(context.Background()); !h.OK || srv.Hits() != 1 {
			t.Errorf("Health = %+v, hits %d; want OK from the last call without a probe", h, srv.Hits())
		}
	})
}

func withActive(m map[string]any) map[string]any {
	out := map[string]any{"active": true}
	for k, v := range m {
		out[k] = v
	}
	return out
}
