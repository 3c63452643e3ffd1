package test

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/idbridge/idbridge/providers/introspection/idptest"
	"github.com/idbridge/idbridge/spotnana"
)

const (
	testClientID     = "idbridge-test"
	testClientSecret = "s3cret-client-secret-for-tests"
)

// sandboxProc is a running `idbridge sandbox`.
type sandboxProc struct {
	URL  string
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan error
}

// startSandbox runs `idbridge sandbox --listen 127.0.0.1:0 …` and waits for the line that
// names its bound address.
func startSandbox(t *testing.T, args ...string) *sandboxProc {
	t.Helper()
	s := &sandboxProc{logs: &syncBuffer{}, done: make(chan error, 1)}
	all := append([]string{"sandbox", "--listen", "127.0.0.1:0", "--log-format", "json",
		"--client-id", testClientID, "--client-secret", testClientSecret}, args...)
	s.cmd = exec.Command(binary, all...)
	s.cmd.Stderr = s.logs
	pr, pw := io.Pipe()
	s.cmd.Stdout = pw
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		re := regexp.MustCompile(`listening on (http://\S+)`)
		for sc.Scan() {
			s.logs.Write([]byte(sc.Text() + "\n"))
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	go func() { s.done <- s.cmd.Wait(); pw.Close() }()
	select {
	case s.URL = <-addr:
	case err := <-s.done:
		t.Fatalf("idbridge sandbox exited: %v\n%s", err, s.logs.String())
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		t.Fatalf("idbridge sandbox did not report its address\n%s", s.logs.String())
	}
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
		}
	})
	return s
}

// freePort returns a loopback address that was free a moment ago. The sandbox process
// must know the bridge's user-detail URL before the bridge starts.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// exchangeConfig is a bridge config with one jwt provider and a spotnana section whose
// secret is read from a file next to the config. extra is appended under spotnana:.
func exchangeConfig(t *testing.T, listen, issuer, tokenURL, extra string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "spotnana.secret"), []byte(testClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`
server:
  listen: %s
  admin_listen: 127.0.0.1:0
log: {level: debug, format: json}
providers:
  - name: corp
    type: jwt
    issuer: %s
    audiences: [idbridge]
mapping:
  email:
    - path: email
      when: {path: email_verified, equals: true}
spotnana:
  token_url: %s
  client_id: %s
  client_secret: ${file:spotnana.secret}
%s`, listen, issuer, tokenURL, testClientID, extra)
	path := filepath.Join(dir, "idbridge.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func exchange(t *testing.T, br *bridge, token string) response {
	t.Helper()
	return do(t, "POST", br.URL+"/v1/token-exchange", nil, bearer(token))
}

// wantTokens checks a successful exchange answer.
func wantTokens(t *testing.T, r response) map[string]any {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("exchange: %d %s", r.Status, r.Body)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	m := r.JSON(t)
	if s, _ := m["access_token"].(string); s == "" {
		t.Errorf("no access_token in %s", r.Body)
	}
	if s, _ := m["refresh_token"].(string); s == "" {
		t.Errorf("no refresh_token in %s", r.Body)
	}
	if m["token_type"] != "Bearer" {
		t.Errorf("token_type %v", m["token_type"])
	}
	if n, _ := m["expires_in"].(float64); n <= 0 {
		t.Errorf("expires_in %v", m["expires_in"])
	}
	return m
}

var jwtShape = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}`)

// noSecretsIn fails when logs hold the client secret, any of the values, or anything
// JWT-shaped (which covers assertions the test never sees).
func noSecretsIn(t *testing.T, who, logs string, values ...string) {
	t.Helper()
	if strings.Contains(logs, testClientSecret) {
		t.Errorf("%s's logs contain the client secret", who)
	}
	for _, v := range values {
		if v == "" {
			continue
		}
		if strings.Contains(logs, v) {
			t.Errorf("%s's logs contain a token (fingerprint %s)", who, spotnana.Fingerprint(v))
		}
		if parts := strings.Split(v, "."); len(parts) == 3 && strings.Contains(logs, parts[2]) {
			t.Errorf("%s's logs contain a token's signature", who)
		}
	}
	if m := jwtShape.FindString(logs); m != "" {
		t.Errorf("%s's logs contain something JWT-shaped: %.20s…", who, m)
	}
}

// TestExchangeCallbackLoop runs the seed's flow through real processes: the app posts to
// the bridge, the bridge calls `idbridge sandbox`, which calls the bridge's user-detail.
func TestExchangeCallbackLoop(t *testing.T) {
	is := newIssuer(t)
	listen := freePort(t)
	sb := startSandbox(t, "--user-detail-url", "http://"+listen+"/v1/user-detail", "--users", "alice@example.com")
	cfg := exchangeConfig(t, listen, is.URL(), sb.URL+spotnana.SandboxTokenPath, "")
	br := startBridgeFile(t, cfg)

	alice := mint(t, is, nil)
	bob := mint(t, is, map[string]any{"sub": "u-bob", "email": "bob@example.com"})
	var seen []string

	first := wantTokens(t, exchange(t, br, alice))
	seen = append(seen, first["access_token"].(string), first["refresh_token"].(string))

	t.Run("unknown user: 502 with Spotnana's code", func(t *testing.T) {
		r := exchange(t, br, bob)
		if r.Status != 502 || r.JSON(t)["error"] != spotnana.CodeUserNotFound {
			t.Fatalf("got %d %s, want 502 %s", r.Status, r.Body, spotnana.CodeUserNotFound)
		}
	})

	t.Run("a cached token reports the time actually left", func(t *testing.T) {
		// The first reuse already reports less than Spotnana's figure (the cache keeps
		// whole seconds), so the countdown is measured from that reuse on.
		cached := wantTokens(t, exchange(t, br, alice))
		if cached["access_token"] != first["access_token"] {
			t.Fatal("the second exchange was not served from the token cache")
		}
		base := cached["expires_in"].(float64)
		if base > first["expires_in"].(float64) {
			t.Fatalf("a cached token reports %v, more than the %v Spotnana gave", base, first["expires_in"])
		}
		// Bounded polling: a second later it must report less.
		deadline := time.Now().Add(5 * time.Second)
		for {
			time.Sleep(250 * time.Millisecond)
			m := wantTokens(t, exchange(t, br, alice))
			if m["access_token"] != first["access_token"] {
				t.Fatal("a later exchange was not served from the token cache")
			}
			if m["expires_in"].(float64) < base {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("expires_in stayed %v", m["expires_in"])
			}
		}
	})

	t.Run("idbridge exchange prints Spotnana's JSON, exits 1 on a refusal", func(t *testing.T) {
		code, out, errOut := runCLI(t, alice+"\n", "exchange", "--config", cfg, "--subject-token", "-")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil || m["token_type"] != "Bearer" || m["access_token"] == nil {
			t.Fatalf("stdout is not Spotnana's token JSON: %q", out)
		}
		seen = append(seen, m["access_token"].(string))
		noSecretsIn(t, "idbridge exchange", errOut, alice)
		code, out, errOut = runCLI(t, bob, "exchange", "--config", cfg, "--subject-token", "-")
		if code != 1 || !strings.Contains(out+errOut, spotnana.CodeUserNotFound) {
			t.Fatalf("refusal: exit %d\n%s\n%s", code, out, errOut)
		}
		code, _, _ = runCLI(t, "garbage", "exchange", "--config", cfg, "--subject-token", "-")
		if code != 1 {
			t.Fatalf("a bad token: exit %d, want 1", code)
		}
	})

	t.Run("no secret or token in either log", func(t *testing.T) {
		vals := append([]string{alice, bob}, seen...)
		noSecretsIn(t, "the bridge", br.Logs(), vals...)
		noSecretsIn(t, "the sandbox", sb.logs.String(), vals...)
		if !strings.Contains(br.Logs(), `"route":"token_exchange"`) {
			t.Error("no exchange request line in the bridge's log")
		}
	})
}

// TestExchangeAssertionLoop runs Spotnana's JWKS variant: the bridge signs an assertion
// with a key made by `idbridge keys generate`; the sandbox verifies it against the
// bridge's JWKS and never calls user-detail.
func TestExchangeAssertionLoop(t *testing.T) {
	is := newIssuer(t)
	keys := filepath.Join(t.TempDir(), "keys")
	code, out, errOut := runCLI(t, "", "keys", "generate", "--dir", keys)
	if code != 0 || !regexp.MustCompile(`(?m)^kid: \S+$`).MatchString(out) || !strings.Contains(out, "path: "+keys) {
		t.Fatalf("keys generate: exit %d\n%s%s", code, out, errOut)
	}
	pems, _ := filepath.Glob(filepath.Join(keys, "*.pem"))
	if len(pems) != 1 {
		t.Fatalf("%d key files", len(pems))
	}
	if fi, err := os.Stat(pems[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode())
	}

	const assertionIssuer = "https://idbridge.test"
	listen := freePort(t)
	sb := startSandbox(t, "--mode", "jwks", "--jwks-url", "http://"+listen+"/.well-known/jwks.json",
		"--issuer", assertionIssuer, "--users", "alice@example.com")
	cfg := exchangeConfig(t, listen, is.URL(), sb.URL+spotnana.SandboxTokenPath, fmt.Sprintf(`
  mode: assertion
  assertion:
    issuer: %s
    keys_dir: %s
`, assertionIssuer, keys))
	br := startBridgeFile(t, cfg)

	if r := do(t, "GET", br.URL+"/.well-known/jwks.json", nil); r.Status != 200 || !strings.Contains(r.Body, `"kid"`) {
		t.Fatalf("JWKS: %d %s", r.Status, r.Body)
	}
	alice := mint(t, is, nil)
	m := wantTokens(t, exchange(t, br, alice))
	noSecretsIn(t, "the bridge", br.Logs(), alice, m["access_token"].(string), m["refresh_token"].(string))
	noSecretsIn(t, "the sandbox", sb.logs.String(), alice, m["access_token"].(string), m["refresh_token"].(string))
	if strings.Contains(br.Logs(), `"route":"user_detail"`) {
		t.Error("the sandbox called user-detail in jwks mode")
	}

	t.Run("keys generate usage", func(t *testing.T) {
		if code, _, _ := runCLI(t, "", "keys", "generate"); code != 2 {
			t.Fatalf("no --dir: exit %d, want 2", code)
		}
		if code, _, _ := runCLI(t, "", "keys"); code != 2 {
			t.Fatalf("no subcommand: exit %d, want 2", code)
		}
	})
}

// swapHandler lets a test start a listener before the handler it serves exists: the
// sandbox needs the bridge's URL, and the bridge the sandbox's.
type swapHandler struct{ h atomic.Pointer[http.Handler] }

func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	http.Error(w, "not ready", http.StatusServiceUnavailable)
}

// inProcessSandbox starts an httptest server for a sandbox made later with setSandbox.
func inProcessSandbox(t *testing.T) (*httptest.Server, *swapHandler) {
	t.Helper()
	sw := &swapHandler{}
	srv := httptest.NewServer(sw)
	t.Cleanup(srv.Close)
	return srv, sw
}

func newSandbox(sw *swapHandler, cfg spotnana.SandboxConfig) *spotnana.Sandbox {
	cfg.ClientID, cfg.ClientSecret = testClientID, testClientSecret
	sb := spotnana.NewSandbox(cfg)
	sw.set(sb)
	return sb
}

// TestExchangeFailures counts what reaches Spotnana (an in-process sandbox) for each
// failure the bridge must handle. Every case uses its own user, so that the token cache
// (on, as by default) never answers for another case.
func TestExchangeFailures(t *testing.T) {
	is := newIssuer(t)
	srv, sw := inProcessSandbox(t)
	cfg := exchangeConfig(t, "127.0.0.1:0", is.URL(), srv.URL+spotnana.SandboxTokenPath, `
  max_retries: 2
  allowed_token_clients: [travel-app]
`)
	br := startBridgeFile(t, cfg)
	userDetail := br.URL + "/v1/user-detail"
	user := func(name string, extra map[string]any) string {
		claims := map[string]any{"sub": "u-" + name, "email": name + "@example.com", "azp": "travel-app"}
		for k, v := range extra {
			claims[k] = v
		}
		return mint(t, is, claims)
	}

	t.Run("a bad subject token never reaches Spotnana", func(t *testing.T) {
		sb := newSandbox(sw, spotnana.SandboxConfig{Users: []string{"*"}, UserDetailURL: userDetail})
		for name, tok := range map[string]string{
			"garbage":    "not-a-token",
			"expired":    user("expired", map[string]any{"exp": time.Now().Add(-time.Hour).Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix()}),
			"unverified": user("unverified", map[string]any{"email_verified": false}),
		} {
			if r := exchange(t, br, tok); r.Status != 401 && r.Status != 403 {
				t.Errorf("%s: %d %s", name, r.Status, r.Body)
			}
		}
		if n := sb.Requests(); n != 0 {
			t.Fatalf("%d requests reached Spotnana", n)
		}
	})

	t.Run("allowed_token_clients: an unlisted client is 403", func(t *testing.T) {
		sb := newSandbox(sw, spotnana.SandboxConfig{Users: []string{"*"}, UserDetailURL: userDetail})
		r := exchange(t, br, user("carol", map[string]any{"azp": "other-app"}))
		if r.Status != 403 || r.JSON(t)["error"] != "access_denied" {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
		r = exchange(t, br, user("carol", map[string]any{"azp": nil, "client_id": "other-app"}))
		if r.Status != 403 {
			t.Fatalf("client_id other-app: %d %s", r.Status, r.Body)
		}
		if n := sb.Requests(); n != 0 {
			t.Fatalf("%d requests reached Spotnana for an unlisted client", n)
		}
		wantTokens(t, exchange(t, br, user("carol", nil)))
		// Okta names the client in cid, Entra v1 in appid (client_id_claims' default).
		wantTokens(t, exchange(t, br, user("gina", map[string]any{"azp": nil, "cid": "travel-app"})))
		wantTokens(t, exchange(t, br, user("hank", map[string]any{"azp": nil, "appid": "travel-app"})))
	})

	t.Run("two 429s, then success after waiting Retry-After", func(t *testing.T) {
		sb := newSandbox(sw, spotnana.SandboxConfig{Users: []string{"*"}, UserDetailURL: userDetail, Burst429: 2, RetryAfter: time.Second})
		start := time.Now()
		wantTokens(t, exchange(t, br, user("dave", nil)))
		t.Logf("exchange after two 429s took %v", time.Since(start).Round(time.Millisecond))
		if n := sb.Requests(); n != 3 {
			t.Fatalf("%d requests, want 3", n)
		}
		if c := strings.Count(br.Logs(), `"spotnana request failed, retrying"`); c < 2 {
			t.Fatalf("%d retry lines in the bridge's log, want 2", c)
		}
		if !regexp.MustCompile(`"status":429,"wait_ms":1000[,}]`).MatchString(br.Logs()) {
			t.Fatalf("the log does not show the 1s Retry-After being honoured:\n%s", br.Logs())
		}
	})

	t.Run("5xx beyond the retries is 503", func(t *testing.T) {
		sb := newSandbox(sw, spotnana.SandboxConfig{Users: []string{"*"}, UserDetailURL: userDetail, FailRate: 1})
		r := exchange(t, br, user("erin", nil))
		if r.Status != 503 || r.Header.Get("Retry-After") == "" || r.JSON(t)["error"] != "temporarily_unavailable" {
			t.Fatalf("got %d %v %s", r.Status, r.Header, r.Body)
		}
		if n := sb.Requests(); n != 3 {
			t.Fatalf("%d requests, want 1 + max_retries = 3", n)
		}
	})

	t.Run("50 concurrent exchanges for 5 users: at most 5 Spotnana calls", func(t *testing.T) {
		// The latency keeps the first calls in flight while the others arrive.
		sb := newSandbox(sw, spotnana.SandboxConfig{Users: []string{"*"}, UserDetailURL: userDetail, Latency: 300 * time.Millisecond})
		toks := make([]string, 5)
		for i := range toks {
			toks[i] = user(fmt.Sprintf("crowd%d", i), nil)
		}
		var wg sync.WaitGroup
		var failed atomic.Int64
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if r := exchange(t, br, toks[i%5]); r.Status != 200 {
					failed.Add(1)
				}
			}(i)
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.Fatalf("%d exchanges failed", failed.Load())
		}
		if n := sb.Requests(); n > 5 {
			t.Fatalf("%d Spotnana calls for 5 users, want at most 5", n)
		}
	})

	t.Run("no secret or token in the log", func(t *testing.T) {
		noSecretsIn(t, "the bridge", br.Logs())
	})
}

// TestExchangeSpotnanaDown: nothing listens at token_url.
func TestExchangeSpotnanaDown(t *testing.T) {
	is := newIssuer(t)
	dead := "http://" + freePort(t) + spotnana.SandboxTokenPath
	br := startBridgeFile(t, exchangeConfig(t, "127.0.0.1:0", is.URL(), dead, "  max_retries: 1\n"))
	r := exchange(t, br, mint(t, is, nil))
	if r.Status != 503 || r.Header.Get("Retry-After") == "" || r.JSON(t)["error"] != "temporarily_unavailable" {
		t.Fatalf("got %d %v %s, want 503 with Retry-After", r.Status, r.Header, r.Body)
	}
}

// TestExchangeCallbackIsPinned: with an introspection provider that caches nothing, the
// exchange and Spotnana's user-detail callback together cost one introspection call:
// the callback is answered from the identity pinned for the exchange.
func TestExchangeCallbackIsPinned(t *testing.T) {
	idp := idptest.New(t, idptest.Active(map[string]any{
		"sub": "u-alice", "email": "alice@example.com", "email_verified": true, "client_id": "travel-app",
		"exp": time.Now().Add(time.Hour).Unix(),
	}))
	srv, sw := inProcessSandbox(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "spotnana.secret"), []byte(testClientSecret), 0o600)
	cfg := filepath.Join(dir, "idbridge.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
server: {listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0}
log: {level: debug, format: json}
providers:
  - name: corp-introspection
    type: introspection
    endpoint: %s
    client_id: idbridge
    client_secret: introspection-secret
    client_ids: [travel-app]
    cache_ttl: 0s
    negative_cache_ttl: 0s
mapping:
  email:
    - path: email
      when: {path: email_verified, equals: true}
spotnana:
  token_url: %s
  client_id: %s
  client_secret: ${file:spotnana.secret}
  token_cache: false
`, idp.URL, srv.URL+spotnana.SandboxTokenPath, testClientID)), 0o600)
	br := startBridgeFile(t, cfg)
	sb := newSandbox(sw, spotnana.SandboxConfig{Users: []string{"alice@example.com"}, UserDetailURL: br.URL + "/v1/user-detail"})

	const opaque = "2YotnFZFEjr1zCsicMWpAA-opaque-user-token"
	before := idp.Hits()
	wantTokens(t, exchange(t, br, opaque))
	if n := idp.Hits() - before; n != 1 {
		t.Fatalf("%d introspection calls for one exchange and its callback, want 1", n)
	}
	if sb.Requests() != 1 {
		t.Fatal("the sandbox did not call user-detail back")
	}
	eventually(t, "the user-detail callback is logged", func() bool {
		return strings.Contains(br.Logs(), `"route":"user_detail"`)
	})
	// Outside an exchange nothing is pinned and caching is off: each call introspects.
	before = idp.Hits()
	do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(opaque))
	if n := idp.Hits() - before; n != 1 {
		t.Fatalf("a plain user-detail call made %d introspection calls, want 1", n)
	}
	noSecretsIn(t, "the bridge", br.Logs(), opaque, "introspection-secret")
}

// TestSandboxHelpListsEveryFlag: every flag SandboxFlags registers is documented.
func TestSandboxHelpListsEveryFlag(t *testing.T) {
	code, out, errOut := runCLI(t, "", "sandbox", "--help")
	if code != 0 {
		t.Fatalf("sandbox --help: exit %d", code)
	}
	help := out + errOut
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	spotnana.SandboxFlags(fs)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if !strings.Contains(help, "-"+f.Name+" ") && !strings.Contains(help, "-"+f.Name+"\n") {
			t.Errorf("--help does not list -%s", f.Name)
		}
		if f.Usage != "" && !strings.Contains(help, f.Usage) {
			t.Errorf("--help does not document -%s", f.Name)
		}
	})
	if n < 10 {
		t.Fatalf("only %d sandbox flags found", n)
	}
}
