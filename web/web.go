// Package web holds what idbridge serves to browsers: the embed script a company puts on
// its page for Spotnana's iframe integration (spotnana.js, an ES module, with its
// TypeScript declarations), embedded in the binary, and the headers that go with it.
//
// The script's protocol is Spotnana's (TOKEN_EXCHANGE_REQUEST / TOKEN_EXCHANGE_RESPONSE /
// TOKEN_EXCHANGE_ERROR); see the README's "In the browser" section.
package web

import (
	"crypto/sha256"
	"crypto/sha512"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
)

// Paths of the embed script and its declarations on idbridge's main listener.
const (
	ScriptPath       = "/v1/embed/spotnana.js"
	DeclarationsPath = "/v1/embed/spotnana.d.ts"
)

var (
	//go:embed spotnana.js
	script []byte
	//go:embed spotnana.d.ts
	declarations []byte
)

// Script returns the embed script's bytes (callers must not modify them).
func Script() []byte { return script }

// SRI is the script's Subresource Integrity value ("sha384-<base64>", W3C SRI §3.1),
// for the integrity attribute of the tag or import map that loads it.
func SRI() string {
	sum := sha512.Sum384(script)
	return "sha384-" + base64.StdEncoding.EncodeToString(sum[:])
}

// asset is one static file with its validator.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

func newAsset(body []byte, contentType string) asset {
	sum := sha256.Sum256(body)
	return asset{body: body, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
}

// cacheControl lets browsers and CDNs keep the script for five minutes and then
// revalidate it with the ETag, so that an idbridge upgrade reaches pages quickly.
const cacheControl = "public, max-age=300"

// Handler serves the embed script and its declarations (GET and HEAD): an ETag with
// If-None-Match (304), nosniff, and CORS for everyone (Access-Control-Allow-Origin: *),
// since a module script loaded from another origin needs CORS and the script is public
// code that carries no credential. Cross-Origin-Resource-Policy: cross-origin lets pages
// with Cross-Origin-Embedder-Policy load it too.
func Handler() http.Handler {
	files := map[string]asset{
		ScriptPath:       newAsset(script, "text/javascript; charset=utf-8"),
		DeclarationsPath: newAsset(declarations, "application/typescript; charset=utf-8"),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := files[r.URL.Path]
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Access-Control-Allow-Origin", "*")
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.Set("Content-Type", a.contentType)
		h.Set("ETag", a.etag)
		h.Set("Cache-Control", cacheControl)
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		if etagMatch(r.Header.Get("If-None-Match"), a.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusOK)
			return
		}
		_, _ = w.Write(a.body)
	})
}

// etagMatch implements If-None-Match's weak comparison (RFC 9110 §13.1.2).
func etagMatch(header, etag string) bool {
	for _, v := range strings.Split(header, ",") {
		v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
		if v == "*" || v == etag {
			return true
		}
	}
	return false
}
