package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/idbridge/idbridge/app"
	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/demoissuer"
	"github.com/idbridge/idbridge/spotnana"

	"github.com/idbridge/idbridge/internal/loopback"
)

// The demo's fixed identities. The client secret is not among them: each run makes a
// random one, so that the demo shows a secret travelling by reference, never in the file.
const (
	demoUser     = "alice@example.com"
	demoUser2    = "bob@example.com"
	demoClientID = "idbridge-demo"
	demoConfig   = "configs/demo.yaml (embedded)"
)

// demoOptions are the demo's flags.
type demoOptions struct {
	once                                 bool
	issuerAddr, listen, admin, sandboxAt string
	appAt, embedAt                       string
}

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", stderr)
	var o demoOptions
	fs.BoolVar(&o.once, "once", false, "exit 0 after the exchange instead of serving until Ctrl-C (scripts, CI)")
	fs.StringVar(&o.issuerAddr, "issuer-listen", "127.0.0.1:9400", "address of the demo OIDC issuer (a busy port falls back to a free one)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address of the bridge's API listener (a busy port falls back to a free one)")
	fs.StringVar(&o.admin, "admin-listen", "127.0.0.1:9090", "address of the bridge's admin listener (a busy port falls back to a free one)")
	fs.StringVar(&o.sandboxAt, "sandbox-listen", "127.0.0.1:8090", "address of the Spotnana sandbox (a busy port falls back to a free one)")
	fs.StringVar(&o.appAt, "app-listen", "127.0.0.1:3000", "address of the company page, opened as http://localhost:PORT/ (a busy port falls back to a free one)")
	fs.StringVar(&o.embedAt, "embed-listen", "127.0.0.1:8091", "address of the sandbox's Spotnana iframe (a busy port falls back to a free one)")
	if !parseArgs(fs, args) {
		return exitUsage
	}
	for _, a := range []struct{ flag, addr string }{{"issuer-listen", o.issuerAddr}, {"listen", o.listen}, {"admin-listen", o.admin}, {"sandbox-listen", o.sandboxAt}, {"app-listen", o.appAt}, {"embed-listen", o.embedAt}} {
		if err := loopbackOnly(a.addr); err != nil {
			fmt.Fprintf(stderr, "idbridge demo: --%s: %v\n", a.flag, err)
			return exitUsage
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := runDemo(ctx, o, stdout); err != nil {
		fmt.Fprintf(stderr, "idbridge demo: %v\n", err)
		return exitRuntime
	}
	return exitOK
}

// loopbackOnly refuses any address but a loopback one: the demo's issuer signs whatever
// it is asked to, and must never be reachable from another machine.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if !loopback.Host(host) {
		return fmt.Errorf("%q is not a loopback address", addr)
	}
	return nil
}

// fallbackAddr is addr's host with port 0: a free port chosen by the kernel.
func fallbackAddr(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, "0")
}

// listenOrFree listens on addr, or on a free port of the same host when addr is busy.
func listenOrFree(addr string) (net.Listener, bool, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, false, nil
	}
	ln, err2 := net.Listen("tcp", fallbackAddr(addr))
	if err2 != nil {
		return nil, false, fmt.Errorf("listen %s: %v; and on a free port: %w", addr, err, err2)
	}
	return ln, true, nil
}

// freeOrFallback returns addr when it can be bound now, else the host with port 0. The
// bridge binds its own listeners, so this probe leaves a short race; if it is lost, the
// bridge reports the busy address and the demo says so.
func freeOrFallback(addr string) (string, bool) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fallbackAddr(addr), true
	}
	ln.Close()
	return addr, false
}

// callback is what the demo saw of Spotnana's user-detail call.
type callback struct {
	method, path string
	status       int
	body         []byte
}

// watchTransport records the sandbox's outbound calls (its user-detail callback) so that
// the demo can show the step that otherwise happens out of sight. It keeps the answer
// body (an email, never a token); the request's Authorization header is not kept.
type watchTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []callback
}

func (w *watchTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := w.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr == nil {
		w.mu.Lock()
		w.seen = append(w.seen, callback{method: r.Method, path: r.URL.Path, status: resp.StatusCode, body: body})
		w.mu.Unlock()
	}
	return resp, nil
}

func (w *watchTransport) calls() []callback {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]callback(nil), w.seen...)
}

// demoPrinter numbers the steps.
type demoPrinter struct {
	w    io.Writer
	step int
}

func (p *demoPrinter) stepf(format string, args ...any) {
	p.step++
	fmt.Fprintf(p.w, "\n%d. %s\n", p.step, fmt.Sprintf(format, args...))
}

func (p *demoPrinter) linef(format string, args ...any) {
	fmt.Fprintf(p.w, "   %s\n", fmt.Sprintf(format, args...))
}

func runDemo(ctx context.Context, o demoOptions, stdout io.Writer) (err error) {
	p := &demoPrinter{w: stdout}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The folder holds the logs, the demo token and the client secret, each 0600, so
	// that the curl lines can say $(cat FILE) instead of printing a credential.
	dir, err := os.MkdirTemp("", "idbridge-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logFile, err := os.OpenFile(filepath.Join(dir, "idbridge.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	logger := slog.New(slog.NewJSONHandler(logFile, nil))

	fmt.Fprintln(stdout, "idbridge demo: a demo OIDC issuer, the bridge and the Spotnana sandbox, all on loopback.")

	// The issuer.
	// Minted tokens default to what the demo's provider accepts (aud idbridge); the body
	// of a mint request overrides any claim.
	mint := demoissuer.WithMintEndpoint(map[string]any{"aud": "idbridge", "scope": "openid email"})
	issuer, err := demoissuer.NewIssuer(demoissuer.WithAddr(o.issuerAddr), mint)
	issuerMoved := false
	if err != nil {
		issuerMoved = true
		if issuer, err = demoissuer.NewIssuer(demoissuer.WithAddr(fallbackAddr(o.issuerAddr)), mint); err != nil {
			return fmt.Errorf("demo issuer: %w", err)
		}
	}
	defer issuer.Close()

	// The sandbox's listener comes first: the bridge's config needs its URL.
	sbLn, sbMoved, err := listenOrFree(o.sandboxAt)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer sbLn.Close()
	sandboxURL := "http://" + sbLn.Addr().String()
	// The browser half: the company page (its origin goes into the bridge's CORS list
	// and the iframe's allowed origins) and the sandbox's iframe, on origins of their own.
	appLn, appMoved, err := listenOrFree(o.appAt)
	if err != nil {
		return fmt.Errorf("company page: %w", err)
	}
	defer appLn.Close()
	embedLn, embedMoved, err := listenOrFree(o.embedAt)
	if err != nil {
		return fmt.Errorf("sandbox iframe: %w", err)
	}
	defer embedLn.Close()

	listen, listenMoved := freeOrFallback(o.listen)
	admin, adminMoved := freeOrFallback(o.admin)
	secret := rand.Text()
	env := map[string]string{
		"IDBRIDGE_DEMO_LISTEN":        listen,
		"IDBRIDGE_DEMO_ADMIN":         admin,
		"IDBRIDGE_DEMO_ISSUER":        issuer.URL(),
		"IDBRIDGE_DEMO_SANDBOX":       sandboxURL,
		"IDBRIDGE_DEMO_CLIENT_SECRET": secret,
		"IDBRIDGE_DEMO_APP_ORIGIN":    appOrigin(appLn),
	}
	reg := registry()
	cfg, errs := configs.Parse(demoConfig, configs.Demo, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, reg.SecretKeys()...)
	if cfg == nil || len(errs.Fatal()) > 0 {
		return fmt.Errorf("the embedded config is invalid (a bug): %v", errs.Fatal())
	}
	plan, errs := app.Load(cfg, reg, logger)
	if len(errs.Fatal()) > 0 {
		plan.Close()
		return fmt.Errorf("the embedded config is invalid (a bug): %v", errs.Fatal())
	}

	// The bridge, in-process, exactly as `idbridge serve` runs it.
	type addrs struct{ main, admin string }
	ready := make(chan addrs, 1)
	served := make(chan error, 1)
	go func() {
		served <- app.Serve(ctx, plan, app.ServeOptions{Registry: reg, Logger: logger, Version: shortVersion(),
			Ready:      func(m, a string) { ready <- addrs{m, a} },
			Playground: playgroundOptions(cfg, "")})
	}()
	var bridgeAt addrs
	select {
	case bridgeAt = <-ready:
	case err := <-served:
		return fmt.Errorf("bridge: %w", err)
	case <-ctx.Done():
		return nil
	}
	defer func() {
		cancel()
		if serr := <-served; serr != nil && err == nil {
			err = fmt.Errorf("bridge: %w", serr)
		}
	}()
	bridgeURL := "http://" + bridgeAt.main
	adminURL := "http://" + bridgeAt.admin

	// The sandbox, calling back the bridge's user-detail route.
	watch := &watchTransport{next: http.DefaultTransport.(*http.Transport).Clone()}
	sb := spotnana.NewSandbox(spotnana.SandboxConfig{
		ClientID:      demoClientID,
		ClientSecret:  secret,
		Users:         []string{demoUser, demoUser2},
		Mode:          spotnana.SandboxModeCallback,
		UserDetailURL: bridgeURL + cfg.Server.UserDetailPath,
		HTTPClient:    &http.Client{Transport: watch, Timeout: 10 * time.Second},
		Logger:        logger.With("component", "sandbox"),
	})
	sbDone := make(chan error, 1)
	go func() { sbDone <- serveHandler(ctx, sbLn, sb, logger) }()
	defer func() { cancel(); <-sbDone }()
	embedURL, pageURL, browserDone, err := serveBrowserHalf(ctx, sb, issuer, embedLn, appLn, bridgeURL, *cfg.Server.ExchangePath, logger)
	if err != nil {
		return err
	}
	defer func() { cancel(); browserDone() }()

	moved := func(b bool, want string) string {
		if b {
			return fmt.Sprintf("   (%s was busy: a free port instead)", want)
		}
		return ""
	}
	fmt.Fprintln(stdout, "\nListening (loopback only):")
	fmt.Fprintf(stdout, "   demo issuer      %s%s\n", issuer.URL(), moved(issuerMoved, o.issuerAddr))
	fmt.Fprintf(stdout, "   bridge           %s%s\n", bridgeURL, moved(listenMoved, o.listen))
	fmt.Fprintf(stdout, "   bridge admin     %s%s\n", adminURL, moved(adminMoved, o.admin))
	fmt.Fprintf(stdout, "   playground       %s/playground (the mapping playground)\n", adminURL)
	fmt.Fprintf(stdout, "   Spotnana sandbox %s%s\n", sandboxURL, moved(sbMoved, o.sandboxAt))
	fmt.Fprintf(stdout, "   Spotnana iframe  %s%s\n", embedURL, moved(embedMoved, o.embedAt))
	fmt.Fprintf(stdout, "   company page     %s%s\n", pageURL, moved(appMoved, o.appAt))
	fmt.Fprintf(stdout, "   config           %s; logs in %s\n", demoConfig, logFile.Name())

	// 1. A token, as the company's identity provider would issue it at login.
	token, err := issuer.Mint(map[string]any{
		"sub":            "alice",
		"aud":            "idbridge",
		"email":          demoUser,
		"email_verified": true,
		"name":           "Alice Example",
		"scope":          "openid email",
	})
	if err != nil {
		return err
	}
	tokenFile := filepath.Join(dir, "alice.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	secretFile := filepath.Join(dir, "client.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		return err
	}
	p.stepf("The demo issuer minted a token for %s (fingerprint %s, saved in %s). Its claims:", demoUser, spotnana.Fingerprint(token), tokenFile)
	if claims, err := jwtClaims(token); err == nil {
		for _, l := range strings.Split(claims, "\n") {
			p.linef("%s", l)
		}
	}

	// 2. The company's app asks the bridge for Spotnana tokens.
	exchangeURL := bridgeURL + *cfg.Server.ExchangePath
	p.stepf("The app sends the token to the bridge: POST %s (Authorization: Bearer <token %s>).", exchangeURL, spotnana.Fingerprint(token))
	p.linef("The bridge validates it against the issuer's keys, maps it to an email, and sends")
	p.linef("Spotnana's token exchange (RFC 8693) to %s.", cfg.Spotnana.TokenURL)
	hc := &http.Client{Timeout: 30 * time.Second}
	status, body, err := postBearer(ctx, hc, exchangeURL, token)
	if err != nil {
		return fmt.Errorf("exchange: %w", err)
	}

	// 3 and 4. Spotnana's callback, observed on the sandbox's side.
	var cb *callback
	for _, c := range watch.calls() {
		if c.path == cfg.Server.UserDetailPath {
			cb = &c
		}
	}
	if cb == nil {
		p.stepf("Spotnana (the sandbox) did not call user-detail back: the exchange failed first.")
	} else {
		p.stepf("While that request waits, Spotnana (the sandbox) calls the bridge back:")
		p.linef("%s %s%s (Authorization: Bearer <the same token>) -> %d", cb.method, bridgeURL, cb.path, cb.status)
		p.linef("answered from the identity the bridge pinned for this exchange (no second validation).")
		p.stepf("The bridge returns the email; Spotnana matches it to a profile:")
		p.linef("%s", strings.TrimSpace(string(cb.body)))
	}
	if status != http.StatusOK {
		p.stepf("The exchange failed: HTTP %d %s", status, strings.TrimSpace(string(body)))
		return fmt.Errorf("the exchange answered %d", status)
	}

	// 5. Spotnana's tokens, shown by fingerprint only.
	var tr struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		TokenType    string `json:"token_type"`
		ExpiresIn    int64  `json:"expires_in"`
		Scope        string `json:"scope"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return fmt.Errorf("the exchange answered 200 without a token")
	}
	p.stepf("Spotnana's tokens reach the app (HTTP 200, Cache-Control: no-store):")
	p.linef("token_type:    %s", tr.TokenType)
	p.linef("expires_in:    %d", tr.ExpiresIn)
	p.linef("scope:         %s", tr.Scope)
	p.linef("access_token:  <fingerprint %s>", spotnana.Fingerprint(tr.AccessToken))
	if tr.RefreshToken != "" {
		p.linef("refresh_token: <fingerprint %s>", spotnana.Fingerprint(tr.RefreshToken))
	}

	// 6. The token works at "Spotnana".
	who, err := getBearer(ctx, hc, sandboxURL+spotnana.SandboxWhoamiPath, tr.AccessToken)
	if err == nil {
		p.stepf("The app calls Spotnana with the access token: GET %s%s ->", sandboxURL, spotnana.SandboxWhoamiPath)
		p.linef("%s", strings.TrimSpace(string(who)))
	}

	fmt.Fprintln(stdout, "\nTry each step yourself (the token and the secret stay in 0600 files):")
	q := func(s string) string { return "'" + s + "'" }
	fmt.Fprintf(stdout, "   # what Spotnana asks: who is this token?\n")
	fmt.Fprintf(stdout, "   curl -s -H \"Authorization: Bearer $(cat %s)\" %s\n", tokenFile, q(bridgeURL+cfg.Server.UserDetailPath))
	fmt.Fprintf(stdout, "   # the exchange, as the company's app makes it\n")
	fmt.Fprintf(stdout, "   curl -s -X POST -H \"Authorization: Bearer $(cat %s)\" %s\n", tokenFile, q(exchangeURL))
	fmt.Fprintf(stdout, "   # a bad token is refused locally (401); Spotnana is never called\n")
	fmt.Fprintf(stdout, "   curl -s -i -X POST -H 'Authorization: Bearer not-a-real-token' %s\n", q(exchangeURL))
	fmt.Fprintf(stdout, "   # the request the bridge sends to Spotnana, made by hand\n")
	fmt.Fprintf(stdout, "   curl -s %s \\\n", q(cfg.Spotnana.TokenURL))
	fmt.Fprintf(stdout, "     -d grant_type=%s -d client_id=%s \\\n", spotnana.GrantTokenExchange, demoClientID)
	fmt.Fprintf(stdout, "     --data-urlencode \"client_secret=$(cat %s)\" --data-urlencode \"subject_token=$(cat %s)\" \\\n", secretFile, tokenFile)
	fmt.Fprintf(stdout, "     -d subject_token_type=%s -d scope=openid\n", spotnana.TokenTypeAccessToken)
	mintURL := q(issuer.URL() + demoissuer.MintPath)
	fmt.Fprintf(stdout, "   # mint test tokens at the demo issuer (loopback only; the JSON body's claims override aud=idbridge):\n")
	fmt.Fprintf(stdout, "   curl -s -X POST %s -d '{\"sub\":\"bob\",\"email\":\"%s\",\"email_verified\":true}' > bob.token\n", mintURL, demoUser2)
	fmt.Fprintf(stdout, "   curl -s -X POST '%s?ttl=-5m' -d '{\"sub\":\"bob\",\"email\":\"%s\",\"email_verified\":true}' > expired.token   # 401\n", issuer.URL()+demoissuer.MintPath, demoUser2)
	fmt.Fprintf(stdout, "   curl -s -X POST %s -d '{\"sub\":\"carol\",\"email\":\"carol@example.com\",\"email_verified\":false}' > custom.token   # 403: unverified\n", mintURL)
	fmt.Fprintf(stdout, "   curl -s -H \"Authorization: Bearer $(cat bob.token)\" %s\n", q(bridgeURL+cfg.Server.UserDetailPath))
	fmt.Fprintf(stdout, "   # health, readiness, metrics\n")
	fmt.Fprintf(stdout, "   curl -s %s\n", q(adminURL+"/readyz"))

	fmt.Fprintf(stdout, "\nIn the browser: open %s and sign in as alice: Spotnana's iframe (the sandbox's)\n", pageURL)
	fmt.Fprintln(stdout, "   shows her signed in. carol has no Spotnana profile (onError no_profile); the expired")
	fmt.Fprintln(stdout, "   token is refused by the bridge (onError unauthenticated).")

	if o.once {
		fmt.Fprintln(stdout, "\nDone (--once).")
		return nil
	}
	fmt.Fprintln(stdout, "\nServing until Ctrl-C.")
	<-ctx.Done()
	fmt.Fprintln(stdout, "Stopping.")
	return nil
}

// jwtClaims returns a JWT's payload, indented, without verifying it: the demo shows
// what it minted itself.
func jwtClaims(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return "", err
	}
	return out.String(), nil
}

func postBearer(ctx context.Context, hc *http.Client, url, token string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

func getBearer(ctx context.Context, hc *http.Client, url, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %d", url, resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}
