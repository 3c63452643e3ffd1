package web

import (
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/idbridge/idbridge/configs"
)

func TestHandler(t *testing.T) {
	if !strings.HasPrefix(ScriptPath, configs.EmbedPathPrefix) || !strings.HasPrefix(DeclarationsPath, configs.EmbedPathPrefix) {
		t.Fatalf("the embed paths left the prefix configs reserves (%s)", configs.EmbedPathPrefix)
	}
	if !regexp.MustCompile(`^sha384-[A-Za-z0-9+/]{64}$`).MatchString(SRI()) {
		t.Errorf("SRI %q", SRI())
	}
	h := Handler()
	get := func(method, path string, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	w := get("GET", ScriptPath)
	etag := w.Header().Get("ETag")
	if w.Code != 200 || etag == "" || w.Body.String() != string(Script()) {
		t.Fatalf("GET: %d %q", w.Code, etag)
	}
	for _, inm := range []string{etag, `W/` + etag, `"x", ` + etag, "*"} {
		if w := get("GET", ScriptPath, "If-None-Match", inm); w.Code != 304 {
			t.Errorf("If-None-Match %s: %d", inm, w.Code)
		}
	}
	if w := get("GET", ScriptPath, "If-None-Match", `"other"`); w.Code != 200 {
		t.Errorf("a stale ETag: %d", w.Code)
	}
	if w := get("HEAD", ScriptPath); w.Code != 200 || w.Body.Len() != 0 {
		t.Errorf("HEAD: %d, %d bytes", w.Code, w.Body.Len())
	}
	if w := get("POST", ScriptPath); w.Code != 405 {
		t.Errorf("POST: %d", w.Code)
	}
}
