// Package oidcpeer starts a real OpenID Connect provider (the npm package oidc-provider)
// on a free loopback port, for tests that must talk to a real IdP rather than to a fake
// written by the same hands as the client.
//
// The first Start runs `npm ci` in this folder (node_modules/ is git-ignored and reused
// afterwards); each Start then launches peer.mjs with node. When node or npm is missing
// the test is skipped, unless IDBRIDGE_REQUIRE_SERVERS=1 (CI sets it), where it fails.
//
// The peer has three confidential clients sharing one random secret: ClientID (client
// secret basic), ClientIDPost (client_secret_post) and OtherClientID (basic; a different
// application of the same company). Tokens are minted over HTTP from Go through a
// test-only grant, without a browser; see peer.mjs for what each kind carries.
package oidcpeer

import (
	"github.com/idbridge/idbridge/internal/testenv"

	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireEnv names the variable that turns a skip for a missing node into a failure.
const RequireEnv = testenv.RequireEnv

// Client identifiers registered in peer.mjs.
const (
	ClientID      = "idbridge"      // client_secret_basic
	ClientIDPost  = "idbridge-post" // client_secret_post
	OtherClientID = "other-app"     // client_secret_basic; another application
)

// Resource indicators and the audiences their tokens carry.
const (
	OpaqueResource = "https://api.idbridge.test/opaque" // opaque token, aud OpaqueAudience
	OpaqueAudience = "idbridge-opaque"
	JWTResource    = "https://api.idbridge.test/jwt" // RFC 9068 JWT, aud JWTAudience
	JWTAudience    = "idbridge"
)

const testGrant = "urn:idbridge:params:oauth:grant-type:test-user"

// Peer is one running oidc-provider. It stops when the test that started it ends.
type Peer struct {
	issuer string
	secret string
	client *http.Client
}

// Issuer is the peer's issuer URL, http://127.0.0.1:PORT (also its base URL).
func (p *Peer) Issuer() string { return p.issuer }

// IntrospectionURL is the RFC 7662 endpoint.
func (p *Peer) IntrospectionURL() string { return p.issuer + "/token/introspection" }

// RevocationURL is the RFC 7009 endpoint.
func (p *Peer) RevocationURL() string { return p.issuer + "/token/revocation" }

// UserinfoURL is the OIDC userinfo endpoint.
func (p *Peer) UserinfoURL() string { return p.issuer + "/me" }

// JWKSURL is where the peer publishes its signing keys.
func (p *Peer) JWKSURL() string { return p.issuer + "/jwks" }

// TokenURL is the token endpoint.
func (p *Peer) TokenURL() string { return p.issuer + "/token" }

// ClientID is the client_secret_basic client; ClientIDPost the client_secret_post one.
func (p *Peer) ClientID() string { return ClientID }

// ClientIDPost is the client that authenticates with client_secret_post.
func (p *Peer) ClientIDPost() string { return ClientIDPost }

// Secret is every client's secret, random per peer.
func (p *Peer) Secret() string { return p.secret }

// MintOptions says what token to mint.
type MintOptions struct {
	Email string // required; the account is derived from it
	// EmailVerified defaults to true; set Unverified to make it false.
	Unverified bool
	// Resource is "" (an opaque token without audience, good at /me), OpaqueResource or
	// JWTResource.
	Resource string
	// Scope defaults to "openid email".
	Scope string
	// Client defaults to ClientID; OtherClientID mints a token of another application.
	Client string
}

// Token is a minted access token and what the token endpoint said about it.
type Token struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
}

// MintOpaque returns an opaque access token for email without an audience: introspection
// answers for it and /me accepts it.
func (p *Peer) MintOpaque(t testing.TB, email string) string {
	t.Helper()
	return p.Mint(t, MintOptions{Email: email}).AccessToken
}

// MintJWT returns an RFC 9068 access token (header typ at+jwt, signed RS256 with a key
// in JWKSURL) for email, with iss Issuer(), aud JWTAudience, client_id ClientID, scope
// "api:read", and the email and email_verified claims.
func (p *Peer) MintJWT(t testing.TB, email string) string {
	t.Helper()
	return p.Mint(t, MintOptions{Email: email, Resource: JWTResource, Scope: "api:read"}).AccessToken
}

// Mint asks the peer's test grant for a user token.
func (p *Peer) Mint(t testing.TB, o MintOptions) Token {
	t.Helper()
	form := url.Values{"grant_type": {testGrant}, "email": {o.Email}}
	if o.Unverified {
		form.Set("email_verified", "false")
	}
	if o.Resource != "" {
		form.Set("resource", o.Resource)
	}
	if o.Scope != "" {
		form.Set("scope", o.Scope)
	}
	client := o.Client
	if client == "" {
		client = ClientID
	}
	var tok Token
	p.post(t, p.TokenURL(), client, form, &tok)
	if tok.AccessToken == "" {
		t.Fatalf("oidcpeer: token endpoint returned no access_token")
	}
	return tok
}

// ClientCredentials returns a client_credentials access token of ClientID (refused by
// /me; introspectable when resource is "" or OpaqueResource).
func (p *Peer) ClientCredentials(t testing.TB, resource string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if resource != "" {
		form.Set("resource", resource)
		form.Set("scope", "api:read")
	}
	var tok Token
	p.post(t, p.TokenURL(), ClientID, form, &tok)
	return tok.AccessToken
}

// Revoke revokes token (RFC 7009) as ClientID.
func (p *Peer) Revoke(t testing.TB, token string) {
	t.Helper()
	p.post(t, p.RevocationURL(), ClientID, url.Values{"token": {token}}, nil)
}

func (p *Peer) post(t testing.TB, endpoint, client string, form url.Values, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatalf("oidcpeer: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(client), url.QueryEscape(p.secret))
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("oidcpeer: POST %s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("oidcpeer: POST %s: %s: %s", endpoint, resp.Status, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("oidcpeer: POST %s: %v", endpoint, err)
		}
	}
}

// Start installs oidc-provider if needed, starts a peer and stops it when t ends.
func Start(t testing.TB) *Peer {
	t.Helper()
	dir, err := sourceDir()
	if err != nil {
		unavailable(t, err.Error())
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			unavailable(t, tool+" not found in PATH")
		}
	}
	if err := install(dir); err != nil {
		t.Fatalf("oidcpeer: %v", err)
	}

	secret := randomHex(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "node", "peer.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "IDBRIDGE_PEER_SECRET="+secret, "NODE_NO_WARNINGS=1")
	stdin, err := cmd.StdinPipe() // closed when we stop: the peer exits on EOF
	if err != nil {
		t.Fatalf("oidcpeer: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("oidcpeer: %v", err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("oidcpeer: start node: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			cancel() // kills node
			<-done
		}
		cancel()
		if t.Failed() {
			t.Logf("oidcpeer stderr:\n%s", stderr.String())
		}
	})

	type hello struct {
		Issuer string `json:"issuer"`
	}
	lines := make(chan hello, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var h hello
		if sc.Scan() {
			_ = json.Unmarshal(sc.Bytes(), &h)
		}
		lines <- h
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case h := <-lines:
		if h.Issuer == "" {
			t.Fatalf("oidcpeer: node exited before listening:\n%s", stderr.String())
		}
		return &Peer{issuer: h.Issuer, secret: secret, client: &http.Client{Timeout: 10 * time.Second}}
	case <-time.After(30 * time.Second):
		t.Fatalf("oidcpeer: node did not start within 30s:\n%s", stderr.String())
	}
	return nil
}

// unavailable skips t, or fails it where CI requires the real servers.
func unavailable(t testing.TB, why string) {
	t.Helper()
	testenv.SkipOrFail(t, "oidcpeer: %s; skipping the real-peer test", why)
}

// install runs `npm ci` once: again only when package-lock.json is newer than the
// installed tree's marker. An flock serializes installs across the test binaries that
// `go test ./...` runs in parallel (and across goroutines: each open is its own lock).
func install(dir string) error {
	lockFile, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		// A read-only checkout: use whatever is installed.
		if _, statErr := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json")); statErr == nil {
			return nil
		}
		return fmt.Errorf("lock %s: %w", dir, err)
	}
	defer lockFile.Close()
	if err := syscall.Flock(int(lockFile.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", dir, err)
	}
	defer func() { _ = syscall.Flock(int(lockFile.Fd()), syscall.LOCK_UN) }()

	marker := filepath.Join(dir, "node_modules", ".idbridge-installed")
	lock, err := os.Stat(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return err
	}
	if m, err := os.Stat(marker); err == nil && !m.ModTime().Before(lock.ModTime()) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm ci in %s: %w\n%s", dir, err, out.String())
	}
	return os.WriteFile(marker, []byte("npm ci done\n"), 0o644)
}

// sourceDir finds this package's folder, whatever the working directory of the test
// binary that imports it.
func sourceDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the oidcpeer sources")
	}
	dir := filepath.Dir(file)
	if _, err := os.Stat(filepath.Join(dir, "peer.mjs")); err != nil {
		return "", fmt.Errorf("peer.mjs not found next to %s", file)
	}
	return dir, nil
}

func randomHex(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("oidcpeer: %v", err)
	}
	return hex.EncodeToString(b)
}

// lockedBuffer collects node's stderr while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
