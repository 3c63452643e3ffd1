package test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idbridge/idbridge/demoissuer"
	"github.com/idbridge/idbridge/spotnana"
)

// Latency overhead of the bridge: one token exchange through `idbridge serve` (local
// validation, the pin, then Spotnana's call and its user-detail callback) against the
// same exchange sent straight to the sandbox (which still calls the bridge's user-detail
// back). token_cache is off so that every exchange reaches the sandbox. Compare:
//
//	go test ./test/ -run '^$' -bench 'Exchange(ThroughBridge|Direct)' -benchtime 2s
//
// ratio = ns/op(ThroughBridge) / ns/op(Direct).

// benchEnv is an issuer, a bridge process and an in-process sandbox wired together.
type benchEnv struct {
	bridgeURL, tokenURL, token string
	hc                         *http.Client
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	is, err := demoissuer.NewIssuer()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(is.Close)
	sw := &swapHandler{}
	srv := httptest.NewServer(sw)
	b.Cleanup(srv.Close)

	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "spotnana.secret"), []byte(testClientSecret), 0o600)
	cfg := filepath.Join(dir, "idbridge.yaml")
	os.WriteFile(cfg, []byte(`
server: {listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0}
log: {level: info, format: json}
providers:
  - name: corp
    type: jwt
    issuer: `+is.URL()+`
    audiences: [idbridge]
mapping:
  email:
    - path: email
      when: {path: email_verified, equals: true}
spotnana:
  token_url: `+srv.URL+spotnana.SandboxTokenPath+`
  client_id: `+testClientID+`
  client_secret: ${file:spotnana.secret}
  token_cache: false
`), 0o600)

	cmd := exec.Command(binary, "serve", "--config", cfg)
	// Logging stays at info, as in production: one request line per call. The reader
	// below keeps draining it so that the bridge never blocks on a full pipe.
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m struct{ Msg, Listen string }
			if json.Unmarshal(sc.Bytes(), &m) == nil && m.Msg == "idbridge serving" {
				addr <- m.Listen
			}
		}
	}()
	env := &benchEnv{tokenURL: srv.URL + spotnana.SandboxTokenPath, hc: &http.Client{Timeout: 30 * time.Second}}
	select {
	case a := <-addr:
		env.bridgeURL = "http://" + a
	case <-time.After(20 * time.Second):
		b.Fatal("the bridge did not start")
	}
	sw.set(spotnana.NewSandbox(spotnana.SandboxConfig{
		ClientID: testClientID, ClientSecret: testClientSecret, Users: []string{"*"},
		UserDetailURL: env.bridgeURL + "/v1/user-detail",
	}))
	if env.token, err = is.Mint(map[string]any{"sub": "u-alice", "aud": "idbridge", "email": "alice@example.com", "email_verified": true}); err != nil {
		b.Fatal(err)
	}
	return env
}

func (e *benchEnv) send(b *testing.B, req *http.Request) {
	resp, err := e.hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

func BenchmarkExchangeThroughBridge(b *testing.B) {
	e := newBenchEnv(b)
	for b.Loop() {
		req, _ := http.NewRequest("POST", e.bridgeURL+"/v1/token-exchange", nil)
		req.Header.Set("Authorization", "Bearer "+e.token)
		e.send(b, req)
	}
}

func BenchmarkExchangeDirect(b *testing.B) {
	e := newBenchEnv(b)
	form := url.Values{
		"grant_type":         {spotnana.GrantTokenExchange},
		"client_id":          {testClientID},
		"client_secret":      {testClientSecret},
		"subject_token":      {e.token},
		"subject_token_type": {spotnana.TokenTypeAccessToken},
		"scope":              {spotnana.ScopeOpenID},
	}.Encode()
	for b.Loop() {
		req, _ := http.NewRequest("POST", e.tokenURL, strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		e.send(b, req)
	}
}
