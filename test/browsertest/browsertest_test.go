package browsertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
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

// TestMissingChromium: without a browser a test skips, unless IDBRIDGE_REQUIRE_SERVERS=1
// (CI), where it fails. The test binary runs itself with a browser that does not exist.
func TestMissingChromium(t *testing.T) {
	if os.Getenv("BROWSERTEST_CHILD") == "1" {
		Start(t)
		return
	}
	for _, tc := range []struct {
		require string
		fail    bool
		says    string
	}{
		{"", false, "--- SKIP: TestMissingChromium"},
		{"1", true, "a missing server is a failure"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissingChromium$", "-test.v")
		cmd.Env = append(os.Environ(), "BROWSERTEST_CHILD=1", ChromiumEnv+"=/nonexistent/chromium", RequireEnv+"="+tc.require)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.fail || !strings.Contains(string(out), tc.says) {
			t.Errorf("%s=%q: err %v, want failure %v, output lacking %q?\n%s", RequireEnv, tc.require, err, tc.fail, tc.says, out)
		}
	}
}
