// Package browsertest runs a real, headless Chromium for end-to-end tests, driven by
// github.com/chromedp/chromedp over the DevTools protocol.
//
// Every browser is fresh (its own user-data-dir, removed at the end of the test) and
// offline-safe: background networking, component updates and sync are off, so it talks
// only to the loopback servers a test starts. Every request it makes, from every frame
// and process, goes through a recording proxy, so a test can assert on the URLs the
// browser requested (for example, that no token ever appears in one). Each tab records
// its console.
//
// A test skips when no Chromium is installed, unless IDBRIDGE_REQUIRE_SERVERS=1 (as in
// CI), where a missing Chromium fails the test instead.
package browsertest

import (
	"github.com/idbridge/idbridge/internal/testenv"

	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/idbridge/idbridge/internal/loopback"
)

// RequireEnv is the variable that turns a missing Chromium into a failure.
const RequireEnv = testenv.RequireEnv

// ChromiumEnv names a Chromium binary to use instead of searching PATH.
const ChromiumEnv = "IDBRIDGE_CHROMIUM"

// candidates are the names Debian, Ubuntu and Google give the browser.
var candidates = []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome", "headless-shell"}

// Chromium returns the path of the browser: $IDBRIDGE_CHROMIUM when set, else the first
// of chromium, chromium-browser, google-chrome-stable, google-chrome, headless-shell
// found on PATH.
func Chromium() (string, error) {
	if p := os.Getenv(ChromiumEnv); p != "" {
		return exec.LookPath(p)
	}
	for _, name := range candidates {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no Chromium found on PATH (tried %s; or set %s)", strings.Join(candidates, ", "), ChromiumEnv)
}

// SkipOrFail skips t on a machine without the peer it needs, and fails it when
// IDBRIDGE_REQUIRE_SERVERS=1.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	testenv.SkipOrFail(t, format, args...)
}

// Timeout bounds everything one browser does in a test; a hung page fails the test
// instead of hanging it.
const Timeout = 90 * time.Second

// Browser is one Chromium process.
type Browser struct {
	ctx   context.Context // the first tab's context; its cancellation stops the browser
	proxy *recorder
}

// Start launches a headless Chromium that lives until the end of t. It skips or fails t
// (see SkipOrFail) when no Chromium is installed. extra options are added to the
// defaults (for example chromedp.WindowSize).
func Start(t testing.TB, extra ...chromedp.ExecAllocatorOption) *Browser {
	t.Helper()
	path, err := Chromium()
	if err != nil {
		SkipOrFail(t, "browsertest: %v", err)
	}
	rec := startRecorder(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		// Tests run as root in containers, where Chromium's sandbox cannot start.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		// Every request, loopback included (Chromium bypasses proxies for loopback unless
		// told "<-loopback>"), goes through the recorder.
		chromedp.ProxyServer("http://"+rec.addr),
		chromedp.Flag("proxy-bypass-list", "<-loopback>"),
		chromedp.WindowSize(1280, 900),
	)
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	tctx, cancelTimeout := context.WithTimeout(ctx, Timeout)
	t.Cleanup(func() { cancelTimeout(); cancelBrowser(); cancelAlloc() })
	// Start the browser now, so that a broken installation fails here, clearly.
	if err := chromedp.Do(tctx); err != nil {
		t.Fatalf("browsertest: starting %s: %v", path, err)
	}
	return &Browser{ctx: tctx, proxy: rec}
}

// URLs returns every URL the browser requested so far, from any tab or frame, in order.
func (b *Browser) URLs() []string { return b.proxy.urls() }

// Tab is one browser tab with its console recorded.
type Tab struct {
	Ctx context.Context

	mu      sync.Mutex
	console []string
}

// NewTab opens a tab in b. Its console is recorded from the start.
func (b *Browser) NewTab(t testing.TB) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	return record(t, ctx)
}

// Frame attaches to the cross-site iframe whose URL starts with prefix, waiting up to
// wait for it to appear. Chromium runs such a frame in its own process, so the tab's
// own queries and console do not reach it; the returned Tab does, from now on.
func (tab *Tab) Frame(t testing.TB, prefix string, wait time.Duration) *Tab {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		infos, err := chromedp.Targets(tab.Ctx)
		if err != nil {
			t.Fatalf("browsertest: listing targets: %v", err)
		}
		for _, info := range infos {
			if info.Type == "iframe" && strings.HasPrefix(info.URL, prefix) {
				ctx, cancel := chromedp.NewContext(tab.Ctx, chromedp.WithTargetID(info.TargetID))
				t.Cleanup(cancel)
				return record(t, ctx)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("browsertest: no iframe at %s appeared within %s", prefix, wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func record(t testing.TB, ctx context.Context) *Tab {
	tab := &Tab{Ctx: ctx}
	// Console subscribes (and opens or attaches the target) before it returns, so
	// nothing written after this line is missed.
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			tab.mu.Lock()
			tab.console = append(tab.console, m.String())
			tab.mu.Unlock()
		}
	}()
	return tab
}

// Console returns the tab's console messages so far ("type: text"), exceptions included.
func (tab *Tab) Console() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]string(nil), tab.console...)
}

// Screenshot saves a PNG of the whole visible page to path.
func (tab *Tab) Screenshot(t testing.TB, path string) {
	t.Helper()
	png, err := chromedp.Run(tab.Ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("browsertest: screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Eventually evaluates expression in the tab until it yields true, or fails t after
// wait with the last value and the console.
func (tab *Tab) Eventually(t testing.TB, expression string, wait time.Duration) {
	t.Helper()
	deadline := time.Now().Add(wait)
	var last any
	var lastErr error
	for time.Now().Before(deadline) {
		last, lastErr = chromedp.Run(tab.Ctx, chromedp.Evaluate[any](expression))
		if lastErr == nil && last == true {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("browsertest: %s did not become true within %s (last: %v, %v)\nconsole:\n%s",
		expression, wait, last, lastErr, strings.Join(tab.Console(), "\n"))
}

// recorder is a forward HTTP proxy for plain http:// on loopback that records each
// request's URL. It refuses CONNECT: a test browser has nothing to reach over TLS.
type recorder struct {
	addr string
	mu   sync.Mutex
	seen []string
}

func (r *recorder) urls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func startRecorder(t testing.TB) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{addr: ln.Addr().String()}
	transport := &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.Out.URL = pr.In.URL; pr.Out.Host = pr.In.Host },
		Transport: transport,
	}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			r.mu.Lock()
			r.seen = append(r.seen, req.URL.String())
			r.mu.Unlock()
			if req.Method == http.MethodConnect || !req.URL.IsAbs() || !loopback.Host(req.URL.Hostname()) {
				http.Error(w, "browsertest proxy: loopback http:// only", http.StatusForbidden)
				return
			}
			rp.ServeHTTP(w, req)
		}),
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); transport.CloseIdleConnections() })
	return r
}
