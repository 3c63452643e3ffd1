package test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/idbridge/idbridge/spotnana"
)

// securityConfig is a bridge with two jwt issuers in front of one Spotnana token URL:
// "plain" maps the email claim as it is, "lowered" trims and lower-cases it first.
// top is added at the top level (allow_unicode under mapping, server keys, …).
func securityConfig(t *testing.T, plain, lowered, tokenURL, mappingExtra, top string) string {
	t.Helper()
	return fmt.Sprintf(`
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
log: {level: debug, format: json}
providers:
  - name: plain
    type: jwt
    issuer: %s
    audiences: [idbridge]
  - name: lowered
    type: jwt
    issuer: %s
    audiences: [idbridge]
    mapping:
      email:
        - path: email
          transforms: [trim, lower]
%s
mapping:
  email:
    - path: email
%s
spotnana:
  token_url: %s
  client_id: %s
  client_secret: %s
%s`, plain, lowered, indent(mappingExtra, "      "), indent(mappingExtra, "  "), tokenURL, testClientID, testClientSecret, top)
}

func indent(s, by string) string {
	if s == "" {
		return ""
	}
	return by + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n"+by)
}

// TestLookalikeEmails is issue 14's finding 1: a user whose IdP lets them hold a
// look-alike of another user's email (U+212A KELVIN SIGN for K, invisible and bidi
// characters, a fullwidth @) never gets that user's identity, by user-detail or by the
// exchange's per-user token cache.
func TestLookalikeEmails(t *testing.T) {
	plain, lowered := newIssuer(t), newIssuer(t)
	srv, sw := inProcessSandbox(t)
	lookalikes := map[string]string{
		"kelvin sign":     "\u212Aate@example.com",
		"zero width":      "ka\u200Bte@example.com",
		"rtl override":    "kate\u202E@example.com",
		"no-break space":  "\u00A0kate@example.com",
		"line separator":  "kate@example.com\u2028",
		"fullwidth at":    "kate\uFF20example.com",
		"dotted capital":  "\u0130vy@example.com",
		"long s":          "\u017Fam@example.com",
		"kelvin, trimmed": " \u212Aate@example.com ",
	}
	for _, unicode := range []bool{false, true} {
		t.Run(fmt.Sprintf("allow_unicode=%t", unicode), func(t *testing.T) {
			extra := ""
			if unicode {
				extra = "allow_unicode: true"
			}
			br := startBridge(t, securityConfig(t, plain.URL(), lowered.URL(), srv.URL+spotnana.SandboxTokenPath, extra, ""))
			sb := newSandbox(sw, spotnana.SandboxConfig{Users: []string{"*"}, UserDetailURL: br.URL + "/v1/user-detail"})
			kate := wantTokens(t, exchange(t, br, mint(t, plain, map[string]any{"sub": "kate", "email": "kate@example.com"})))
			calls := sb.Requests()
			for name, email := range lookalikes {
				for _, is := range []struct {
					name string
					iss  interface{ URL() string }
				}{{"plain", plain}, {"lowered", lowered}} {
					tok := mint(t, plain, map[string]any{"sub": "mallory", "email": email})
					if is.name == "lowered" {
						tok = mint(t, lowered, map[string]any{"sub": "mallory", "email": email})
					}
					r := userDetail(t, br, tok)
					x := exchange(t, br, tok)
					if unicode && name == "dotted capital" {
						// A real letter of its own: with allow_unicode it is that user's
						// address, never folded onto ivy@.
						if r.Status != 200 || emailOf(t, r) != "\u0130vy@example.com" || x.Status != 200 {
							t.Errorf("%s via %s: user-detail %d %s, exchange %d", name, is.name, r.Status, r.Body, x.Status)
						}
						continue
					}
					if r.Status != 403 {
						t.Errorf("%s via %s: user-detail %d %s, want 403", name, is.name, r.Status, r.Body)
					}
					if x.Status != 403 || strings.Contains(x.Body, kate["access_token"].(string)) {
						t.Errorf("%s via %s: exchange %d %s, want 403", name, is.name, x.Status, x.Body)
					}
				}
			}
			want := calls
			if unicode {
				want++ // İvy's own exchange; the second provider's is served from the cache
			}
			if n := sb.Requests(); n != want {
				t.Errorf("%d Spotnana calls for look-alikes, want %d", n-calls, want-calls)
			}
			eventually(t, "the refusal's reason in the log", func() bool {
				return strings.Contains(br.Logs(), "not printable ASCII") || strings.Contains(br.Logs(), "compatibility character")
			})
			// An internationalised address passes only when the operator opted in, in NFC.
			jose := mint(t, plain, map[string]any{"sub": "jose", "email": "jose\u0301@example.com"})
			r := userDetail(t, br, jose)
			switch {
			case !unicode && r.Status != 403:
				t.Errorf("jose\u0301 without allow_unicode: %d %s", r.Status, r.Body)
			case unicode && (r.Status != 200 || emailOf(t, r) != "jos\u00e9@example.com"):
				t.Errorf("jose\u0301 with allow_unicode: %d %s", r.Status, r.Body)
			}
		})
	}
}

// writeFile writes content under dir and returns its path.
func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// peakRSS reads the process's peak resident set (VmHWM) in bytes from /proc.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// deepJSON is the attack of issue 14's finding 2: 1 MiB of "[".
var deepJSON = strings.Repeat("[", 1<<20)

// TestDeepJSON is finding 2: JSON nested without limit, from any upstream and in a
// token, is refused as malformed (503 for an upstream, 401 for a token) before a
// recursive parser reads it, and the process's memory stays bounded while 8 clients
// keep sending tokens that the introspection endpoint answers with 1 MiB of "[".
// Memory is measured (VmHWM), never time.
func TestDeepJSON(t *testing.T) {
	deep := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, deepJSON)
	})
	intro := httptest.NewServer(deep)
	t.Cleanup(intro.Close)
	ui := httptest.NewServer(deep)
	t.Cleanup(ui.Close)
	is := newIssuer(t)
	br := startBridge(t, `
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
log: {level: info, format: json}
providers:
  - name: corp
    type: jwt
    issuer: `+is.URL()+`
    audiences: [idbridge]
  - name: intro
    type: introspection
    endpoint: `+intro.URL+`
    client_id: idbridge
    client_secret: s3cr3t-client-secret
    negative_cache_ttl: 0s
  - name: ui
    type: userinfo
    endpoint: `+ui.URL+`
    accepts: jwt
mapping:
  email:
    - path: email
`)
	pid := br.cmd.Process.Pid
	before := peakRSS(t, pid)

	t.Run("8 clients, 1 MiB of [ from introspection: 503, memory bounded", func(t *testing.T) {
		var wg sync.WaitGroup
		var bad atomic.Int64
		for c := 0; c < 8; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				for i := 0; i < 6; i++ {
					req, _ := http.NewRequest("GET", br.URL+"/v1/user-detail", nil)
					req.Header.Set("Authorization", fmt.Sprintf("Bearer junk-%d-%d", c, i))
					resp, err := httpClient.Do(req)
					if err != nil {
						bad.Add(1)
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 503 {
						bad.Add(1)
					}
				}
			}(c)
		}
		wg.Wait()
		if bad.Load() > 0 {
			t.Errorf("%d answers were not 503", bad.Load())
		}
		peak := peakRSS(t, pid)
		t.Logf("peak RSS: %d MB before the attack, %d MB after 48 answers of 1 MiB of [", before>>20, peak>>20)
		// Unbounded, one such answer took ≈128 MB of stack and eight at once ≈1.09 GB.
		if peak > 192<<20 {
			t.Errorf("peak RSS %d MB: the depth limit does not hold", peak>>20)
		}
	})

	t.Run("userinfo answering 1 MiB of [ is 503", func(t *testing.T) {
		tok := mint(t, newIssuer(t), nil) // an issuer no jwt provider names: userinfo's
		if r := userDetail(t, br, tok); r.Status != 503 {
			t.Errorf("%d %s", r.Status, r.Body)
		}
	})
	if strings.Contains(br.Logs(), "[[[[") {
		t.Error("the log holds the upstream's answer")
	}
}

// TestDeepJSONKeysAndSpotnana: discovery, JWKS and Spotnana answers nested without limit
// are malformed answers of that upstream: the token is 503 (keys unavailable) and the
// exchange is refused (502), without reading them recursively; a token nested without
// limit is 401.
func TestDeepJSONKeysAndSpotnana(t *testing.T) {
	deepIdP := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/.well-known/openid-configuration" {
			fmt.Fprintf(w, `{"issuer":"http://%s","jwks_uri":"http://%s/jwks","x":%s}`, r.Host, r.Host, deepJSON)
			return
		}
		io.WriteString(w, `{"keys":`+deepJSON)
	}))
	t.Cleanup(deepIdP.Close)
	direct := strings.Replace(deepIdP.URL, "127.0.0.1", "localhost", 1)
	spot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, deepJSON)
	}))
	t.Cleanup(spot.Close)
	is := newIssuer(t)
	br := startBridge(t, `
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
providers:
  - name: corp
    type: jwt
    issuer: `+is.URL()+`
    audiences: [idbridge]
  - name: deep-discovery
    type: jwt
    issuer: `+deepIdP.URL+`
    audiences: [idbridge]
  - name: deep-jwks
    type: jwt
    issuer: `+direct+`
    discovery: false
    jwks_uri: `+deepIdP.URL+`/jwks
    audiences: [idbridge]
mapping:
  email:
    - path: email
spotnana:
  token_url: `+spot.URL+`
  client_id: idbridge
  client_secret: s3cr3t-client-secret
  max_retries: 0
`)
	for name, iss := range map[string]string{"discovery": deepIdP.URL, "jwks": direct} {
		tok := b64(`{"alg":"RS256","kid":"k1"}`) + "." + b64(`{"iss":"`+iss+`","aud":"idbridge","exp":9999999999,"email":"a@example.com"}`) + ".c2ln"
		if r := userDetail(t, br, tok); r.Status != 503 {
			t.Errorf("deep %s: %d %s", name, r.Status, r.Body)
		}
	}
	if r := exchange(t, br, mint(t, is, nil)); r.Status != 502 {
		t.Errorf("deep Spotnana answer: %d %s", r.Status, r.Body)
	}
	t.Run("a token with a deep header or payload is 401", func(t *testing.T) {
		for _, part := range []string{"header", "payload"} {
			h, p := `{"alg":"RS256","kid":"x"}`, `{"iss":"`+is.URL()+`","a":`+strings.Repeat("[", 5000)+`}`
			if part == "header" {
				h, p = `{"alg":"RS256","x":`+strings.Repeat("[", 5000)+`}`, `{"iss":"`+is.URL()+`"}`
			}
			tok := b64(h) + "." + b64(p) + ".c2ln"
			if r := userDetail(t, br, tok); r.Status != 401 {
				t.Errorf("deep %s: %d %s", part, r.Status, r.Body)
			}
		}
	})

}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestNoSecretThroughAnEcho is finding 3: a Spotnana endpoint whose error answers echo
// the request (whole, cut short, percent-encoded or decoded, in any field) never gets
// the client secret or the user's token into the bridge's log or answer; and `check`
// never prints what an ${env:} reference held, even inside a regex that does not compile.
func TestNoSecretThroughAnEcho(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		r.Body.Close()
		form, _ := url.ParseQuery(string(raw))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		var body any
		switch form.Get("scope") + r.URL.Path {
		case "openid/rfc6749":
			body = map[string]any{"error": "invalid_request", "error_description": "bad request: " + string(raw)}
		case "openid/cut":
			body = map[string]any{"error": "invalid_request", "error_description": string(raw)[:len(raw)/2+40]}
		default:
			body = map[string]any{
				"debugIdentifier": form.Get("client_secret"),
				"errorMessages": []map[string]string{{
					"errorCode": form.Get("subject_token"),
					"message":   "subject_token=" + form.Get("subject_token") + " client_secret=" + form.Get("client_secret"),
				}},
			}
		}
		json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(echo.Close)
	is := newIssuer(t)
	for _, path := range []string{"/rfc6749", "/cut", "/spotnana"} {
		t.Run(path, func(t *testing.T) {
			br := startBridgeFile(t, exchangeConfig(t, "127.0.0.1:0", is.URL(), echo.URL+path, "  max_retries: 0\n"))
			tok := mint(t, is, nil)
			r := exchange(t, br, tok)
			if r.Status != 502 {
				t.Fatalf("got %d %s, want 502", r.Status, r.Body)
			}
			if strings.Contains(r.Body, testClientSecret) || strings.Contains(r.Body, tok[:40]) {
				t.Errorf("the answer carries a secret: %s", r.Body)
			}
			eventually(t, "the refusal in the log", func() bool { return strings.Contains(br.Logs(), `"status":502`) })
			noSecretsIn(t, "the bridge", br.Logs(), tok)
			if strings.Contains(br.Logs(), tok[len(tok)/2:len(tok)/2+20]) {
				t.Error("the log holds a piece of the token")
			}
		})
	}

	t.Run("check never prints a resolved reference", func(t *testing.T) {
		const value = "(unclosed-s3cr3t-value"
		cfg := writeConfig(t, `
providers:
  - name: corp
    type: jwt
    issuer: https://idp.example.com
    jwks_uri: https://idp.example.com/keys
    audiences: [idbridge]
mapping:
  email:
    - path: email
      when: {path: tid, matches: "${env:IDB_RX}"}
      transforms: [{replace: {regex: "x${env:IDB_RX}", with: ""}}]
`)
		cmd := exec.Command(binary, "check", "--config", cfg)
		cmd.Env = append(os.Environ(), "IDB_RX="+value)
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 2 {
			t.Fatalf("check: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
		}
		if strings.Contains(string(out), "s3cr3t") {
			t.Errorf("check printed the variable's value:\n%s", out)
		}
		if !strings.Contains(string(out), "${env:IDB_RX}") {
			t.Errorf("check does not name the reference:\n%s", out)
		}
	})
}

// TestReadyWithOneIssuerDown is finding 9: a replica that starts while one of its jwt
// issuers is down is ready (the other issuer serves), and /readyz shows that provider's
// own state.
func TestReadyWithOneIssuerDown(t *testing.T) {
	up := newIssuer(t)
	down := "http://" + freePort(t)
	br := startBridge(t, `
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
providers:
  - name: up
    type: jwt
    issuer: `+up.URL()+`
    audiences: [idbridge]
  - name: down
    type: jwt
    issuer: `+down+`
    audiences: [idbridge]
    timeout: 500ms
mapping:
  email:
    - path: email
`)
	eventually(t, "ready with one issuer down", func() bool {
		return do(t, "GET", br.Admin+"/readyz", nil).Status == 200
	})
	r := do(t, "GET", br.Admin+"/readyz", nil)
	var body struct {
		Ready bool                      `json:"ready"`
		Deps  map[string]map[string]any `json:"dependencies"`
	}
	if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
		t.Fatal(err)
	}
	if !body.Ready || body.Deps["provider:down"]["ready"] != false || body.Deps["provider:up"]["ready"] != true {
		t.Errorf("/readyz: %s", r.Body)
	}
	if e := emailOf(t, userDetail(t, br, mint(t, up, nil))); e != "alice@example.com" {
		t.Errorf("the issuer that is up: %q", e)
	}
}

// TestAssertionKeysFromASecretVolume is finding 8: keys_dir laid out as Kubernetes
// mounts a Secret (key.pem → ..data/key.pem, ..data → ..2026_…) is read, a Secret
// update (a new ..data) is picked up while serving, and a key file that group or others
// may read is warned about by `check` and at start.
func TestAssertionKeysFromASecretVolume(t *testing.T) {
	keys := t.TempDir()
	gen := filepath.Join(t.TempDir(), "gen")
	generate := func() string {
		code, out, errOut := runCLI(t, "", "keys", "generate", "--dir", gen)
		if code != 0 {
			t.Fatalf("keys generate: %d %s%s", code, out, errOut)
		}
		kid, _, _ := strings.Cut(strings.TrimPrefix(out, "kid: "), "\n")
		return kid
	}
	// publish writes every key of gen as a new timestamped directory, swaps ..data to
	// it atomically and links each key name to ..data, as the kubelet does.
	publish := func(version string, mode os.FileMode) {
		dir := filepath.Join(keys, "..2026_"+version)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		pems, _ := filepath.Glob(filepath.Join(gen, "*.pem"))
		for i, p := range pems {
			b, _ := os.ReadFile(p)
			writeFile(t, dir, fmt.Sprintf("signing-%d.pem", i), string(b), mode)
			link := filepath.Join(keys, fmt.Sprintf("signing-%d.pem", i))
			if _, err := os.Lstat(link); err != nil {
				if err := os.Symlink(filepath.Join("..data", fmt.Sprintf("signing-%d.pem", i)), link); err != nil {
					t.Fatal(err)
				}
			}
		}
		tmp := filepath.Join(keys, "..data_tmp")
		if err := os.Symlink(filepath.Base(dir), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(keys, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	first := generate()
	publish("a", 0o644) // a Secret volume's default mode

	is := newIssuer(t)
	cfg := exchangeConfig(t, "127.0.0.1:0", is.URL(), "http://"+freePort(t)+"/token", fmt.Sprintf(`
  mode: assertion
  assertion:
    issuer: https://idbridge.test
    keys_dir: %s
`, keys))
	code, out, errOut := runCLI(t, "", "check", "--config", cfg)
	if code != 0 || !strings.Contains(out+errOut, "warning: private key "+filepath.Join(keys, "signing-0.pem")+" (mode 0644) is readable by group or others") {
		t.Fatalf("check: exit %d\n%s%s", code, out, errOut)
	}
	br := startBridgeFile(t, cfg)
	jwks := func() string { return do(t, "GET", br.URL+"/.well-known/jwks.json", nil).Body }
	if !strings.Contains(jwks(), first) {
		t.Fatalf("JWKS without the Secret's key %s: %s", first, jwks())
	}
	eventually(t, "the start-up warning", func() bool { return strings.Contains(br.Logs(), "readable by group or others") })

	second := generate()
	publish("b", 0o400)
	eventually(t, "the Secret update picked up", func() bool {
		j := jwks()
		return strings.Contains(j, first) && strings.Contains(j, second)
	})
	code, out, errOut = runCLI(t, "", "check", "--config", cfg)
	if code != 0 || strings.Contains(out+errOut, "warning") {
		t.Fatalf("check after 0400: exit %d\n%s%s", code, out, errOut)
	}
}

// edgeConfig is a bridge with one jwt issuer and the given server keys.
func edgeConfig(issuer, serverKeys string) string {
	return `
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
` + indent(serverKeys, "  ") + `
log: {level: debug, format: json}
providers:
  - name: corp
    type: jwt
    issuer: ` + issuer + `
    audiences: [idbridge]
mapping:
  email:
    - path: email
`
}

// rawConn dials addr (host:port) from the given local address ("" for any).
func rawConn(t *testing.T, addr, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes raw on c and reads one response; ok is false when the server closed
// the connection instead of answering.
func roundTrip(c net.Conn, raw string) (*http.Response, bool) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return nil, false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, true
}

// closedByServer reports whether the server has closed c (a read ends at once).
func closedByServer(c net.Conn) bool { return closedBy(c, time.Now().Add(200*time.Millisecond)) }

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// closedBy reports whether the server closes c before deadline.
func closedBy(c net.Conn, deadline time.Time) bool {
	c.SetReadDeadline(deadline)
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

const healthGet = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

// TestAdminListener is finding 5: the admin listener closes idle connections, refuses a
// browser's cross-site state change, and with admin_token wants it on every route but
// the probes.
func TestAdminListener(t *testing.T) {
	is := newIssuer(t)
	const token = "adm-0123456789abcdef-token"
	br := startBridge(t, edgeConfig(is.URL(), "idle_timeout: 1s\nadmin_token: "+token))
	open := br.startFree(t)

	t.Run("probes need no token", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz"} {
			if r := do(t, "GET", br.Admin+p, nil); r.Status != 200 {
				t.Errorf("%s: %d %s", p, r.Status, r.Body)
			}
		}
	})
	t.Run("every other route wants the token", func(t *testing.T) {
		for _, rt := range [][2]string{{"GET", "/metrics"}, {"POST", "/admin/cache/purge"}} {
			if r := do(t, rt[0], br.Admin+rt[1], nil); r.Status != 401 || r.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s without the token: %d", rt[0], rt[1], r.Status)
			}
			if r := do(t, rt[0], br.Admin+rt[1], nil, "Authorization: Bearer wrong-token-0123456789"); r.Status != 401 {
				t.Errorf("%s %s with a wrong token: %d", rt[0], rt[1], r.Status)
			}
			if r := do(t, rt[0], br.Admin+rt[1], nil, bearer(token)); r.Status != 200 {
				t.Errorf("%s %s with the token: %d %s", rt[0], rt[1], r.Status, r.Body)
			}
		}
	})
	t.Run("cross-site state changes are refused, token or not", func(t *testing.T) {
		for _, h := range []string{"Origin: http://evil.example", "Origin: null", "Sec-Fetch-Site: cross-site", "Sec-Fetch-Site: same-site"} {
			for _, b := range []*bridge{br, open} {
				if r := do(t, "POST", b.Admin+"/admin/cache/purge", nil, h, bearer(token)); r.Status != 403 {
					t.Errorf("%s: %d %s", h, r.Status, r.Body)
				}
			}
		}
		own := "Origin: " + open.Admin
		if r := do(t, "POST", open.Admin+"/admin/cache/purge", nil, own, "Sec-Fetch-Site: same-origin"); r.Status != 200 {
			t.Errorf("same origin: %d %s", r.Status, r.Body)
		}
	})
	t.Run("without a token only an IP address or localhost is served", func(t *testing.T) {
		// A DNS-rebinding page names the listener by the attacker's domain and sends a
		// matching Origin, so the cross-site check alone lets it through.
		port := open.Admin[strings.LastIndexByte(open.Admin, ':')+1:]
		rebound := "rebind.attacker.example:" + port
		for _, rt := range [][2]string{{"POST", "/admin/cache/purge"}, {"GET", "/metrics"}, {"GET", "/playground"}, {"POST", "/playground/api/resolve"}} {
			r := do(t, rt[0], open.Admin+rt[1], strings.NewReader(`{"token":"x"}`), "Host: "+rebound,
				"Origin: http://"+rebound, "Sec-Fetch-Site: same-origin", "Content-Type: application/json")
			if r.Status != 403 || !strings.Contains(r.Body, "access_denied") {
				t.Errorf("%s %s with Host %s: %d %s", rt[0], rt[1], rebound, r.Status, r.Body)
			}
		}
		for _, host := range []string{"localhost:" + port, "LOCALHOST:" + port, "127.0.0.1:" + port, "[::1]:" + port, "127.0.0.1"} {
			if r := do(t, "POST", open.Admin+"/admin/cache/purge", nil, "Host: "+host); r.Status != 200 {
				t.Errorf("purge with Host %s: %d %s", host, r.Status, r.Body)
			}
		}
		for _, p := range []string{"/healthz", "/readyz"} {
			if r := do(t, "GET", open.Admin+p, nil, "Host: "+rebound); r.Status != 200 {
				t.Errorf("probe %s with Host %s: %d %s", p, rebound, r.Status, r.Body)
			}
		}
		// The token is what a rebinding page cannot send: with it, any name is served.
		if r := do(t, "POST", br.Admin+"/admin/cache/purge", nil, "Host: idbridge-admin.internal:9090", bearer(token)); r.Status != 200 {
			t.Errorf("purge with the token and a DNS Host: %d %s", r.Status, r.Body)
		}
		logs := open.Logs()
		if !strings.Contains(logs, "Host is not an IP address or localhost") || !strings.Contains(logs, "rebind.attacker.example") {
			t.Errorf("no warning naming the refused Host in the log:\n%s", logs)
		}
	})
	t.Run("idle connections are closed on both listeners", func(t *testing.T) {
		var conns []net.Conn
		for _, base := range []string{br.Admin, br.URL} {
			for i := 0; i < 5; i++ {
				c := rawConn(t, strings.TrimPrefix(base, "http://"), "")
				if resp, ok := roundTrip(c, healthGet); !ok || resp.Header.Get("Connection") == "close" {
					t.Fatalf("%s: no keep-alive answer", base)
				}
				conns = append(conns, c)
			}
		}
		// idle_timeout (1s) is a clock in the bridge: each read returns as soon as the
		// server closes its connection, and gives up at the bound the test used to sleep
		// (or at once for a connection read after that bound, as closedByServer does).
		bound := time.Now().Add(2500 * time.Millisecond)
		for i, c := range conns {
			if !closedBy(c, later(bound, time.Now().Add(200*time.Millisecond))) {
				t.Errorf("connection %d still open after idle_timeout", i)
			}
		}
	})
}

// startFree starts a second bridge like b's issuer but with no admin_token, for the
// cross-site checks that must hold without a token too.
func (b *bridge) startFree(t *testing.T) *bridge {
	t.Helper()
	cfg, err := os.ReadFile(b.Config)
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, l := range strings.Split(string(cfg), "\n") {
		if !strings.Contains(l, "admin_token") {
			keep = append(keep, l)
		}
	}
	return startBridge(t, strings.Join(keep, "\n"))
}

// TestConnectionLimits is finding 6: connections beyond max_connections_per_client from
// one address, or beyond max_connections in all, are closed at once and counted; a
// connection closed frees its place.
func TestConnectionLimits(t *testing.T) {
	is := newIssuer(t)
	br := startBridge(t, edgeConfig(is.URL(), "max_connections: 8\nmax_connections_per_client: 5"))
	addr := strings.TrimPrefix(br.URL, "http://")
	held := map[string][]net.Conn{}
	accept := func(from string) bool {
		c := rawConn(t, addr, from)
		if _, ok := roundTrip(c, healthGet); !ok {
			return false
		}
		held[from] = append(held[from], c)
		return true
	}
	for i := 0; i < 5; i++ {
		if !accept("127.0.0.1") {
			t.Fatalf("connection %d from 127.0.0.1 refused below the bound", i)
		}
	}
	if accept("127.0.0.1") {
		t.Fatal("a 6th connection from one address was served (max_connections_per_client: 5)")
	}
	for i := 0; i < 3; i++ {
		if !accept("127.0.0.2") {
			t.Fatalf("connection %d from 127.0.0.2 refused below the bound", i)
		}
	}
	if accept("127.0.0.3") {
		t.Fatal("a 9th connection was served (max_connections: 8)")
	}
	held["127.0.0.1"][0].Close()
	eventually(t, "a closed connection frees its place", func() bool { return accept("127.0.0.1") })
	fams := scrape(t, br)
	for _, reason := range []string{"per_client", "total"} {
		if n, _ := sample(fams, "idbridge_connections_refused_total", "reason", reason); n < 1 {
			t.Errorf("idbridge_connections_refused_total{reason=%q} = %v", reason, n)
		}
	}
}

// TestHTTPEdges is finding 10: a request with both Content-Length and
// Transfer-Encoding is refused 400 and its connection closed; max_header_bytes is the
// bound (net/http alone allows 4096 bytes more); X-Real-IP is not honoured, only
// X-Forwarded-For from a trusted proxy.
func TestHTTPEdges(t *testing.T) {
	is := newIssuer(t)
	br := startBridge(t, edgeConfig(is.URL(), "trusted_proxies: [127.0.0.1]\nallowed_clients: [10.9.9.9/32]"))
	addr := strings.TrimPrefix(br.URL, "http://")

	t.Run("Content-Length with Transfer-Encoding", func(t *testing.T) {
		for _, order := range []string{
			"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
			"transfer-encoding: chunked\r\ncontent-length: 30\r\n",
		} {
			c := rawConn(t, addr, "")
			resp, ok := roundTrip(c, "GET /v1/user-detail HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.9.9.9\r\n"+order+"\r\n0\r\n\r\n"+healthGet)
			if !ok || resp.StatusCode != 400 {
				t.Fatalf("%q: %v", order, resp)
			}
			if !closedByServer(c) {
				t.Errorf("%q: the connection stays open", order)
			}
		}
		// The same request after a good one on a kept-alive connection.
		c := rawConn(t, addr, "")
		if resp, ok := roundTrip(c, healthGet); !ok || resp.StatusCode == 400 {
			t.Fatalf("first request: %v", resp)
		}
		if resp, ok := roundTrip(c, "POST /v1/token-exchange HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"); !ok || resp.StatusCode != 400 {
			t.Fatalf("second request: %v", resp)
		}
	})
	t.Run("a route is matched on the path as sent", func(t *testing.T) {
		// An escaped slash or a trailing slash is another path: a JSON 404, never the
		// user-detail answer (a proxy in front may filter on the raw path) nor Gin's
		// HTML redirect.
		for _, p := range []string{"/v1%2fuser-detail", "/v1%2Fuser-detail", "/v1/user-detail/", "/v1/user%2ddetail"} {
			r := do(t, "GET", br.URL+p, nil, bearer(mint(t, is, nil)), "X-Forwarded-For: 10.9.9.9")
			if r.Status != 404 || !strings.Contains(r.Body, `"not_found"`) || r.Header.Get("X-Request-Id") == "" {
				t.Errorf("GET %s: %d %v %s", p, r.Status, r.Header, r.Body)
			}
		}
		if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, is, nil)), "X-Forwarded-For: 10.9.9.9"); r.Status != 200 {
			t.Errorf("GET /v1/user-detail: %d %s", r.Status, r.Body)
		}
	})
	t.Run("max_header_bytes is the bound", func(t *testing.T) {
		c := rawConn(t, addr, "")
		pad := strings.Repeat("a", 18000) // over 16384, under 16384+4096
		resp, ok := roundTrip(c, "GET /v1/user-detail HTTP/1.1\r\nHost: x\r\nX-Pad: "+pad+"\r\n\r\n")
		if !ok || resp.StatusCode != 431 {
			t.Fatalf("%d bytes of headers: %v", len(pad), resp)
		}
		c = rawConn(t, addr, "")
		if resp, ok := roundTrip(c, "GET /v1/user-detail HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.9.9.9\r\nX-Pad: "+pad[:15000]+"\r\n\r\n"); !ok || resp.StatusCode != 401 {
			t.Fatalf("15000 bytes of headers: %v", resp)
		}
	})
	t.Run("X-Real-IP is not a client address", func(t *testing.T) {
		if r := do(t, "GET", br.URL+"/v1/user-detail", nil, "X-Real-IP: 10.9.9.9"); r.Status != 403 {
			t.Errorf("X-Real-IP from a trusted proxy: %d %s, want 403 (the peer is not allowed)", r.Status, r.Body)
		}
		if r := do(t, "GET", br.URL+"/v1/user-detail", nil, "X-Forwarded-For: 10.9.9.9"); r.Status != 401 {
			t.Errorf("X-Forwarded-For from a trusted proxy: %d %s, want 401 (allowed, no token)", r.Status, r.Body)
		}
	})
}

// TestNetworkPolicy is finding 5's manifest: the admin port is admitted only from the
// monitoring namespace and the node (the kubelet), the API port from anywhere.
func TestNetworkPolicy(t *testing.T) {
	b, err := os.ReadFile("../deploy/kubernetes/networkpolicy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var np struct {
		Kind string
		Spec struct {
			PodSelector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"podSelector"`
			Ingress []struct {
				Ports []struct{ Port int }
				From  []map[string]any
			}
		}
	}
	if err := yaml.Unmarshal(b, &np); err != nil {
		t.Fatal(err)
	}
	if np.Kind != "NetworkPolicy" || np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != "idbridge" {
		t.Fatalf("not a NetworkPolicy for idbridge's pods: %+v", np)
	}
	admitted := map[int][]map[string]any{}
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if len(rule.From) == 0 {
				admitted[p.Port] = append(admitted[p.Port], map[string]any{"anyone": true})
			}
			admitted[p.Port] = append(admitted[p.Port], rule.From...)
		}
	}
	if len(admitted[8080]) == 0 {
		t.Error("the API port is not admitted")
	}
	var monitoring, node bool
	for _, from := range admitted[9090] {
		switch {
		case from["anyone"] == true:
			t.Error("the admin port is open to anyone")
		case fmt.Sprint(from["namespaceSelector"]) == "map[matchLabels:map[kubernetes.io/metadata.name:monitoring]]" && from["podSelector"] == nil:
			monitoring = true
		case from["ipBlock"] != nil:
			node = true
		default:
			t.Errorf("the admin port admits %v", from)
		}
	}
	if !monitoring || !node {
		t.Errorf("the admin port must admit the monitoring namespace (%t) and the kubelet's node (%t)", monitoring, node)
	}
}
