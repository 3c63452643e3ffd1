package playground

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/idbridge/idbridge/mapping"
)

func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	compile := func(text []byte) Compiled {
		rules, errs := mapping.Compile(mapping.Spec{Candidates: []mapping.Candidate{{Path: strings.TrimSpace(string(text))}}})
		var c Compiled
		for _, e := range errs {
			c.Errors = append(c.Errors, e.Error())
		}
		c.Rules = rules
		return c
	}
	resolve := func(_ context.Context, tok string) (Resolution, error) {
		return Resolution{Verdicts: []Verdict{{Provider: "p", Outcome: "invalid"}}, Refusal: "invalid token"}, nil
	}
	srv := httptest.NewServer(New(Options{Compile: compile, Resolve: resolve}))
	t.Cleanup(srv.Close)
	return srv
}

func TestHeadersAndGuards(t *testing.T) {
	srv := newTestServer(t)
	for _, path := range []string{Path, Path + "/static/playground.js", Path + "/static/playground.css", Path + "/api/config"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != CSP ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: %d %v", path, resp.StatusCode, resp.Header)
		}
	}
	post := func(path, ctype, origin, body string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name, path, ctype, origin, body string
		want                            int
	}{
		{"map", "/api/map", "application/json", "", `{"input":"{\"upn\":\"a@b.co\"}","rules":"upn"}`, 200},
		{"same origin", "/api/map", "application/json", srv.URL, `{}`, 200},
		{"a form post from another site", "/api/map", "text/plain", "", `{}`, 415},
		{"another origin", "/api/resolve", "application/json", "http://evil.example", `{"token":"x"}`, 403},
		{"not json", "/api/map", "application/json", "", `nope`, 400},
		{"too large", "/api/map", "application/json", "", `{"input":"` + strings.Repeat("a", maxBody) + `"}`, 413},
		{"empty token", "/api/resolve", "application/json", "", `{"token":" "}`, 400},
	} {
		if got := post(Path+tc.path, tc.ctype, tc.origin, tc.body); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestMapAPI(t *testing.T) {
	srv := newTestServer(t)
	body := `{"input":"eyJhbGciOiJSUzI1NiJ9.eyJ1cG4iOiJCb2JAZXhhbXBsZS5jb20ifQ.c2ln","rules":"upn"}`
	resp, err := http.Post(srv.URL+Path+"/api/map", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r Result
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if !r.FromJWT || r.Email != "Bob@example.com" || !strings.Contains(r.Trace, "won") || len(r.Suggestions) != 1 {
		t.Errorf("%+v", r)
	}
}

// TestAssetsAreSelfContained: nothing in the page loads from elsewhere, and no script
// writes HTML from data (textContent only).
func TestAssetsAreSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import`)
	err := fs.WalkDir(assets, "assets", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := assets.ReadFile(path)
		if m := external.Find(b); m != nil {
			t.Errorf("%s loads an external asset: %s", path, m)
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "localStorage", "sessionStorage", "document.cookie", "<script>", "style="} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s uses %s", path, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
