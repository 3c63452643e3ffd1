package test

import (
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/idbridge/idbridge/demoissuer"
	"github.com/idbridge/idbridge/spotnana"
	"github.com/idbridge/idbridge/test/browsertest"
	"github.com/idbridge/idbridge/web"
)

// Browser tests: Spotnana's iframe integration in a real Chromium, through the real
// binaries. A company page (served by the test) imports idbridge's embed script from
// `idbridge serve` and mounts `idbridge sandbox`'s iframe; the page, the bridge, the
// iframe and a foreign frame each live on an origin of their own.

// companyPage is a test company page on its own origin, http://localhost:PORT. Its
// getToken answers the token the test set. Its origin is known before the URLs it
// needs, which come from servers that must know the origin first.
type companyPage struct {
	srv    *httptest.Server
	Origin string

	mu                              sync.Mutex
	bridgeURL, embedURL, foreignURL string
	token                           string
}

func newCompanyPage(t *testing.T) *companyPage {
	t.Helper()
	p := &companyPage{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, companyPageHTML, html.EscapeString(p.bridgeURL+web.ScriptPath),
				jsString(p.embedURL), jsString(p.bridgeURL+"/v1/token-exchange"), jsString(p.foreignURL))
		case "/token":
			w.Header().Set("Cache-Control", "no-store")
			fmt.Fprint(w, p.token)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.srv.Close)
	_, port, _ := net.SplitHostPort(p.srv.Listener.Addr().String())
	p.Origin = "http://localhost:" + port
	return p
}

func (p *companyPage) setToken(tok string) {
	p.mu.Lock()
	p.token = tok
	p.mu.Unlock()
}

func jsString(s string) string { b, _ := json.Marshal(s); return string(b) }

// companyPageHTML mounts Spotnana as the README tells a company to, records onError
// calls in window.errors, and, when given a foreign URL, adds a frame from another
// origin after Spotnana's.
const companyPageHTML = `<!doctype html>
<title>company page</title>
<div id="spotnana" style="width:900px;height:480px"></div>
<script type="module">
import { mountSpotnana } from "%s";
window.errors = [];
window.handle = mountSpotnana({
  container: document.getElementById("spotnana"),
  embedUrl: %s,
  orgId: "test-org",
  exchangeUrl: %s,
  getToken: async () => (await fetch("/token", { method: "POST" })).text(),
  onError: (e) => window.errors.push(e),
});
const foreign = %s;
if (foreign) {
  const f = document.createElement("iframe");
  f.src = foreign;
  document.body.append(f);
}
window.mounted = true;
</script>`

// foreignPage pretends to be Spotnana's iframe towards the company page (asking it for
// tokens) and the company page towards Spotnana's iframe (forging an answer), when the
// test calls attack(). It records every message it receives.
const foreignPage = `<!doctype html>
<title>foreign</title>
<script>
window.received = [];
window.addEventListener("message", (e) => window.received.push(e.data));
window.attack = () => {
  for (let i = 0; i < 3; i++) {
    parent.postMessage({ type: "TOKEN_EXCHANGE_REQUEST", from: "spotnana-embed" }, "*");
  }
  parent.frames[0].postMessage({ type: "TOKEN_EXCHANGE_RESPONSE",
    payload: { accessToken: "forged.forged.forged", refreshToken: "forged" } }, "*");
  return true;
};
</script>`

// browserEnv is the whole topology of one browser test.
type browserEnv struct {
	is       *demoissuer.Issuer
	br       *bridge
	sb       *sandboxProc
	embedURL string
	// page is allowed everywhere; stranger only by the sandbox (not the bridge's CORS);
	// unframed only by the bridge (not the sandbox); foreign is nobody's.
	page, stranger, unframed *companyPage
	foreign                  *httptest.Server
	b                        *browsertest.Browser
}

func newBrowserEnv(t *testing.T) *browserEnv {
	t.Helper()
	env := &browserEnv{b: browsertest.Start(t)}
	env.is = newIssuer(t)
	env.foreign = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, foreignPage)
	}))
	t.Cleanup(env.foreign.Close)

	listen := freePort(t)
	bridgeURL := "http://" + listen
	env.page, env.stranger, env.unframed = newCompanyPage(t), newCompanyPage(t), newCompanyPage(t)

	env.sb = startSandbox(t, "--user-detail-url", bridgeURL+"/v1/user-detail", "--users", "alice@example.com",
		"--embed-listen", "127.0.0.1:0", "--embed-allowed-origins", env.page.Origin+","+env.stranger.Origin)
	env.embedURL = embedURLOf(t, env.sb)
	for _, p := range []*companyPage{env.page, env.stranger, env.unframed} {
		p.mu.Lock()
		p.bridgeURL, p.embedURL = bridgeURL, env.embedURL
		if p == env.page {
			p.foreignURL = env.foreign.URL + "/foreign"
		}
		p.mu.Unlock()
	}
	cfg := exchangeConfig(t, listen, env.is.URL(), env.sb.URL+spotnana.SandboxTokenPath, "")
	addCORS(t, cfg, env.page.Origin, env.unframed.Origin)
	env.br = startBridgeFile(t, cfg)
	return env
}

// embedURLOf waits for the line where `idbridge sandbox --embed-listen` names its
// iframe page, and returns the page's URL.
func embedURLOf(t *testing.T, sb *sandboxProc) string {
	t.Helper()
	re := regexp.MustCompile(`embed page on (http://\S+)`)
	var url string
	eventually(t, "the sandbox's embed page line", func() bool {
		if m := re.FindStringSubmatch(sb.logs.String()); m != nil {
			url = m[1]
		}
		return url != ""
	})
	return url
}

// stats reads the sandbox iframe's counters.
func (env *browserEnv) stats(t *testing.T) spotnana.EmbedStats {
	t.Helper()
	r := do(t, "GET", strings.TrimSuffix(env.embedURL, spotnana.SandboxEmbedPath)+spotnana.SandboxStatsPath, nil)
	var s spotnana.EmbedStats
	if r.Status != 200 || json.Unmarshal([]byte(r.Body), &s) != nil {
		t.Fatalf("/stats: %d %s", r.Status, r.Body)
	}
	return s
}

// exchanges counts the exchange requests the bridge answered, whatever their status.
func (env *browserEnv) exchanges(t *testing.T) int {
	t.Helper()
	fams := scrape(t, env.br)
	n := 0.0
	if f, ok := fams["idbridge_http_requests_total"]; ok {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "route" && l.GetValue() == "token_exchange" {
					n += m.Counter.GetValue()
				}
			}
		}
	}
	return int(n)
}

// open loads a company page in a new tab, signed in with tok, and waits for the mount.
func (env *browserEnv) open(t *testing.T, p *companyPage, tok string) *browsertest.Tab {
	t.Helper()
	p.setToken(tok)
	tab := env.b.NewTab(t)
	if err := chromedp.Do(tab.Ctx, chromedp.Navigate(p.Origin+"/")); err != nil {
		t.Fatal(err)
	}
	tab.Eventually(t, `window.mounted === true`, 20*time.Second)
	return tab
}

// spotnanaFrame attaches to the sandbox's iframe in tab.
func (env *browserEnv) spotnanaFrame(t *testing.T, tab *browsertest.Tab) *browsertest.Tab {
	t.Helper()
	return tab.Frame(t, env.embedURL, 20*time.Second)
}

type pageError struct {
	Code   string `json:"code"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// firstError waits for the page's first onError call.
func firstError(t *testing.T, tab *browsertest.Tab) pageError {
	t.Helper()
	tab.Eventually(t, `window.errors.length > 0`, 20*time.Second)
	errs, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[[]pageError](`window.errors`))
	if err != nil {
		t.Fatal(err)
	}
	return errs[0]
}

func noErrors(t *testing.T, tab *browsertest.Tab) {
	t.Helper()
	n, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[int](`window.errors.length`))
	if err != nil || n != 0 {
		errs, _ := chromedp.Run(tab.Ctx, chromedp.Evaluate[any](`window.errors`))
		t.Errorf("onError was called: %v %v", errs, err)
	}
}

// TestBrowserSpotnanaIframe runs every case of the browser half in one Chromium.
func TestBrowserSpotnanaIframe(t *testing.T) {
	env := newBrowserEnv(t)
	alice := mint(t, env.is, nil)
	var tokens []string // every token that reached the browser: none may appear in a URL or console
	var tabs []*browsertest.Tab

	t.Run("alice signs in and every request is answered", func(t *testing.T) {
		before, ex := env.stats(t), env.exchanges(t)
		tab := env.open(t, env.page, alice)
		frame := env.spotnanaFrame(t, tab)
		frame.Eventually(t, `document.getElementById("title").textContent === "Signed in as alice@example.com"`, 20*time.Second)
		frame.Eventually(t, `document.getElementById("email").textContent === "alice@example.com"`, time.Second)
		// The iframe reloads (as Spotnana's may): it asks again and is answered again.
		if _, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[any](`handle.iframe.src = handle.iframe.src`)); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the reloaded iframe signed in again", func() bool { return env.stats(t).SignedIn == before.SignedIn+2 })
		after := env.stats(t)
		if after.Requests != before.Requests+2 || after.Responses != before.Responses+2 || after.LastEmail != "alice@example.com" {
			t.Errorf("stats before %+v, after %+v", before, after)
		}
		if n := env.exchanges(t) - ex; n != 2 {
			t.Errorf("the bridge answered %d exchanges, want 2", n)
		}
		noErrors(t, tab)
		tabs = append(tabs, tab, frame)
		// The bridge caches Spotnana's tokens per user: this exchange returns exactly
		// the tokens the page handed to the iframe.
		m := wantTokens(t, exchange(t, env.br, alice))
		tokens = append(tokens, alice, m["access_token"].(string), m["refresh_token"].(string))
	})

	// Refusals by idbridge or Spotnana reach the page as onError, and the iframe gets
	// nothing.
	for _, tc := range []struct {
		name   string
		claims map[string]any
		code   string
		status int
		detail string // the start of onError's detail
	}{
		{"an expired token yields onError unauthenticated",
			map[string]any{"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()},
			"unauthenticated", 401, "invalid_token"},
		{"a user Spotnana does not know yields onError no_profile",
			map[string]any{"sub": "u-bob", "email": "bob@example.com"}, "no_profile", 502, "USER_NOT_FOUND"},
		// The mapping trusts an email only when the IdP verified it: no email, 403.
		{"a user who may not use Spotnana yields onError forbidden",
			map[string]any{"email_verified": false}, "forbidden", 403, "access_denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := env.stats(t)
			tok := mint(t, env.is, tc.claims)
			tokens = append(tokens, tok)
			tab := env.open(t, env.page, tok)
			e := firstError(t, tab)
			if e.Code != tc.code || e.Status != tc.status || !strings.HasPrefix(e.Detail, tc.detail) {
				t.Errorf("onError %+v, want %s %d %s…", e, tc.code, tc.status, tc.detail)
			}
			if s := env.stats(t); s.SignedIn != before.SignedIn || s.Responses != before.Responses {
				t.Errorf("the iframe got tokens: before %+v, after %+v", before, s)
			}
			tabs = append(tabs, tab)
		})
	}

	t.Run("a page on an origin the bridge does not list gets no tokens", func(t *testing.T) {
		ex := env.exchanges(t)
		tab := env.open(t, env.stranger, alice)
		e := firstError(t, tab)
		if e.Code != "unavailable" || e.Status != 0 {
			t.Errorf("onError %+v, want unavailable 0 (the browser blocked the answer)", e)
		}
		if n := env.exchanges(t) - ex; n != 0 {
			t.Errorf("the bridge answered %d exchanges to a page it does not list", n)
		}
		eventually(t, "the bridge logging the refused origin", func() bool {
			return strings.Contains(env.br.Logs(), `"origin":"`+env.stranger.Origin+`"`)
		})
		tabs = append(tabs, tab)
	})

	t.Run("a page on an origin the sandbox does not allow gets no tokens", func(t *testing.T) {
		before, ex := env.stats(t), env.exchanges(t)
		tab := env.open(t, env.unframed, alice)
		// The browser fetches the iframe page, then refuses to show it (frame-ancestors).
		eventually(t, "the iframe page requested", func() bool { return env.stats(t).Pages > before.Pages })
		tab.Eventually(t, `document.readyState === "complete"`, 10*time.Second)
		time.Sleep(time.Second) // the frame would have posted its request by now
		if s := env.stats(t); s.Requests != before.Requests || s.Responses != before.Responses || s.SignedIn != before.SignedIn {
			t.Errorf("the framed page got further than the CSP allows: before %+v, after %+v", before, s)
		}
		if n := env.exchanges(t) - ex; n != 0 {
			t.Errorf("the bridge answered %d exchanges for a page Spotnana does not allow", n)
		}
		noErrors(t, tab)
		tabs = append(tabs, tab)
	})

	t.Run("messages from a foreign frame are ignored", func(t *testing.T) {
		before := env.stats(t)
		tab := env.open(t, env.page, alice)
		frame := env.spotnanaFrame(t, tab)
		frame.Eventually(t, `document.getElementById("title").textContent === "Signed in as alice@example.com"`, 20*time.Second)
		ex := env.exchanges(t)
		foreign := tab.Frame(t, env.foreign.URL, 10*time.Second)
		foreign.Eventually(t, `window.attack()`, 5*time.Second)
		eventually(t, "the iframe counting the forged answer", func() bool { return env.stats(t).Ignored["source"] > before.Ignored["source"] })
		time.Sleep(time.Second) // room for a wrong answer to arrive
		if n := env.exchanges(t) - ex; n != 0 {
			t.Errorf("the page answered the foreign frame's requests: %d exchanges", n)
		}
		received, err := chromedp.Run(foreign.Ctx, chromedp.Evaluate[[]any](`window.received`))
		if err != nil || len(received) != 0 {
			t.Errorf("the foreign frame received %v (%v)", received, err)
		}
		if s := env.stats(t); s.SignedIn != before.SignedIn+1 || s.InvalidToken != before.InvalidToken || s.LastEmail != "alice@example.com" {
			t.Errorf("the forged answer was acted on: before %+v, after %+v", before, s)
		}
		frame.Eventually(t, `document.getElementById("email").textContent === "alice@example.com"`, time.Second)
		noErrors(t, tab)
		tabs = append(tabs, tab, frame, foreign)
	})

	t.Run("an iframe that refuses the tokens yields onError spotnana_error", func(t *testing.T) {
		// Another Spotnana (a second sandbox, whose issuer signed none of the bridge's
		// tokens) embedded in the page: its iframe answers TOKEN_EXCHANGE_ERROR.
		other := startSandbox(t, "--embed-listen", "127.0.0.1:0", "--embed-allowed-origins", env.page.Origin)
		otherEmbed := embedURLOf(t, other)
		env.page.mu.Lock()
		saved := env.page.embedURL
		env.page.embedURL = otherEmbed
		env.page.mu.Unlock()
		defer func() { env.page.mu.Lock(); env.page.embedURL = saved; env.page.mu.Unlock() }()
		tab := env.open(t, env.page, alice)
		e := firstError(t, tab)
		if e.Code != "spotnana_error" || e.Status != 0 || !strings.HasPrefix(e.Detail, "INVALID_TOKEN") {
			t.Errorf("onError %+v, want spotnana_error 0 INVALID_TOKEN…", e)
		}
		frame := tab.Frame(t, otherEmbed, 10*time.Second)
		frame.Eventually(t, `document.getElementById("title").textContent === "Sign-in failed"`, 10*time.Second)
		tabs = append(tabs, tab, frame)
	})

	t.Run("the identity provider down yields onError unavailable", func(t *testing.T) {
		// A token under a key the bridge has not seen, while the IdP's JWKS is down: the
		// bridge cannot decide, and answers 503.
		if _, err := env.is.Rotate("RS256", false); err != nil {
			t.Fatal(err)
		}
		fresh := mint(t, env.is, nil)
		tokens = append(tokens, fresh)
		env.is.SetDown(true)
		defer env.is.SetDown(false)
		tab := env.open(t, env.page, fresh)
		e := firstError(t, tab)
		if e.Code != "unavailable" || e.Status != 503 || !strings.HasPrefix(e.Detail, "temporarily_unavailable") {
			t.Errorf("onError %+v, want unavailable 503 temporarily_unavailable…", e)
		}
		tabs = append(tabs, tab)
	})

	t.Run("no token in any URL or console", func(t *testing.T) {
		urls := env.b.URLs()
		if len(urls) < 10 {
			t.Fatalf("the proxy saw only %d URLs", len(urls))
		}
		var console []string
		for _, tab := range tabs {
			console = append(console, tab.Console()...)
		}
		for _, where := range []struct {
			name  string
			lines []string
		}{{"a URL", urls}, {"the console", console}} {
			all := strings.Join(where.lines, "\n")
			for _, tok := range tokens {
				if strings.Contains(all, tok) {
					t.Errorf("a token (fingerprint %s) appears in %s", spotnana.Fingerprint(tok), where.name)
				}
			}
			if m := jwtShape.FindString(all); m != "" {
				t.Errorf("something JWT-shaped appears in %s: %.20s…", where.name, m)
			}
		}
		noSecretsIn(t, "the bridge", env.br.settledLogs(t), tokens...)
		noSecretsIn(t, "the sandbox", env.sb.logs.String(), tokens...)
	})
}
