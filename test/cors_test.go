package test

import (
	"crypto/sha512"
	"encoding/base64"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// corsConfig is a bridge config whose server: section carries the given YAML lines.
func corsConfig(serverLines string) string {
	return `
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
` + serverLines + `
providers:
  - name: corp
    type: jwt
    issuer: https://idp.example.com
    audiences: [idbridge]
mapping:
  email: [{path: email}]
`
}

// TestCheckCORSOrigins: check refuses what a browser never sends as an origin, or what
// trusts every page, each with its line; it warns on plain http:// off localhost.
func TestCheckCORSOrigins(t *testing.T) {
	bad := writeConfig(t, corsConfig(`  cors:
    allowed_origins:
      - "*"
      - https://app.example.com/
      - https://app.example.com/travel
      - http://intranet.example.com
      - http://localhost:3000
      - "null"`))
	code, _, errOut := runCLI(t, "", "check", "--config", bad)
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, errOut)
	}
	for _, want := range []string{
		`server.cors.allowed_origins[0]: "*" is not allowed`,
		`server.cors.allowed_origins[1]: "https://app.example.com/": remove the trailing slash`,
		`server.cors.allowed_origins[2]: "https://app.example.com/travel": an origin has no path`,
		`server.cors.allowed_origins[3]: warning: "http://intranet.example.com" is plain http://`,
		`server.cors.allowed_origins[5]: "null" is not allowed`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("check output lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "allowed_origins[4]") {
		t.Errorf("http://localhost:3000 was reported:\n%s", errOut)
	}

	warnOnly := writeConfig(t, corsConfig("  cors: {allowed_origins: [\"http://intranet.example.com\"]}"))
	code, _, errOut = runCLI(t, "", "check", "--config", warnOnly)
	if code != 0 || !strings.Contains(errOut, "warning: ") {
		t.Errorf("a warning alone: exit %d, want 0 with the warning\n%s", code, errOut)
	}
}

// addCORS lists origins in server.cors.allowed_origins of the config file at path.
func addCORS(t *testing.T, path string, origins ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(origins))
	for i, o := range origins {
		quoted[i] = strconv.Quote(o)
	}
	y := strings.Replace(string(b), "server:\n", "server:\n  cors:\n    allowed_origins: ["+strings.Join(quoted, ", ")+"]\n", 1)
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCORSThroughBinary: the preflight and the headers as `idbridge serve` sends them;
// an error answer carries them too; user-detail never answers CORS.
func TestCORSThroughBinary(t *testing.T) {
	const page = "https://travel.example.com"
	is := newIssuer(t)
	cfg := exchangeConfig(t, "127.0.0.1:0", is.URL(), "http://127.0.0.1:9/v2/auth/oauth2-token", "")
	addCORS(t, cfg, page)
	br := startBridgeFile(t, cfg)

	pre := do(t, "OPTIONS", br.URL+"/v1/token-exchange", nil, "Origin: "+page,
		"Access-Control-Request-Method: POST", "Access-Control-Request-Headers: authorization")
	h := pre.Header
	if pre.Status != 204 || h.Get("Access-Control-Allow-Origin") != page || h.Get("Access-Control-Allow-Methods") != "POST" ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization") ||
		h.Get("Access-Control-Max-Age") == "" || !strings.Contains(h.Get("Vary"), "Origin") {
		t.Errorf("preflight: %d %v", pre.Status, h)
	}
	expired := mint(t, is, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	r := do(t, "POST", br.URL+"/v1/token-exchange", nil, "Origin: "+page, bearer(expired))
	if r.Status != 401 || r.Header.Get("Access-Control-Allow-Origin") != page || r.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("401 to the page: %d %v", r.Status, r.Header)
	}
	// Answers made before the exchange handler (wrong method, a head over
	// max_header_bytes, a framing fault) carry the same headers, or the page's script
	// would see a network failure instead of the status.
	corsError := func(what string, status int, h http.Header) {
		t.Helper()
		if h.Get("Access-Control-Allow-Origin") != page || !strings.Contains(h.Get("Vary"), "Origin") ||
			!strings.Contains(h.Get("Access-Control-Expose-Headers"), "X-Request-Id") || h.Get("X-Request-Id") == "" {
			t.Errorf("%s (%d) lacks the CORS or X-Request-Id headers: %v", what, status, h)
		}
	}
	if r := do(t, "PUT", br.URL+"/v1/token-exchange", nil, "Origin: "+page); r.Status != 405 {
		t.Errorf("PUT: %d %s", r.Status, r.Body)
	} else {
		corsError("PUT", r.Status, r.Header)
	}
	if r := do(t, "POST", br.URL+"/v1/token-exchange", nil, "Origin: "+page, "X-Padding: "+strings.Repeat("a", 17000)); r.Status != 431 {
		t.Errorf("a head over max_header_bytes: %d %s", r.Status, r.Body)
	} else {
		corsError("431", r.Status, r.Header)
	}
	c := rawConn(t, strings.TrimPrefix(br.URL, "http://"), "")
	resp, ok := roundTrip(c, "POST /v1/token-exchange HTTP/1.1\r\nHost: x\r\nOrigin: "+page+"\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	if !ok || resp.StatusCode != 400 {
		t.Errorf("Content-Length with Transfer-Encoding: %v %v", ok, resp)
	} else {
		corsError("CL+TE", resp.StatusCode, resp.Header)
	}
	for _, method := range []string{"GET", "OPTIONS"} {
		r := do(t, method, br.URL+"/v1/user-detail", nil, "Origin: "+page, bearer(mint(t, is, nil)), "Access-Control-Request-Method: GET")
		for k := range r.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("%s user-detail answered CORS: %s", method, k)
			}
		}
	}
	other := do(t, "OPTIONS", br.URL+"/v1/token-exchange", nil, "Origin: https://evil.example.net", "Access-Control-Request-Method: POST")
	if other.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("an unlisted origin got %v", other.Header)
	}
	eventually(t, "the refusal logged", func() bool {
		return strings.Contains(br.Logs(), `"origin":"https://evil.example.net"`)
	})
}

// TestEmbedSRI: `idbridge version --embed-sri` is the integrity of the script the bridge
// serves, and the README shows the current value.
func TestEmbedSRI(t *testing.T) {
	code, out, errOut := runCLI(t, "", "version", "--embed-sri")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	sri := strings.TrimSpace(out)
	br := startBridge(t, corsConfig(""))
	r := do(t, "GET", br.URL+"/v1/embed/spotnana.js", nil)
	if r.Status != 200 {
		t.Fatalf("GET the script: %d", r.Status)
	}
	sum := sha512.Sum384([]byte(r.Body))
	if want := "sha384-" + base64.StdEncoding.EncodeToString(sum[:]); sri != want {
		t.Errorf("--embed-sri %q, served script's %q", sri, want)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), sri) {
		t.Errorf("README.md does not show the embed script's current integrity %s", sri)
	}
}

// TestSandboxEmbedFlags: the sandbox refuses an allowlist entry that is not an origin.
func TestSandboxEmbedFlags(t *testing.T) {
	for _, bad := range []string{"*", "http://localhost:3000/", "https://app.example.com/path"} {
		code, _, errOut := runCLI(t, "", "sandbox", "--embed-listen", "127.0.0.1:0", "--embed-allowed-origins", bad)
		if code != 2 {
			t.Errorf("--embed-allowed-origins %q: exit %d, want 2\n%s", bad, code, errOut)
		}
	}
}
