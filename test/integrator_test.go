package test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idbridge/idbridge/providers/ldap/ldaptest"
)

// startDemo runs `idbridge demo` (serving) on free ports and returns its output up to
// "Serving until Ctrl-C."; the demo is interrupted when the test ends.
func startDemo(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(binary, "demo", "--issuer-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0",
		"--admin-listen", "127.0.0.1:0", "--sandbox-listen", "127.0.0.1:0",
		"--app-listen", "127.0.0.1:0", "--embed-listen", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("demo after Ctrl-C: %v", err)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("demo did not stop on Ctrl-C")
		}
	})
	var b strings.Builder
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, out)
	}()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo ended early:\n%s", b.String())
			}
			b.WriteString(l + "\n")
			if l == "Serving until Ctrl-C." {
				go func() {
					for range lines {
					}
				}()
				return b.String()
			}
		case <-deadline:
			t.Fatalf("demo not serving after 30s:\n%s", b.String())
		}
	}
}

// TestDemoMint: the curl lines the demo prints mint bob, an expired token and custom
// claims at the demo issuer, and the bridge answers each as documented.
func TestDemoMint(t *testing.T) {
	out := startDemo(t)
	mint := regexp.MustCompile(`curl -s -X POST '(http://127\.0\.0\.1:\d+/mint)(\?ttl=-5m)?' -d '([^']+)'`).FindAllStringSubmatch(out, -1)
	detail := regexp.MustCompile(`curl -s -H "Authorization: Bearer \$\(cat bob\.token\)\" '([^']+)'`).FindStringSubmatch(out)
	if len(mint) != 3 || detail == nil {
		t.Fatalf("the demo does not print the three mint lines and the user-detail line:\n%s", out)
	}
	for i, want := range []struct {
		status int
		body   string
	}{
		{200, `{"user":{"email":"bob@example.com"}}`},
		{401, `error="invalid_token"`},
		{403, `access_denied`},
	} {
		resp, err := http.Post(mint[i][1]+mint[i][2], "application/json", strings.NewReader(mint[i][3]))
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("mint %s: %d %s", mint[i][3], resp.StatusCode, tok)
		}
		r := do(t, "GET", detail[1], nil, bearer(strings.TrimSpace(string(tok))))
		if r.Status != want.status || !strings.Contains(r.Body+r.Header.Get("WWW-Authenticate"), want.body) {
			t.Errorf("token %d (%s): %d %s %s; want %d %s", i, mint[i][3], r.Status, r.Header.Get("WWW-Authenticate"), r.Body, want.status, want.body)
		}
	}
}

// runCLIClean is runCLI with exactly env as the environment (nil: an empty one).
func runCLIClean(t *testing.T, env []string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{}, env...)
	cmd.Dir = ".."
	return runCmd(t, cmd, stdin)
}

// TestExamplesCheckWithoutSecrets: every shipped example passes `check` with an empty
// environment, as on a fresh clone; what cannot be resolved here is a warning naming
// it, and `check --strict` makes it an error.
func TestExamplesCheckWithoutSecrets(t *testing.T) {
	examples, err := filepath.Glob("../configs/examples/*.yaml")
	if err != nil || len(examples) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, ex := range examples {
		rel := strings.TrimPrefix(ex, "../")
		t.Run(filepath.Base(ex), func(t *testing.T) {
			code, out, errOut := runCLIClean(t, nil, "", "check", "--config", rel)
			if code != 0 || !strings.Contains(out, rel+": ok") {
				t.Fatalf("check %s with an empty environment: exit %d\n%s%s", rel, code, out, errOut)
			}
			data, _ := os.ReadFile(ex)
			if !strings.Contains(string(data), "${env:") && !strings.Contains(string(data), "${file:") {
				return
			}
			if !strings.Contains(errOut, "warning: ") || !strings.Contains(errOut, "check --strict and serve require it") {
				t.Errorf("no warning names the unresolved references:\n%s", errOut)
			}
			code, _, errOut = runCLIClean(t, nil, "", "check", "--strict", "--config", rel)
			if code != 2 || !regexp.MustCompile(`(environment variable \w+ is not set|cannot read \$\{file:)`).MatchString(errOut) {
				t.Errorf("check --strict %s: exit %d, want 2 naming the reference\n%s", rel, code, errOut)
			}
		})
	}
}

// TestMapNeedsOnlyTheMapping: `map` runs with no environment (no Spotnana credentials,
// no Redis password), takes a JWT (decoded, marked UNVERIFIED, never printed), and
// --suggest lists the email-like values with their paths, rules and traps.
func TestMapNeedsOnlyTheMapping(t *testing.T) {
	code, out, errOut := runCLIClean(t, nil, `{"upn":" Alice@Example.com ","email":"x@evil.example"}`,
		"map", "--config", "configs/examples/entra-id.yaml", "--input", "-")
	if code != 0 || !strings.Contains(out, "email: alice@example.com") {
		t.Fatalf("the README's map example: exit %d\n%s%s", code, out, errOut)
	}
	seg := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tok := seg(`{"alg":"RS256","kid":"k1"}`) + "." + seg(`{"sub":"bob","email":"bob@example.com","email_verified":false,"upn":"bob_x.com#EXT#@t.onmicrosoft.com","directory":{"mail":["Bob@Example.com"]}}`) + ".c2lnbmF0dXJl"
	code, out, errOut = runCLIClean(t, nil, tok+"\n", "map", "--suggest", "--input", "-")
	if code != 0 {
		t.Fatalf("map --suggest: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"UNVERIFIED",
		"directory.mail = \"Bob@Example.com\"\n    - path: directory.mail\n      transforms: [lower]\n",
		"TRAP: unverified: email_verified is false",
		"TRAP: an Entra ID guest UPN (#EXT#)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("map --suggest lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errOut, "c2lnbmF0dXJl") || strings.Contains(out+errOut, tok[:30]) {
		t.Errorf("map printed the token")
	}
	code, out, errOut = runCLIClean(t, nil, tok, "map", "--config", "configs/examples/okta.yaml", "--input", "-")
	if code != 1 || !strings.Contains(out, "UNVERIFIED") || !strings.Contains(out, "when email_verified equals true: false") {
		t.Errorf("map on a JWT with okta.yaml: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runCLIClean(t, nil, "not a document", "map", "--config", "configs/examples/okta.yaml", "--input", "-")
	if code != 2 || !strings.Contains(errOut, "not a JSON document nor a JWT") {
		t.Errorf("garbage input: exit %d %s", code, errOut)
	}
}

// TestDirectoryTest: `idbridge directory test` against a real slapd binds (StartTLS,
// with the TLS version and the server certificate), prints the filter built from sample
// claims with every value escaped, the entry and the mapping trace; a token file fills
// {{token_sha256}}; a wrong password and a wrong base_dn get plain words.
func TestDirectoryTest(t *testing.T) {
	srv := startSlapd(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("bind.secret", ldaptest.BindPassword+"\n")
	config := func(baseDN string) string {
		return write("idbridge.yaml", fmt.Sprintf(`
directories:
  corp:
    url: %s
    start_tls: true
    ca_file: %s
    bind_dn: %s
    bind_password: ${file:bind.secret}
    base_dn: %s
providers:
  - name: corp-jwt
    type: jwt
    issuer: https://idp.example.com
    audiences: [idbridge]
    lookup:
      directory: corp
      filter: "(&(objectClass=person)(uid={{sub}}))"
      attributes: [mail, uid, objectGUID, userPassword]
  - name: api-tokens
    type: ldap
    directory: corp
    filter: "(apiTokenHash={{token_sha256}})"
    attributes: [mail, uid]
mapping:
  email:
    - path: directory.mail
    - path: mail
spotnana:
  token_url: https://spotnana.example.com/token
  client_id: ${env:SPOTNANA_CLIENT_ID}
  client_secret: ${env:SPOTNANA_CLIENT_SECRET}
`, srv.URL(), srv.CAFile(), ldaptest.BindDN, baseDN))
	}
	cfg := config(ldaptest.PeopleDN)
	claims := write("claims.json", `{"sub":"al*","iss":"https://idp.example.com"}`)

	// No Spotnana credentials in the environment: the test needs only the directory's.
	code, out, errOut := runCLIClean(t, nil, "", "directory", "test", "--config", cfg, "--claims", claims)
	if code != 0 {
		t.Fatalf("directory test: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"directory corp (filter from providers[0].lookup)",
		"tls:         StartTLS, TLS 1.",
		"certificate: subject ",
		"bind:        ok as " + ldaptest.BindDN,
		`filter:      (&(objectClass=person)(uid=al\2a))`,
		"entry:       cn=Weird Star,ou=people,dc=example,dc=com",
		`"star@example.com"`,
		"candidate 0: path directory.mail",
		"email: star@example.com",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(strings.ToLower(out), "userpassword") || strings.Contains(out, ldaptest.BindPassword) {
		t.Errorf("a password in the output:\n%s", out)
	}
	t.Logf("directory test output:\n%s", out)

	tok := write("api.token", "alice-api-token\n")
	code, out, errOut = runCLIClean(t, nil, "", "directory", "test", "--config", cfg, "--provider", "api-tokens", "--token", tok)
	if code != 0 || !strings.Contains(out, "(apiTokenHash=") || !strings.Contains(out, "email: alice@example.com") || strings.Contains(out, "alice-api-token") {
		t.Errorf("directory test --token: exit %d\n%s%s", code, out, errOut)
	}

	write("bind.secret", "wrong\n")
	code, out, _ = runCLIClean(t, nil, "", "directory", "test", "--config", cfg, "--claims", claims)
	if code != 1 || !strings.Contains(out, "FAILED at bind") || !strings.Contains(out, "-> invalid credentials: check bind_dn and bind_password") {
		t.Errorf("wrong password: exit %d\n%s", code, out)
	}
	write("bind.secret", ldaptest.BindPassword+"\n")
	code, out, _ = runCLIClean(t, nil, "", "directory", "test", "--config", config("ou=nobody,dc=example,dc=com"), "--claims", claims)
	if code != 1 || !strings.Contains(out, "base_dn does not exist on this server") {
		t.Errorf("wrong base_dn: exit %d\n%s", code, out)
	}
	code, _, errOut = runCLIClean(t, nil, "", "directory", "test", "--config", cfg)
	if code != 2 || !strings.Contains(errOut, "--claims FILE and --token FILE") {
		t.Errorf("no claims: exit %d %s", code, errOut)
	}
}

// TestInit: every kind's starter config passes `check` with an empty environment; with
// --issuer pointing at the demo's issuer, the okta config reads its discovery document,
// passes check --strict once its two secrets exist, and serves the demo's tokens.
func TestInit(t *testing.T) {
	dir := t.TempDir()
	for _, kind := range []string{"okta", "entra", "adfs", "google", "auth0", "keycloak", "oidc", "ldap", "ad"} {
		out := filepath.Join(dir, kind+".yaml")
		code, stdout, errOut := runCLIClean(t, nil, "", "init", "--idp", kind, "--out", out)
		if code != 0 || !strings.Contains(stdout, "next: idbridge check --config "+out) {
			t.Fatalf("init --idp %s: exit %d\n%s%s", kind, code, stdout, errOut)
		}
		if code, stdout, errOut := runCLIClean(t, nil, "", "check", "--config", out); code != 0 {
			t.Errorf("check of init --idp %s: exit %d\n%s%s", kind, code, stdout, errOut)
		}
	}
	// Okta's userinfo answers sub = the user id, not the token's sub (the login): the
	// step must compare it with uid, or it refuses every Okta user.
	if data, _ := os.ReadFile(filepath.Join(dir, "okta.yaml")); !regexp.MustCompile(`(?m)^\s+userinfo:[^\n]*\n(\s+.*\n)*?\s+subject_claim: uid\n`).Match(data) {
		t.Errorf("init --idp okta: the userinfo step lacks subject_claim: uid\n%s", data)
	}
	if code, _, errOut := runCLIClean(t, nil, "", "init", "--idp", "okta", "--out", filepath.Join(dir, "okta.yaml")); code != 2 || !strings.Contains(errOut, "exists") {
		t.Errorf("init over an existing file: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCLIClean(t, nil, "", "init", "--idp", "ping"); code != 2 || !strings.Contains(errOut, "okta, entra, adfs") {
		t.Errorf("unknown kind: exit %d %s", code, errOut)
	}

	demo := startDemo(t)
	m := regexp.MustCompile(`demo issuer\s+(http://127\.0\.0\.1:\d+)`).FindStringSubmatch(demo)
	mint := regexp.MustCompile(`curl -s -X POST '(http://127\.0\.0\.1:\d+/mint)'`).FindStringSubmatch(demo)
	if m == nil || mint == nil {
		t.Fatalf("the demo's issuer and mint URL:\n%s", demo)
	}
	cfg := filepath.Join(dir, "demo-okta.yaml")
	code, stdout, errOut := runCLIClean(t, nil, "", "init", "--idp", "okta", "--issuer", m[1], "--out", cfg)
	if code != 0 || errOut != "" {
		t.Fatalf("init --issuer: exit %d\n%s%s", code, stdout, errOut)
	}
	data, _ := os.ReadFile(cfg)
	if !strings.Contains(string(data), "Read from the issuer's discovery document: jwks_uri "+m[1]) {
		t.Errorf("the discovery document was not used:\n%s", data)
	}
	// Where it runs: its two secrets exist, and the listeners are free ports.
	os.MkdirAll(filepath.Join(dir, "secrets"), 0o700)
	os.WriteFile(filepath.Join(dir, "secrets", "spotnana-client-secret"), []byte("s3cret\n"), 0o600)
	env := []string{"SPOTNANA_CLIENT_ID=idbridge-test"}
	if code, stdout, errOut := runCLIClean(t, env, "", "check", "--strict", "--config", cfg); code != 0 {
		t.Fatalf("check --strict: exit %d\n%s%s", code, stdout, errOut)
	}
	data = []byte(strings.NewReplacer("127.0.0.1:8080", "127.0.0.1:0", "127.0.0.1:9090", "127.0.0.1:0").Replace(string(data)))
	os.WriteFile(cfg, data, 0o600)
	br := startBridgeFile(t, cfg, env...)
	resp, err := http.Post(mint[1], "application/json", strings.NewReader(`{"sub":"bob","email":"bob@example.com","email_verified":true}`))
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(strings.TrimSpace(string(tok))))
	if r.Status != 200 || r.Body != `{"user":{"email":"bob@example.com"}}`+"\n" && r.Body != `{"user":{"email":"bob@example.com"}}` {
		t.Errorf("user-detail with the demo's token: %d %q", r.Status, r.Body)
	}

	// An unreachable issuer: the offline template, saying why.
	out := filepath.Join(dir, "offline.yaml")
	code, _, errOut = runCLIClean(t, nil, "", "init", "--idp", "keycloak", "--issuer", "http://127.0.0.1:1/realms/x", "--out", out)
	data, _ = os.ReadFile(out)
	if code != 0 || !strings.Contains(errOut, "offline template") || !strings.Contains(string(data), "could not be read from here") {
		t.Errorf("unreachable issuer: exit %d %s\n%s", code, errOut, data)
	}
}

// TestDemoServesThePlayground: the README's playground URL works on the demo's admin
// listener (loopback), as it does under serve.
func TestDemoServesThePlayground(t *testing.T) {
	out := startDemo(t)
	m := regexp.MustCompile(`bridge admin\s+(http://127\.0\.0\.1:\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the demo does not print its admin listener:\n%s", out)
	}
	resp, err := http.Get(m[1] + "/playground")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<html") {
		t.Fatalf("GET /playground on the demo's admin listener: %d\n%.300s", resp.StatusCode, body)
	}
	if !strings.Contains(out, m[1]+"/playground") {
		t.Errorf("the demo does not print the playground's URL:\n%s", out)
	}
}
