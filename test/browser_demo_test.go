package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/idbridge/idbridge/test/browsertest"
)

// demoPage starts `idbridge demo` and returns the company page's URL, as printed.
func demoPage(t *testing.T) string {
	t.Helper()
	out := startDemo(t)
	m := regexp.MustCompile(`In the browser: open (http://localhost:\d+/) and sign in as alice`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the demo does not print the company page's URL:\n%s", out)
	}
	if !strings.Contains(out, "company page     "+m[1]) {
		t.Errorf("the demo's listing lacks the company page:\n%s", out)
	}
	return m[1]
}

// TestBrowserDemo tries the demo as a new user would: open the printed URL, sign in as
// alice and see Spotnana signed in as alice; then carol (unknown to Spotnana) and the
// expired token show the failures as the page reports them, and bob signs in. IDBRIDGE_SCREENSHOT=FILE keeps the screenshot of
// alice signed in (the README's).
func TestBrowserDemo(t *testing.T) {
	b := browsertest.Start(t)
	pageURL := demoPage(t)
	tab := b.NewTab(t)
	if err := chromedp.Do(tab.Ctx, chromedp.Navigate(pageURL)); err != nil {
		t.Fatal(err)
	}
	click := func(user string) {
		t.Helper()
		if err := chromedp.Do(tab.Ctx, chromedp.Click(chromedp.CSS(`button[data-user="`+user+`"]`))); err != nil {
			t.Fatal(err)
		}
	}

	click("alice")
	frame := tab.Frame(t, "http://127.0.0.1:", 20*time.Second)
	frame.Eventually(t, `document.getElementById("title").textContent === "Signed in as alice@example.com"`, 20*time.Second)
	shot := filepath.Join(t.TempDir(), "demo.png")
	if p := os.Getenv("IDBRIDGE_SCREENSHOT"); p != "" {
		shot = p
	}
	tab.Screenshot(t, shot)
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}

	for _, c := range []struct{ user, code, says string }{
		{"carol", "no_profile", "Spotnana has no profile for this user"},
		{"expired", "unauthenticated", "sign in again"},
		{"bob", "", "Signed in to the company as bob@example.com"},
	} {
		click(c.user)
		tab.Eventually(t, `document.getElementById("status").dataset.code === "`+c.code+`" && document.getElementById("status").textContent.includes("`+c.says+`")`, 20*time.Second)
	}
	frame = tab.Frame(t, "http://127.0.0.1:", 20*time.Second)
	frame.Eventually(t, `document.getElementById("title").textContent === "Signed in as bob@example.com"`, 20*time.Second)

	// The page's CSP (import map by hash, script by SRI, frames from the iframe's origin
	// only) let everything the demo needs through. (carol's 502 and the expired token's
	// 401 are logged by the browser as failed loads: those are the cases shown.)
	for _, line := range tab.Console() {
		if strings.Contains(line, "Content Security Policy") || strings.Contains(line, "integrity") ||
			strings.Contains(line, "Refused") || strings.Contains(line, "404") {
			t.Errorf("console: %s", line)
		}
	}
	for _, u := range b.URLs() {
		if jwtShape.MatchString(u) {
			t.Errorf("a token in a URL: %.40s…", u)
		}
	}
}
