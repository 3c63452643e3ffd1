package demoissuer

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/idbridge/idbridge/internal/loopback"
)

// MintPath is the mint endpoint WithMintEndpoint serves.
const MintPath = "/mint"

// maxMintBody bounds a mint request's claims.
const maxMintBody = 64 << 10

// WithMintEndpoint serves POST MintPath: the body is a JSON object of claims, laid over
// defaults; the query may set ttl (a Go duration, negative for an already expired token,
// e.g. ?ttl=-5m) and alg. The answer is the signed token as text/plain.
//
// The endpoint answers only callers on loopback (403 otherwise): anyone who can reach it
// can mint any identity, so it is for development on one machine, as `idbridge demo`
// uses it, and never for a shared host.
func WithMintEndpoint(defaults map[string]any) Option {
	return func(o *options) { o.mintDefaults = maps.Clone(defaults); o.mint = true }
}

func (is *Issuer) serveMint(defaults map[string]any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if !loopback.HostPort(r.RemoteAddr) {
			http.Error(w, "the mint endpoint answers loopback callers only", http.StatusForbidden)
			return
		}
		claims := maps.Clone(defaults)
		if claims == nil {
			claims = map[string]any{}
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxMintBody+1))
		if err != nil || len(body) > maxMintBody {
			http.Error(w, "the claims must be a JSON object of at most 64 KiB", http.StatusBadRequest)
			return
		}
		if len(body) > 0 {
			var extra map[string]any
			if err := json.Unmarshal(body, &extra); err != nil || extra == nil {
				http.Error(w, "the body must be a JSON object of claims", http.StatusBadRequest)
				return
			}
			maps.Copy(claims, extra)
		}
		if ttl := r.URL.Query().Get("ttl"); ttl != "" {
			d, err := time.ParseDuration(ttl)
			if err != nil {
				http.Error(w, "ttl must be a Go duration such as 1h or -5m", http.StatusBadRequest)
				return
			}
			now := is.now()
			claims["exp"] = now.Add(d).Unix()
			if d < 0 {
				// An expired token was still issued before it expired.
				claims["iat"] = now.Add(d - time.Hour).Unix()
			}
		}
		var opts []MintOption
		if alg := r.URL.Query().Get("alg"); alg != "" {
			opts = append(opts, WithAlg(alg))
		}
		tok, err := is.Mint(claims, opts...)
		if err != nil && len(opts) == 0 {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err != nil {
			// Said in the caller's terms: the Go options that add keys are not theirs.
			is.mu.RLock()
			algs := slices.Sorted(maps.Keys(is.signing))
			is.mu.RUnlock()
			http.Error(w, fmt.Sprintf("no signing key for alg %q: this issuer signs %s (an RSA key also signs RS384, RS512 and PS256 to PS512)",
				r.URL.Query().Get("alg"), strings.Join(algs, ", ")), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, tok+"\n")
	}
}
