package spotnana

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/idbridge/idbridge/configs"
)

const (
	sbID     = "sb-client"
	sbSecret = "sb-secret"
)

// userDetail is a fake company user-detail endpoint: token → email.
func userDetail(t *testing.T, tokens map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		email, known := tokens[tok]
		if !ok || !known {
			w.Header().Set("WWW-Authenticate", `Bearer realm="idbridge", error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"user": map[string]string{"email": email}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func exchangeForm(subject string) url.Values {
	return url.Values{
		"grant_type":         {GrantTokenExchange},
		"client_id":          {sbID},
		"client_secret":      {sbSecret},
		"subject_token":      {subject},
		"subject_token_type": {TokenTypeAccessToken},
		"scope":              {"openid"},
	}
}

func post(t *testing.T, h http.Handler, ctype, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, SandboxTokenPath, strings.NewReader(body))
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestSandboxRejections(t *testing.T) {
	ud := userDetail(t, map[string]string{"good": "alice@example.com", "stranger": "eve@example.com"})
	sb := NewSandbox(SandboxConfig{ClientID: sbID, ClientSecret: sbSecret, Users: []string{"Alice@Example.com"}, UserDetailURL: ud.URL})
	const form = "application/x-www-form-urlencoded"
	with := func(k, v string) string {
		f := exchangeForm("good")
		if v == "\x00" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f.Encode()
	}
	for _, tc := range []struct {
		name   string
		method string
		ctype  string
		body   string
		status int
		code   string
	}{
		{name: "JSON content type", ctype: "application/json", body: `{"grant_type":"x"}`, status: 400, code: CodeValidationFailed},
		{name: "no content type", body: with("x", "y"), status: 400, code: CodeValidationFailed},
		{name: "GET", method: http.MethodGet, ctype: form, status: 405, code: CodeValidationFailed},
		{name: "missing grant_type", ctype: form, body: with("grant_type", "\x00"), status: 400, code: CodeValidationFailed},
		{name: "unknown grant_type", ctype: form, body: with("grant_type", "password"), status: 400, code: CodeValidationFailed},
		{name: "refresh_token grant undocumented", ctype: form, body: with("grant_type", "refresh_token"), status: 400, code: CodeValidationFailed},
		{name: "wrong client secret", ctype: form, body: with("client_secret", "nope"), status: 401, code: CodeNotAuthenticated},
		{name: "wrong client id", ctype: form, body: with("client_id", "other"), status: 401, code: CodeNotAuthenticated},
		{name: "missing client secret", ctype: form, body: with("client_secret", "\x00"), status: 401, code: CodeNotAuthenticated},
		{name: "wrong subject_token_type", ctype: form, body: with("subject_token_type", "urn:ietf:params:oauth:token-type:id_token"), status: 400, code: CodeValidationFailed},
		{name: "missing subject_token_type", ctype: form, body: with("subject_token_type", "\x00"), status: 400, code: CodeValidationFailed},
		{name: "missing subject_token", ctype: form, body: with("subject_token", "\x00"), status: 400, code: CodeValidationFailed},
		{name: "scope other than openid", ctype: form, body: with("scope", "openid profile"), status: 400, code: CodeValidationFailed},
		{name: "missing scope", ctype: form, body: with("scope", "\x00"), status: 400, code: CodeValidationFailed},
		{name: "repeated parameter", ctype: form, body: with("scope", "openid") + "&scope=openid", status: 400, code: CodeValidationFailed},
		{name: "user-detail rejects the token", ctype: form, body: with("subject_token", "forged"), status: 401, code: CodeNotAuthenticated},
		{name: "email without a profile", ctype: form, body: with("subject_token", "stranger"), status: 403, code: CodeUserNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.method
			if m == "" {
				m = http.MethodPost
			}
			r := httptest.NewRequest(m, SandboxTokenPath, strings.NewReader(tc.body))
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			w := httptest.NewRecorder()
			sb.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Errorf("status = %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			var shape struct {
				DebugIdentifier string `json:"debugIdentifier"`
				ErrorMessages   []struct {
					ErrorCode string `json:"errorCode"`
					Message   string `json:"message"`
				} `json:"errorMessages"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &shape); err != nil || shape.DebugIdentifier == "" ||
				len(shape.ErrorMessages) != 1 || shape.ErrorMessages[0].Message == "" {
				t.Fatalf("not Spotnana's error shape: %s", w.Body)
			}
			if got := ParseErrorBody(w.Code, w.Body.Bytes()).Code; got != tc.code {
				t.Errorf("code = %s, want %s", got, tc.code)
			}
		})
	}
}

// sandboxServer serves sb on loopback and returns a Client configured for it.
func sandboxServer(t *testing.T, sb *Sandbox, opts ...ClientOption) (*httptest.Server, *Client) {
	t.Helper()
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	cfg := &configs.Spotnana{TokenURL: srv.URL + SandboxTokenPath, ClientID: sbID, ClientSecret: sbSecret}
	c, err := NewClient(cfg, srv.Client(), nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func whoami(t *testing.T, srv *httptest.Server, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+SandboxWhoamiPath, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestSandboxCallbackFlow(t *testing.T) {
	ud := userDetail(t, map[string]string{"good": "alice@example.com"})
	sb := NewSandbox(SandboxConfig{ClientID: sbID, ClientSecret: sbSecret, Users: []string{"alice@example.com"}, UserDetailURL: ud.URL})
	srv, c := sandboxServer(t, sb)
	tr, err := c.Exchange(context.Background(), "good", "")
	if err != nil {
		t.Fatal(err)
	}
	if tr.TokenType != "Bearer" || tr.ExpiresIn != 3600 || tr.Scope != "openid" || tr.RefreshToken == "" || tr.IssuedTokenType != "" {
		t.Errorf("response = %+v", tr)
	}
	status, who := whoami(t, srv, tr.AccessToken)
	if status != 200 || who["email"] != "alice@example.com" || who["client_id"] != sbID {
		t.Errorf("whoami = %d %v", status, who)
	}
	if status, _ := whoami(t, srv, tr.AccessToken+"x"); status != 401 {
		t.Errorf("whoami with a tampered token = %d", status)
	}
	if sb.Requests() != 1 || sb.Issued() != 1 {
		t.Errorf("requests %d issued %d", sb.Requests(), sb.Issued())
	}

	t.Run("user-detail down is 502", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		sb := NewSandbox(SandboxConfig{ClientID: sbID, ClientSecret: sbSecret, Users: []string{"*"}, UserDetailURL: dead.URL})
		w := post(t, sb, "application/x-www-form-urlencoded", exchangeForm("good").Encode())
		if w.Code != 502 || ParseErrorBody(w.Code, w.Body.Bytes()).Code != CodeUserDetailUnavail {
			t.Errorf("%d %s", w.Code, w.Body)
		}
	})
	t.Run("user-detail timeout is 502", func(t *testing.T) {
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}))
		defer slow.Close()
		sb := NewSandbox(SandboxConfig{ClientID: sbID, ClientSecret: sbSecret, Users: []string{"*"}, UserDetailURL: slow.URL, CallbackTimeout: 50 * time.Millisecond})
		w := post(t, sb, "application/x-www-form-urlencoded", exchangeForm("good").Encode())
		if w.Code != 502 {
			t.Errorf("%d %s", w.Code, w.Body)
		}
	})
}

func TestSandboxJWKSFlow(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := testKey(dir, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	ks, err := NewKeyStore(&configs.Assertion{KeysDir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	jwksSrv := httptest.NewServer(ks.Handler())
	defer jwksSrv.Close()
	const iss = "https://idbridge.test"
	sb := NewSandbox(SandboxConfig{ClientID: sbID, ClientSecret: sbSecret, Users: []string{"alice@example.com"},
		JWKSURL: jwksSrv.URL, Issuer: iss})
	if sb.Mode() != SandboxModeJWKS {
		t.Fatalf("mode = %s", sb.Mode())
	}
	_, c := sandboxServer(t, sb)

	// A foreign RSA key, and an HMAC key: neither may pass.
	foreignRaw, _ := rsa.GenerateKey(rand.Reader, 2048)
	foreign, _ := jwk.Import(foreignRaw)
	_ = foreign.Set(jwk.KeyIDKey, ks.SigningKID()) // even claiming our kid
	hs, _ := jwk.Import([]byte(strings.Repeat("k", 32)))
	_ = hs.Set(jwk.KeyIDKey, ks.SigningKID())
	forge := func(alg jwa.SignatureAlgorithm, key jwk.Key, email string) string {
		now := time.Now()
		tok, _ := jwt.NewBuilder().Issuer(iss).Subject("u").Audience([]string{"spotnana"}).IssuedAt(now).
			Expiration(now.Add(time.Minute)).Claim("email", email).Build()
		b, err := jwt.Sign(tok, jwt.WithKey(alg, key))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	sign := func(c AssertionClaims) string {
		s, err := ks.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		name     string
		token    string
		wantCode string // "" for success
	}{
		{"signed by the key store", sign(AssertionClaims{Issuer: iss, Subject: "u1", Email: "alice@example.com"}), ""},
		{"unknown profile", sign(AssertionClaims{Issuer: iss, Subject: "u2", Email: "bob@example.com"}), CodeUserNotFound},
		{"wrong audience", sign(AssertionClaims{Issuer: iss, Subject: "u1", Email: "alice@example.com", Audience: "someone-else"}), CodeNotAuthenticated},
		{"wrong issuer", sign(AssertionClaims{Issuer: "https://evil.test", Subject: "u1", Email: "alice@example.com"}), CodeNotAuthenticated},
		{"expired", sign(AssertionClaims{Issuer: iss, Subject: "u1", Email: "alice@example.com", IssuedAt: time.Now().Add(-time.Hour)}), CodeNotAuthenticated},
		{"foreign key with our kid", forge(jwa.RS256(), foreign, "alice@example.com"), CodeNotAuthenticated},
		{"HS256", forge(jwa.HS256(), hs, "alice@example.com"), CodeNotAuthenticated},
		{"not a JWT", "opaque-token", CodeNotAuthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := c.Exchange(context.Background(), tc.token, "")
			if tc.wantCode == "" {
				if err != nil || tr.AccessToken == "" {
					t.Fatalf("err = %v", err)
				}
				return
			}
			var re *RefusedError
			if !errors.As(err, &re) || re.Code != tc.wantCode {
				t.Errorf("err = %v, want code %s", err, tc.wantCode)
			}
		})
	}

	t.Run("a rotated-in key is fetched on its unknown kid", func(t *testing.T) {
		k2, _, err := testKey(dir, time.Now().Add(-time.Hour+time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := ks.Reload(); err != nil {
			t.Fatal(err)
		}
		if ks.SigningKID() != k2 {
			t.Fatalf("the newer, old-enough key should sign")
		}
		if _, err := c.Exchange(context.Background(), sign(AssertionClaims{Issuer: iss, Subject: "u1", Email: "alice@example.com"}), ""); err != nil {
			t.Errorf("err = %v", err)
		}
	})
}

func TestSandboxFaultInjection(t *testing.T) {
	ud := userDetail(t, map[string]string{"good": "alice@example.com"})
	t.Run("burst of 429 then success", func(t *testing.T) {
		sb := NewSandbox(SandboxConfig{ClientID: sbID, ClientSecret: sbSecret, Users: []string{"alice@example.com"},
			UserDetailURL: ud.URL, Burst429: 2, RetryAfter: 2 * time.Second})
		var sl sleeps
		_, c := sandboxServer(t, sb, WithSleep(sl.sleep))
		if _, err := c.Exchange(context.Background(), "good", ""); err != nil {
			t.Fatal(err)
		}
		if sb.Requests() != 3 || sb.Issued() != 1 {
			t.Errorf("requests %d issued %d", sb.Requests(), sb.Issued())
		}
		if got := sl.got(); !equalDurations(got, []time.Duration{2 * time.Second, 2 * time.Second}) {
			t.Errorf("waits = %v", got)
		}
	})
	t.Run("fail rate 1 is unavailable", func(t *testing.T) {
		sb := NewSandbox(SandboxConfig{ClientID: sbID, ClientSecret: sbSecret, Users: []string{"*"}, UserDetailURL: ud.URL, FailRate: 1})
		var sl sleeps
		_, c := sandboxServer(t, sb, WithSleep(sl.sleep))
		_, err := c.Exchange(context.Background(), "good", "")
		if !errors.Is(err, ErrUnavailable) || sb.Requests() != int64(DefaultMaxRetries+1) {
			t.Errorf("err = %v after %d requests", err, sb.Requests())
		}
	})
	t.Run("latency is added", func(t *testing.T) {
		sb := NewSandbox(SandboxConfig{ClientID: sbID, ClientSecret: sbSecret, Users: []string{"*"}, UserDetailURL: ud.URL, Latency: 80 * time.Millisecond})
		_, c := sandboxServer(t, sb)
		start := time.Now()
		if _, err := c.Exchange(context.Background(), "good", ""); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) < 80*time.Millisecond {
			t.Error("latency not applied")
		}
	})
}

func TestSandboxClientCredentials(t *testing.T) {
	sb := NewSandbox(SandboxConfig{ClientID: sbID, ClientSecret: sbSecret})
	srv := httptest.NewServer(sb)
	defer srv.Close()
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
	}{
		{"ok without scope", url.Values{"grant_type": {GrantClientCredentials}, "client_id": {sbID}, "client_secret": {sbSecret}}, 200},
		{"ok with openid", url.Values{"grant_type": {GrantClientCredentials}, "client_id": {sbID}, "client_secret": {sbSecret}, "scope": {"openid"}}, 200},
		{"bad secret", url.Values{"grant_type": {GrantClientCredentials}, "client_id": {sbID}, "client_secret": {"x"}}, 401},
		{"bad scope", url.Values{"grant_type": {GrantClientCredentials}, "client_id": {sbID}, "client_secret": {sbSecret}, "scope": {"admin"}}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := srv.Client().PostForm(srv.URL+SandboxTokenPath, tc.form)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d: %s", resp.StatusCode, body)
			}
			if tc.status != 200 {
				return
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q", cc)
			}
			tr, err := parseTokenResponse(body)
			if err != nil {
				t.Fatal(err)
			}
			if tr.RefreshToken != "" || tr.TokenType != "Bearer" || tr.ExpiresIn != 3600 {
				t.Errorf("response = %s", body)
			}
			status, who := whoami(t, srv, tr.AccessToken)
			if status != 200 || who["sub"] != sbID {
				t.Errorf("whoami = %d %v", status, who)
			}
		})
	}
}

func TestSandboxWhoamiAndHealth(t *testing.T) {
	sb := NewSandbox(SandboxConfig{ClientID: sbID, ClientSecret: sbSecret})
	for _, tc := range []struct {
		name, path, authz string
		status            int
		wwwAuth           string
	}{
		{"health", SandboxHealthPath, "", 200, ""},
		{"whoami without token", SandboxWhoamiPath, "", 401, `Bearer realm="spotnana-sandbox"`},
		{"whoami malformed", SandboxWhoamiPath, "Basic abc", 400, `Bearer realm="spotnana-sandbox", error="invalid_request"`},
		{"whoami junk token", SandboxWhoamiPath, "Bearer junk", 401, `Bearer realm="spotnana-sandbox", error="invalid_token"`},
		{"sandbox JWKS", SandboxJWKSPath, "", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tc.path, nil)
			if tc.authz != "" {
				r.Header.Set("Authorization", tc.authz)
			}
			w := httptest.NewRecorder()
			sb.ServeHTTP(w, r)
			if w.Code != tc.status || w.Header().Get("WWW-Authenticate") != tc.wwwAuth {
				t.Errorf("%d %q %s", w.Code, w.Header().Get("WWW-Authenticate"), w.Body)
			}
		})
	}
}

func TestSandboxFlags(t *testing.T) {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	cfg := SandboxFlags(fs)
	err := fs.Parse([]string{"-listen", "127.0.0.1:9999", "-client-id", "id", "-client-secret", "sec",
		"-users", "a@example.com, b@example.com", "-users", "c@example.com", "-jwks-url", "http://127.0.0.1:1/jwks",
		"-mode", "jwks", "-audience", "aud", "-fail-rate", "0.5", "-latency", "10ms", "-burst-429", "3", "-ttl", "30m"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9999" || cfg.ClientID != "id" || cfg.ClientSecret != "sec" || len(cfg.Users) != 3 ||
		cfg.Mode != "jwks" || cfg.Audience != "aud" || cfg.FailRate != 0.5 || cfg.Latency != 10*time.Millisecond ||
		cfg.Burst429 != 3 || cfg.TokenTTL != 30*time.Minute || cfg.JWKSURL == "" {
		t.Errorf("cfg = %+v", cfg)
	}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Usage == "" {
			t.Errorf("flag -%s has no help text", f.Name)
		}
	})
}

func TestSandboxFlagsChooseJWKSModeForALoneJWKSURL(t *testing.T) {
	for _, tc := range []struct {
		args []string
		mode string
	}{
		{nil, SandboxModeCallback},
		{[]string{"-jwks-url", "http://127.0.0.1:1/jwks"}, SandboxModeJWKS},
		{[]string{"-jwks-url", "http://127.0.0.1:1/jwks", "-user-detail-url", "http://127.0.0.1:1/u"}, SandboxModeCallback},
		{[]string{"-mode", "jwks", "-jwks-url", "http://127.0.0.1:1/jwks"}, SandboxModeJWKS},
	} {
		fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
		c := SandboxFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if got := NewSandbox(*c).Mode(); got != tc.mode {
			t.Errorf("%v: mode %s, want %s", tc.args, got, tc.mode)
		}
	}
}
