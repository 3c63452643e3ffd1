package browsertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowser checks the helpers against a page with a cross-site iframe: the proxy
// records the URLs of both, the tab records its console, Frame reaches the iframe.
func TestBrowser(t *testing.T) {
	inner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><p id="inner">inside</p>`)
	}))
	defer inner.Close()
	outer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// localhost and 127.0.0.1 are different sites: the iframe gets its own process.
		src := strings.Replace(inner.URL, "127.0.0.1", "localhost", 1) + "/frame?x=1"
		fmt.Fprintf(w, `<!doctype html><script>console.log("hello", 42)</script><iframe src="%s"></iframe>`, src)
	}))
	defer outer.Close()

	b := Start(t)
	tab := b.NewTab(t)
	if err := chromedp.Do(tab.Ctx, chromedp.Navigate(outer.URL+"/page")); err != nil {
		t.Fatal(err)
	}
	frame := tab.Frame(t, strings.Replace(inner.URL, "127.0.0.1", "localhost", 1), 10*time.Second)
	text, err := chromedp.Run(frame.Ctx, chromedp.Text(chromedp.CSS("#inner")))
	if err != nil || text != "inside" {
		t.Fatalf("iframe text %q, %v", text, err)
	}
	tab.Eventually(t, `document.readyState === "complete"`, 5*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(tab.Console(), "log: hello 42") {
		if time.Now().After(deadline) {
			t.Fatalf("console %q lacks the page's log line", tab.Console())
		}
		time.Sleep(20 * time.Millisecond)
	}
	urls := strings.Join(b.URLs(), "\n")
	for _, want := range []string{outer.URL + "/page", "/frame?x=1"} {
		if !strings.Contains(urls, want) {
			t.Errorf("the proxy did not record %s:\n%s", want, urls)
		}
	}
}
