package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/idbridge/idbridge/demoissuer"
	"github.com/idbridge/idbridge/test/browsertest"
)

// ScreenshotEnv, set to 1, makes TestPlaygroundInBrowser write the README's screenshot
// (docs/playground.png) instead of a temporary file.
const screenshotEnv = "IDBRIDGE_UPDATE_SCREENSHOT"

// clear empties a textarea without an input event: the keys typed next send it.
func clear(id string) chromedp.Action[chromedp.Void] {
	ev := chromedp.Evaluate[any](`document.getElementById(` + strconv.Quote(id) + `).value = ""`)
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := ev(ctx, t)
		return chromedp.Void{}, err
	}
}

// TestPlaygroundInBrowser drives the mapping playground of a running `idbridge serve` in
// headless Chromium: typing a document and rules updates the email and the trace; a
// pasted token is flagged UNVERIFIED; "resolve" runs it through the real chain; no token
// reaches a URL or a log line; the page's CSP holds (no violation in the console).
func TestPlaygroundInBrowser(t *testing.T) {
	is, err := demoissuer.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	defer is.Close()
	br := startBridge(t, fmt.Sprintf(`
server: {listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0}
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
`, is.URL()))

	b := browsertest.Start(t)
	tab := b.NewTab(t)
	if err := chromedp.Do(tab.Ctx, chromedp.Navigate(br.Admin+"/playground")); err != nil {
		t.Fatal(err)
	}
	// The page starts with the running config's rules.
	tab.Eventually(t, `document.getElementById("rules").value.includes("email_verified")`, 10*time.Second)

	// Type a document and new rules, as an integrator would.
	doc := `{"sub":"bob","upn":"Bob@Corp.Example.LOCAL","email":"bob@example.com","email_verified":false}`
	rules := "email:\n- path: upn\n  transforms: [lower]\nrewrite_domains: {corp.example.local: example.com}\nallowed_domains: [example.com]\n"
	if err := chromedp.Do(tab.Ctx,
		chromedp.SendKeys(chromedp.ID("input"), doc),
		clear("rules"),
		chromedp.SendKeys(chromedp.ID("rules"), rules),
	); err != nil {
		t.Fatal(err)
	}
	tab.Eventually(t, `document.getElementById("email").textContent === "bob@example.com"`, 10*time.Second)
	trace, err := chromedp.Run(tab.Ctx, chromedp.Text(chromedp.ID("trace")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"candidate 0: path upn", `lower: "bob@corp.example.local"`, "rewrite_domains: corp.example.local -> example.com", "won"} {
		if !strings.Contains(trace, want) {
			t.Errorf("trace lacks %q:\n%s", want, trace)
		}
	}
	// The suggestions flag the unverified email.
	tab.Eventually(t, `document.getElementById("suggestions").textContent.includes("unverified")`, 5*time.Second)

	shot := filepath.Join(t.TempDir(), "playground.png")
	if os.Getenv(screenshotEnv) == "1" {
		shot = filepath.Join("..", "docs", "playground.png")
	}
	tab.Screenshot(t, shot)

	// A refused domain names itself and the allowed list.
	if err := chromedp.Do(tab.Ctx, clear("rules"),
		chromedp.SendKeys(chromedp.ID("rules"), "email:\n- path: upn\n  transforms: [lower]\nallowed_domains: [example.org]\n")); err != nil {
		t.Fatal(err)
	}
	tab.Eventually(t, `document.getElementById("trace").textContent.includes('domain "corp.example.local" not allowed (allowed_domains: example.org)') && document.getElementById("email").textContent === "-"`, 10*time.Second)

	// A pasted token: decoded UNVERIFIED in the page, resolved through the chain.
	tok, err := is.Mint(map[string]any{"sub": "carol", "aud": "idbridge", "email": "carol@example.com", "email_verified": true})
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tab.Ctx,
		clear("input"),
		chromedp.SendKeys(chromedp.ID("input"), tok),
		clear("rules"),
		chromedp.SendKeys(chromedp.ID("rules"), "email:\n- path: email\n  when: {path: email_verified, equals: true}\n"),
	); err != nil {
		t.Fatal(err)
	}
	tab.Eventually(t, `!document.getElementById("unverified").hidden && document.getElementById("email").textContent === "carol@example.com"`, 10*time.Second)
	if err := chromedp.Do(tab.Ctx, chromedp.Click(chromedp.ID("resolve"))); err != nil {
		t.Fatal(err)
	}
	tab.Eventually(t, `document.getElementById("verdicts").textContent === "corp: accepted"`, 10*time.Second)
	// The verified document replaced the token: no more UNVERIFIED banner.
	tab.Eventually(t, `document.getElementById("unverified").hidden && document.getElementById("email").textContent === "carol@example.com"`, 10*time.Second)

	// Chromium's own background requests aside (they go nowhere: the proxy refuses
	// them), the page asks only for its own assets and API, and never puts a token in a URL.
	for _, u := range b.URLs() {
		if strings.Contains(u, tok[:40]) || strings.Contains(u, "127.0.0.1") && !strings.HasPrefix(u, br.Admin+"/playground") {
			t.Errorf("the page requested %s: only its own admin URLs, never a token", u)
		}
	}
	for _, l := range tab.Console() {
		if strings.Contains(l, "Content Security Policy") || strings.HasPrefix(l, "exception") {
			t.Errorf("console: %s", l)
		}
	}
	if strings.Contains(br.settledLogs(t), tok[:40]) {
		t.Errorf("the bridge logged the pasted token")
	}
}
