package test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/idbridge/idbridge/demoissuer"
)

// idpHosts are the identity providers' hosts named in configs/examples; the example
// tests move each under a local fake, http://127.0.0.1:PORT/<host>/…, in the example
// and in the token alike.
var idpHosts = []string{
	"example.okta.com", "login.microsoftonline.com", "sts.windows.net", "adfs.example.com",
	"accounts.google.com", "www.googleapis.com", "example.us.auth0.com", "sso.example.com",
	"auth.pingone.com",
}

// fakeIdPs serves, for every issuer of an example, its discovery document, one JWKS for
// all (any other GET path), and a userinfo endpoint answering userinfo.
type fakeIdPs struct {
	is       *demoissuer.Issuer
	srv      *httptest.Server
	issuers  []string
	userinfo []byte
}

func newFakeIdPs(t *testing.T) *fakeIdPs {
	t.Helper()
	is, err := demoissuer.NewIssuer(demoissuer.WithoutServer())
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIdPs{is: is}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := f.srv.URL
		switch {
		case strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration"):
			prefix := base + strings.TrimSuffix(r.URL.Path, "/.well-known/openid-configuration")
			for _, iss := range f.issuers {
				if iss == prefix || iss == prefix+"/" {
					writeTestJSON(w, map[string]any{"issuer": iss, "jwks_uri": base + "/keys", "userinfo_endpoint": base + "/userinfo"})
					return
				}
			}
			http.NotFound(w, r)
		case r.URL.Path == "/userinfo":
			if f.userinfo == nil || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(f.userinfo)
		default:
			b, _ := is.JWKS()
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// local moves every IdP host named in text under the fake.
func (f *fakeIdPs) local(text string) string {
	for _, h := range idpHosts {
		text = regexp.MustCompile(`https?://`+regexp.QuoteMeta(h)+`\b`).ReplaceAllString(text, f.srv.URL+"/"+h)
	}
	return text
}

// exampleConfig is configs/examples/name made runnable here: listeners on free loopback
// ports, the cache in memory, no Spotnana section, the IdPs under the fake, and edit
// applied to the YAML tree.
func (f *fakeIdPs) exampleConfig(t *testing.T, name string, edit func(doc map[string]any)) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "configs", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	doc["server"] = map[string]any{"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0"}
	doc["log"] = map[string]any{"level": "debug", "format": "json"}
	delete(doc, "cache")
	delete(doc, "spotnana")
	if edit != nil {
		edit(doc)
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	text := f.local(string(out))
	f.issuers = f.issuers[:0]
	for _, m := range regexp.MustCompile(`(?m)^\s+issuer: (\S+)$`).FindAllStringSubmatch(text, -1) {
		f.issuers = append(f.issuers, strings.Trim(m[1], `"'`))
	}
	return text
}

// token signs a claim set of test/testdata/idp, dated now, under the fake's key.
func (f *fakeIdPs) token(t *testing.T, file string, edit map[string]any) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "idp", file))
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal([]byte(f.local(string(data))), &claims); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	for _, k := range []string{"iat", "nbf", "auth_time"} {
		if _, ok := claims[k].(float64); ok {
			claims[k] = now
		}
	}
	claims["exp"] = now + 3600
	for k, v := range edit {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	tok, err := f.is.Mint(claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// providerSection returns the YAML map of the example's provider named name.
func providerSection(t *testing.T, doc map[string]any, name string) map[string]any {
	t.Helper()
	for _, p := range doc["providers"].([]any) {
		if m := p.(map[string]any); m["name"] == name {
			return m
		}
	}
	t.Fatalf("no provider %s", name)
	return nil
}

type exampleCase struct {
	name   string
	file   string         // claim set under test/testdata/idp
	edit   map[string]any // claims changed (nil value: removed)
	status int
	email  string // for 200
}

// TestProviderExamples runs each provider example of configs/examples through the real
// binary, with tokens shaped as each IdP documents them: the right email for a real
// token, and each known trap refused.
func TestProviderExamples(t *testing.T) {
	examples := []struct {
		file   string
		okta   bool
		cases  []exampleCase
		config func(doc map[string]any)
	}{
		{file: "okta.yaml", okta: true, cases: []exampleCase{
			{"custom authorization server token, email from userinfo (sub is uid there)", "okta/access-token.json", nil, 200, "alice@example.com"},
			{"a verified email custom claim", "okta/access-token.json", map[string]any{"email": "alice@example.com", "email_verified": true}, 200, "alice@example.com"},
			{"trap: org authorization server token", "okta/org-access-token.json", nil, 401, ""},
			{"trap: another application's token (cid)", "okta/access-token.json", map[string]any{"cid": "0oaOTHERAPP"}, 401, ""},
			{"trap: no uid to compare with userinfo's sub", "okta/access-token.json", map[string]any{"uid": nil}, 403, ""},
		}},
		{file: "entra-id.yaml", cases: []exampleCase{
			{"v2 access token", "entra/v2-access-token.json", nil, 200, "alice@example.com"},
			{"v2 access token without upn", "entra/v2-access-token.json", map[string]any{"upn": nil}, 200, "alice@example.com"},
			{"v1 access token (appid, sts.windows.net)", "entra/v1-access-token.json", nil, 200, "alice@example.com"},
			{"trap: unverified email claim", "entra/trap-unverified-email.json", nil, 403, ""},
			{"trap: guest #EXT# UPN", "entra/trap-guest-ext-upn.json", nil, 403, ""},
			{"trap: ID token sent as an access token", "entra/v2-id-token.json", nil, 401, ""},
			{"trap: another tenant", "entra/v2-access-token.json", map[string]any{"tid": "99999999-9999-9999-9999-999999999999"}, 401, ""},
		}},
		{file: "adfs.yaml", cases: []exampleCase{
			{"access token", "adfs/access-token.json", nil, 200, "alice@example.com"},
			{"internal UPN suffix rewritten", "adfs/access-token.json", map[string]any{"upn": "Alice@Example.local"}, 200, "alice@example.com"},
			{"trap: only unique_name (DOMAIN\\user)", "adfs/trap-no-upn.json", nil, 403, ""},
		}},
		{file: "google-workspace.yaml", cases: []exampleCase{
			{"ID token", "google/id-token.json", nil, 200, "alice@example.com"},
			{"ID token with iss accounts.google.com", "google/id-token-iss-without-scheme.json", nil, 200, "alice@example.com"},
			{"trap: no email_verified", "google/trap-no-email-verified.json", nil, 403, ""},
			{"trap: consumer account (no hd)", "google/trap-consumer-account.json", nil, 401, ""},
		}},
		{file: "auth0.yaml", cases: []exampleCase{
			{"access token with namespaced claims", "auth0/access-token.json", nil, 200, "alice@example.com"},
			{"trap: claim without its namespace", "auth0/trap-claim-without-namespace.json", nil, 403, ""},
		}},
		{file: "keycloak.yaml", cases: []exampleCase{
			{"access token of a realm-role member", "keycloak/access-token.json", nil, 200, "alice@example.com"},
			{"trap: email not verified", "keycloak/trap-email-not-verified.json", nil, 401, ""},
			{"trap: without the realm role", "keycloak/trap-without-role.json", nil, 403, ""},
			{"trap: default audience (account)", "keycloak/trap-default-audience.json", nil, 401, ""},
		}},
		{file: "ping.yaml", cases: []exampleCase{
			{"PingOne access token", "ping/pingone-access-token.json", nil, 200, "alice@example.com"},
			{"PingFederate access token (scope array)", "ping/pingfederate-access-token.json", nil, 200, "alice@example.com"},
			{"trap: PingFederate without mail", "ping/trap-pingfederate-username-only.json", nil, 403, ""},
			{"trap: PingOne email not verified", "ping/pingone-access-token.json", map[string]any{"email_verified": false}, 403, ""},
		}},
	}
	for _, ex := range examples {
		t.Run(ex.file, func(t *testing.T) {
			t.Parallel()
			f := newFakeIdPs(t)
			if ex.okta {
				ui, err := os.ReadFile(filepath.Join("testdata", "idp", "okta", "userinfo.json"))
				if err != nil {
					t.Fatal(err)
				}
				f.userinfo = ui
			}
			br := startBridge(t, f.exampleConfig(t, ex.file, ex.config))
			for _, c := range ex.cases {
				r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(f.token(t, c.file, c.edit)))
				if r.Status != c.status {
					t.Errorf("%s: %d, want %d: %s", c.name, r.Status, c.status, r.Body)
					continue
				}
				if c.status == 200 {
					var body struct {
						User struct {
							Email string `json:"email"`
						} `json:"user"`
					}
					json.Unmarshal([]byte(r.Body), &body)
					if body.User.Email != c.email {
						t.Errorf("%s: email %q, want %q", c.name, body.User.Email, c.email)
					}
				}
			}
		})
	}
}

// Case 4: Okta's userinfo answers sub = the user id while the access token's sub is the
// login, so the userinfo step must compare with uid (subject_claim). Without it every
// Okta user is refused; and a document without the subject claim is refused, never
// waved through.
func TestOktaUserinfoSubjectClaim(t *testing.T) {
	f := newFakeIdPs(t)
	ui, err := os.ReadFile(filepath.Join("testdata", "idp", "okta", "userinfo.json"))
	if err != nil {
		t.Fatal(err)
	}
	f.userinfo = ui
	withoutSubjectClaim := f.exampleConfig(t, "okta.yaml", func(doc map[string]any) {
		delete(providerSection(t, doc, "okta")["userinfo"].(map[string]any), "subject_claim")
	})
	br := startBridge(t, withoutSubjectClaim)
	if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(f.token(t, "okta/access-token.json", nil))); r.Status != 403 {
		t.Fatalf("sub (the login) compared with userinfo's sub (the user id): %d %s", r.Status, r.Body)
	}
	// With sub absent from the document, the default subject_claim has nothing to
	// compare: refused, not skipped.
	if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(f.token(t, "okta/access-token.json", map[string]any{"sub": nil}))); r.Status != 403 {
		t.Fatalf("no sub in the document: %d %s", r.Status, r.Body)
	}
	br2 := startBridge(t, f.exampleConfig(t, "okta.yaml", nil))
	if r := do(t, "GET", br2.URL+"/v1/user-detail", nil, bearer(f.token(t, "okta/access-token.json", nil))); r.Status != 200 {
		t.Fatalf("subject_claim: uid: %d %s", r.Status, r.Body)
	}
}
