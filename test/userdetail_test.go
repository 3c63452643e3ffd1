package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idbridge/idbridge/demoissuer"
)

// jwtConfig is a bridge config with one jwt provider in front of issuer.
func jwtConfig(issuer string, extra string) string {
	return fmt.Sprintf(`
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  realm: corp
log: {level: debug, format: json}
providers:
  - name: corp
    type: jwt
    issuer: %s
    audiences: [idbridge]
    algorithms: [RS256, ES256, EdDSA]
    required_scopes: [travel]
%s
mapping:
  email:
    - path: email
      when: {path: email_verified, equals: true}
  allowed_domains: [example.com]
`, issuer, extra)
}

func newIssuer(t *testing.T, opts ...demoissuer.Option) *demoissuer.Issuer {
	t.Helper()
	is, err := demoissuer.NewIssuer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(is.Close)
	return is
}

func mint(t *testing.T, is *demoissuer.Issuer, claims map[string]any, opts ...demoissuer.MintOption) string {
	t.Helper()
	base := map[string]any{"sub": "u-alice", "aud": "idbridge", "scope": "openid travel", "email": "alice@example.com", "email_verified": true}
	for k, v := range claims {
		if v == nil {
			delete(base, k)
			continue
		}
		base[k] = v
	}
	tok, err := is.Mint(base, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestUserDetailErrorTable(t *testing.T) {
	is := newIssuer(t, demoissuer.WithAlgorithms("RS256", "ES256", "EdDSA"))
	other := newIssuer(t)
	br := startBridge(t, jwtConfig(is.URL(), ""))
	url := br.URL + "/v1/user-detail"
	now := time.Now()

	must := func(tok string, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	valid := mint(t, is, nil)
	tampered := must(is.Tamper(valid, map[string]any{"email": "mallory@example.com"}))

	type tc struct {
		name       string
		headers    []string
		status     int
		wwwAuth    string // regexp the WWW-Authenticate header must match ("" = must be absent)
		errCode    string
		body       string
		retryAfter bool
	}
	cases := []tc{
		{name: "RS256 accepted", headers: []string{bearer(valid)}, status: 200, body: `{"user":{"email":"alice@example.com"}}`},
		{name: "ES256 accepted", headers: []string{bearer(mint(t, is, nil, demoissuer.WithAlg("ES256")))}, status: 200, body: `{"user":{"email":"alice@example.com"}}`},
		{name: "EdDSA accepted", headers: []string{bearer(mint(t, is, nil, demoissuer.WithAlg("EdDSA")))}, status: 200, body: `{"user":{"email":"alice@example.com"}}`},
		{name: "no Authorization header", status: 401, wwwAuth: `^Bearer realm="corp"$`},
		{name: "malformed header", headers: []string{"Authorization: Basic YTpi"}, status: 400, wwwAuth: `error="invalid_request"`, errCode: "invalid_request"},
		{name: "bearer without token", headers: []string{"Authorization: Bearer "}, status: 400, wwwAuth: `error="invalid_request"`, errCode: "invalid_request"},
		{name: "expired", headers: []string{bearer(mint(t, is, map[string]any{"exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix()}))}, status: 401, wwwAuth: `error="invalid_token", error_description="the access token has expired"`, errCode: "invalid_token"},
		{name: "not yet valid", headers: []string{bearer(mint(t, is, map[string]any{"nbf": now.Add(time.Hour).Unix()}))}, status: 401, wwwAuth: `error="invalid_token"`, errCode: "invalid_token"},
		{name: "wrong issuer", headers: []string{bearer(mint(t, other, nil))}, status: 401, wwwAuth: `error="invalid_token"`, errCode: "invalid_token"},
		{name: "wrong audience", headers: []string{bearer(mint(t, is, map[string]any{"aud": "someone-else"}))}, status: 401, wwwAuth: `error="invalid_token"`, errCode: "invalid_token"},
		{name: "unknown key", headers: []string{bearer(mint(t, is, nil, demoissuer.WithKID("no-such-key")))}, status: 401, wwwAuth: `error="invalid_token"`, errCode: "invalid_token"},
		{name: "alg none", headers: []string{bearer(must(is.MintNone(map[string]any{"aud": "idbridge", "scope": "travel", "email": "alice@example.com", "email_verified": true})))}, status: 401, wwwAuth: `error="invalid_token"`, errCode: "invalid_token"},
		{name: "HS256 signed with the RSA public key (PEM)", headers: []string{bearer(must(is.MintHMACWithPublicKey(map[string]any{"aud": "idbridge", "scope": "travel", "email": "alice@example.com", "email_verified": true}, demoissuer.FormPEM)))}, status: 401, wwwAuth: `error="invalid_token"`, errCode: "invalid_token"},
		{name: "HS256 signed with the RSA public key (DER)", headers: []string{bearer(must(is.MintHMACWithPublicKey(map[string]any{"aud": "idbridge", "scope": "travel", "email": "alice@example.com", "email_verified": true}, demoissuer.FormDER)))}, status: 401, wwwAuth: `error="invalid_token"`, errCode: "invalid_token"},
		{name: "tampered payload", headers: []string{bearer(tampered)}, status: 401, wwwAuth: `error="invalid_token"`, errCode: "invalid_token"},
		{name: "opaque token nobody handles", headers: []string{bearer("2YotnFZFEjr1zCsicMWpAA")}, status: 401, wwwAuth: `error="invalid_token"`, errCode: "invalid_token"},
		{name: "missing scope", headers: []string{bearer(mint(t, is, map[string]any{"scope": "openid"}))}, status: 403, wwwAuth: `error="insufficient_scope", scope="travel"`, errCode: "insufficient_scope"},
		{name: "unverified email", headers: []string{bearer(mint(t, is, map[string]any{"email_verified": false}))}, status: 403, errCode: "access_denied"},
		{name: "no email at all", headers: []string{bearer(mint(t, is, map[string]any{"email": nil}))}, status: 403, errCode: "access_denied"},
		{name: "domain not allowed", headers: []string{bearer(mint(t, is, map[string]any{"email": "eve@evil.example"}))}, status: 403, errCode: "access_denied"},
		{name: "display name refused", headers: []string{bearer(mint(t, is, map[string]any{"email": "Alice <alice@example.com>"}))}, status: 403, errCode: "access_denied"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, "GET", url, nil, c.headers...)
			if r.Status != c.status {
				t.Fatalf("status %d, want %d; body %s", r.Status, c.status, r.Body)
			}
			if got := r.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", got)
			}
			if r.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			www := r.Header.Get("WWW-Authenticate")
			if c.wwwAuth == "" && www != "" && c.status != 401 {
				t.Errorf("unexpected WWW-Authenticate %q", www)
			}
			if c.wwwAuth != "" && !regexp.MustCompile(c.wwwAuth).MatchString(www) {
				t.Errorf("WWW-Authenticate %q does not match %q", www, c.wwwAuth)
			}
			if c.body != "" && strings.TrimSpace(r.Body) != c.body {
				t.Errorf("body %q, want %q", r.Body, c.body)
			}
			if c.errCode != "" {
				if got := r.JSON(t)["error"]; got != c.errCode {
					t.Errorf("error %v, want %s", got, c.errCode)
				}
			}
		})
	}
	t.Run("request id is echoed when plain", func(t *testing.T) {
		r := do(t, "GET", url, nil, bearer(valid), "X-Request-Id: abc-123")
		if r.Header.Get("X-Request-Id") != "abc-123" {
			t.Fatalf("X-Request-Id %q", r.Header.Get("X-Request-Id"))
		}
		r = do(t, "GET", url, nil, bearer(valid), "X-Request-Id: evil\"id")
		if r.Header.Get("X-Request-Id") == `evil"id` {
			t.Fatal("an unsafe request id was echoed")
		}
	})
	t.Run("oversized header", func(t *testing.T) {
		r := do(t, "GET", url, nil, "Authorization: Bearer "+strings.Repeat("a", 20000))
		if r.Status != 431 && r.Status != 400 {
			t.Fatalf("status %d for a 20 kB header, want 431 or 400", r.Status)
		}
	})
	t.Run("healthz on the admin listener only", func(t *testing.T) {
		if r := do(t, "GET", br.Admin+"/healthz", nil); r.Status != 200 {
			t.Fatalf("admin /healthz %d", r.Status)
		}
		if r := do(t, "GET", br.URL+"/healthz", nil); r.Status != 404 {
			t.Fatalf("main /healthz %d, want 404", r.Status)
		}
	})

	// Every token used above, and the parts that identify it, must be absent from the logs.
	t.Run("no token in the logs", func(t *testing.T) {
		logs := br.Logs()
		for _, tok := range []string{valid, tampered} {
			parts := strings.Split(tok, ".")
			for _, p := range append(parts[1:], tok) {
				if strings.Contains(logs, p) {
					t.Fatalf("the logs contain a token or its payload/signature")
				}
			}
		}
		if !strings.Contains(logs, `"token_fp"`) {
			t.Fatal("request log lines carry no token fingerprint")
		}
	})
	if err := br.stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

func TestKeyRotationAndOutages(t *testing.T) {
	t.Run("rotation is picked up without a restart", func(t *testing.T) {
		is := newIssuer(t)
		br := startBridge(t, jwtConfig(is.URL(), ""))
		if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, is, nil))); r.Status != 200 {
			t.Fatalf("before rotation: %d %s", r.Status, r.Body)
		}
		if _, err := is.Rotate("RS256", true); err != nil {
			t.Fatal(err)
		}
		if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, is, nil))); r.Status != 200 {
			t.Fatalf("after rotation: %d %s", r.Status, r.Body)
		}
	})
	t.Run("unknown kid flood fetches at most once, bad signatures never", func(t *testing.T) {
		is := newIssuer(t)
		br := startBridge(t, jwtConfig(is.URL(), ""))
		valid := mint(t, is, nil)
		do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(valid))
		before, start := is.JWKSFetches(), time.Now()
		var wg sync.WaitGroup
		for i := 0; i < 200; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				tok := mint(t, is, map[string]any{"jti": fmt.Sprint(i)}, demoissuer.WithKID(fmt.Sprintf("kid-%d", i)))
				if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(tok)); r.Status != 401 {
					t.Errorf("unknown kid: %d", r.Status)
				}
			}(i)
		}
		wg.Wait()
		// A request that arrives after a refresh waits for the next permitted one (so
		// that a key published since is found): at most one fetch per 10 s interval.
		if n, slots := is.JWKSFetches()-before, int64(time.Since(start)/(10*time.Second))+1; n > slots {
			t.Fatalf("%d JWKS fetches for a flood of unknown kids in %v, want at most %d", n, time.Since(start), slots)
		}
		before = is.JWKSFetches()
		parts := strings.Split(valid, ".")
		for i := 0; i < 200; i++ {
			sig := []byte(parts[2])
			sig[i%len(sig)] ^= 1
			if sig[i%len(sig)] == '.' || sig[i%len(sig)] == 1 {
				continue
			}
			tok := parts[0] + "." + parts[1] + "." + string(sig)
			if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(tok)); r.Status != 401 && r.Status != 400 {
				t.Fatalf("bad signature: %d", r.Status)
			}
		}
		if n := is.JWKSFetches() - before; n != 0 {
			t.Fatalf("%d JWKS fetches for bad signatures under a known kid, want 0", n)
		}
	})
	t.Run("IdP down after start: cached keys keep serving", func(t *testing.T) {
		is := newIssuer(t)
		br := startBridge(t, jwtConfig(is.URL(), ""))
		do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, is, nil)))
		is.SetDown(true)
		if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, is, map[string]any{"jti": "new"}))); r.Status != 200 {
			t.Fatalf("with the IdP down: %d %s", r.Status, r.Body)
		}
	})
	t.Run("IdP down at start: 503, not 401, and not ready", func(t *testing.T) {
		is := newIssuer(t)
		is.SetDown(true)
		br := startBridge(t, jwtConfig(is.URL(), ""))
		r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, is, nil)))
		if r.Status != 503 || r.Header.Get("Retry-After") == "" || r.JSON(t)["error"] != "temporarily_unavailable" {
			t.Fatalf("got %d %v %s, want 503 with Retry-After", r.Status, r.Header, r.Body)
		}
		if r := do(t, "GET", br.Admin+"/readyz", nil); r.Status != 503 {
			t.Fatalf("readyz %d with no keys ever loaded, want 503", r.Status)
		}
	})
}

func TestCLI(t *testing.T) {
	is := newIssuer(t)
	cfg := writeConfig(t, jwtConfig(is.URL(), `
  - name: second
    type: jwt
    issuer: https://second.example.com
    audiences: [idbridge]
    jwks_uri: https://second.example.com/jwks
    mapping:
      email:
        - path: upn
          transforms: [trim, lower]
`))
	t.Run("version", func(t *testing.T) {
		code, out, _ := runCLI(t, "", "version")
		if code != 0 || !strings.HasPrefix(out, "idbridge ") {
			t.Fatalf("%d %q", code, out)
		}
	})
	t.Run("unknown command", func(t *testing.T) {
		if code, _, _ := runCLI(t, "", "frobnicate"); code != 2 {
			t.Fatalf("exit %d, want 2", code)
		}
	})
	t.Run("check ok", func(t *testing.T) {
		code, out, errOut := runCLI(t, "", "check", "--config", cfg)
		if code != 0 {
			t.Fatalf("exit %d: %s %s", code, out, errOut)
		}
	})
	t.Run("check reports every error with its line", func(t *testing.T) {
		bad := writeConfig(t, `server:
  listn: 127.0.0.1:8080
providers:
  - name: a
    type: jwt
    issuer: https://idp.example.com
    audiences: []
    algorithms: [HS256]
  - name: b
    type: nosuch
mapping:
  email:
    - template: "{{preferred_username@example.com"
`)
		code, _, errOut := runCLI(t, "", "check", "--config", bad)
		if code != 2 {
			t.Fatalf("exit %d, want 2", code)
		}
		for _, want := range []string{
			bad + ":2: server.listn:",
			bad + ":7: providers[0].audiences:",
			bad + ":8: providers[0].algorithms",
			bad + ":10: providers[1].type:",
			bad + ":13: mapping.email[0]",
		} {
			if !strings.Contains(errOut, want) {
				t.Errorf("missing %q in:\n%s", want, errOut)
			}
		}
	})
	t.Run("map with trace", func(t *testing.T) {
		code, out, errOut := runCLI(t, `{"email":"Alice@Example.com","email_verified":false,"upn":" Alice@Example.com "}`, "map", "--config", cfg, "--provider", "second", "--input", "-")
		if code != 0 || !strings.Contains(out, "email: alice@example.com") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		code, out, _ = runCLI(t, `{"email":"alice@example.com","email_verified":false}`, "map", "--config", cfg, "--input", "-")
		if code != 1 || !strings.Contains(out, "no email") {
			t.Fatalf("unverified email mapped: exit %d\n%s", code, out)
		}
	})
	t.Run("resolve prints provider, document, trace, email, never the token", func(t *testing.T) {
		tok := mint(t, is, nil)
		code, out, errOut := runCLI(t, tok+"\n", "resolve", "--config", cfg, "--token", "-")
		if code != 0 || !strings.Contains(out, "provider: corp") || !strings.Contains(out, "email: alice@example.com") || !strings.Contains(out, `"email_verified": true`) {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		if strings.Contains(out+errOut, tok) || strings.Contains(out+errOut, strings.Split(tok, ".")[2]) {
			t.Fatal("resolve printed the token")
		}
		code, out, _ = runCLI(t, "garbage", "resolve", "--config", cfg, "--token", "-")
		if code != 1 || !strings.Contains(out, "invalid token") {
			t.Fatalf("garbage: exit %d\n%s", code, out)
		}
	})
}

// TestExamplesPassCheck runs `idbridge check` on every file in configs/examples, with
// the environment variables and secret files they reference supplied.
func TestExamplesPassCheck(t *testing.T) {
	files, _ := filepath.Glob("../configs/examples/*.yaml")
	if len(files) == 0 {
		t.Fatal("no examples found")
	}
	envRef := regexp.MustCompile(`\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}`)
	fileRef := regexp.MustCompile(`\$\{file:([^}]+)\}`)
	caFileRef := regexp.MustCompile(`ca_file: (/[^\s#]+)`)
	const dummy = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			var env []string
			for _, m := range envRef.FindAllStringSubmatch(string(data), -1) {
				env = append(env, m[1]+"="+dummy)
			}
			for _, m := range fileRef.FindAllStringSubmatch(string(data), -1) {
				rel := m[1]
				if filepath.IsAbs(rel) {
					// An absolute secret path (/run/secrets/…) is moved under the test's
					// folder, as a container would mount it.
					rel = strings.TrimPrefix(rel, "/")
					data = []byte(strings.ReplaceAll(string(data), m[0], "${file:"+filepath.Join(dir, rel)+"}"))
				}
				p := filepath.Join(dir, rel)
				os.MkdirAll(filepath.Dir(p), 0o700)
				os.WriteFile(p, []byte(dummy+"\n"), 0o600)
			}
			// Absolute CA files (/etc/idbridge/…) are stood in by a real PEM in the
			// test's folder, since the directory code reads them at load.
			for _, m := range caFileRef.FindAllStringSubmatch(string(data), -1) {
				p := filepath.Join(dir, strings.TrimPrefix(m[1], "/"))
				os.MkdirAll(filepath.Dir(p), 0o700)
				os.WriteFile(p, testCAPEM(t), 0o600)
				data = []byte(strings.ReplaceAll(string(data), m[0], "ca_file: "+p))
			}
			cfg := filepath.Join(dir, filepath.Base(f))
			os.WriteFile(cfg, data, 0o600)
			cmd := []string{"check", "--config", cfg}
			code, out, errOut := runCLIEnv(t, env, cmd...)
			if code != 0 {
				t.Fatalf("check exit %d:\n%s%s", code, out, errOut)
			}
		})
	}
}

func runCLIEnv(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return runCLI(t, "", args...)
}

var _ = http.StatusOK

// testCAPEM returns a self-signed CA certificate in PEM.
func testCAPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "idbridge test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestResponseShape: response.email_field renames the email field and response.extra
// adds fields from the identity document, in a stable order; an absent path is left out.
func TestResponseShape(t *testing.T) {
	is := newIssuer(t)
	br := startBridge(t, fmt.Sprintf(`
server: {listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0"}
providers:
  - name: corp
    type: jwt
    issuer: %s
    audiences: [idbridge]
mapping:
  email: [{path: email}]
response:
  email_field: mail
  extra: {name: name, groups: groups, employee: employee_id, missing: no.such.path}
`, is.URL()))
	tok := mint(t, is, map[string]any{"name": "Alice \"A\" <Example>", "groups": []string{"travel", "staff"}, "employee_id": 1001})
	r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(tok))
	if r.Status != 200 {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	var got map[string]map[string]any
	if err := json.Unmarshal([]byte(r.Body), &got); err != nil {
		t.Fatalf("not JSON: %s", r.Body)
	}
	want := map[string]map[string]any{"user": {"mail": "alice@example.com", "employee": 1001.0,
		"groups": []any{"travel", "staff"}, "name": `Alice "A" <Example>`}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	// The email first, then the extra fields by name.
	body := r.Body
	if !(strings.Index(body, `"mail"`) < strings.Index(body, `"employee"`) &&
		strings.Index(body, `"employee"`) < strings.Index(body, `"groups"`) &&
		strings.Index(body, `"groups"`) < strings.Index(body, `"name"`)) {
		t.Fatalf("fields out of order: %s", body)
	}
}

// TestConfiguredPaths: user_detail_path moves the route; exchange_path "" turns the
// exchange route off even with a spotnana section.
func TestConfiguredPaths(t *testing.T) {
	is := newIssuer(t)
	br := startBridge(t, fmt.Sprintf(`
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  user_detail_path: /spotnana/user
  exchange_path: ""
providers:
  - name: corp
    type: jwt
    issuer: %s
    audiences: [idbridge]
mapping:
  email: [{path: email}]
spotnana:
  token_url: http://127.0.0.1:1/v2/auth/oauth2-token
  client_id: c
  client_secret: s
`, is.URL()))
	tok := mint(t, is, nil)
	if r := do(t, "GET", br.URL+"/spotnana/user", nil, bearer(tok)); r.Status != 200 {
		t.Fatalf("configured user-detail path: %d %s", r.Status, r.Body)
	}
	if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(tok)); r.Status != 404 {
		t.Fatalf("default path still served: %d", r.Status)
	}
	if r := do(t, "POST", br.URL+"/v1/token-exchange", nil, bearer(tok)); r.Status != 404 {
		t.Fatalf("disabled exchange route: %d %s", r.Status, r.Body)
	}
}
