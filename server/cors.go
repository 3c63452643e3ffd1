package server

import (
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
)

// corsMaxAge is how long a browser may reuse a preflight answer. Chromium caps it at
// two hours; ten minutes lets a removed origin lose access soon after a reload.
const corsMaxAge = 10 * 60

// CORS header values (Fetch standard, "CORS protocol"). Authorization carries the
// bearer; Content-Type and X-Request-Id are what a page may add. The page may read
// Retry-After (503, 429), WWW-Authenticate (401) and X-Request-Id (for support).
var (
	corsAllowMethods  = []string{"POST"}
	corsAllowHeaders  = []string{"Authorization, Content-Type, X-Request-Id"}
	corsExposeHeaders = []string{"Retry-After, WWW-Authenticate, X-Request-Id"}
	corsMaxAgeValue   = []string{strconv.Itoa(corsMaxAge)}
	varyOrigin        = []string{"Origin"}
	varyPreflight     = []string{"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}
	allowExchange     = []string{"POST, OPTIONS"}
)

// corsPolicy is server.cors: the exact origins whose pages may call the exchange route.
// No credentials mode: the bearer travels in a header, never in a cookie, so
// Access-Control-Allow-Credentials is never sent.
type corsPolicy struct {
	origins map[string]bool
}

func newCORS(origins []string) *corsPolicy {
	p := &corsPolicy{origins: make(map[string]bool, len(origins))}
	for _, o := range origins {
		p.origins[o] = true
	}
	return p
}

// maxLoggedOrigin bounds what a refused Origin header can put into a log line.
const maxLoggedOrigin = 200

// allow reports whether the request comes from a listed origin, setting the header
// every answer to it carries. A request from another origin gets no CORS header (the
// browser then withholds the answer from the page) and the refusal is logged; a request
// without Origin (not from a browser page) is none of CORS' business.
func (p *corsPolicy) allow(c *gin.Context, log *slog.Logger, route string) bool {
	origin := c.Request.Header.Get("Origin")
	if p.listed(c.Writer.Header(), origin) {
		return true
	}
	logRefusal(c, log, route, origin)
	return false
}

// listed sets Access-Control-Allow-Origin in h when origin is listed, and reports
// whether it was.
func (p *corsPolicy) listed(h http.Header, origin string) bool {
	if origin == "" || !p.origins[origin] {
		return false
	}
	h["Access-Control-Allow-Origin"] = []string{origin}
	return true
}

// exchangeHeaders sets what every answer of the exchange route carries: Vary: Origin,
// so that no cache serves one origin's answer to another, and for a listed origin that
// origin and the headers the page may read. It reports whether origin was listed.
func (p *corsPolicy) exchangeHeaders(h http.Header, origin string) bool {
	h["Vary"] = varyOrigin
	if !p.listed(h, origin) {
		return false
	}
	h["Access-Control-Expose-Headers"] = corsExposeHeaders
	return true
}

// logRefusal logs a request whose Origin is not listed; one without Origin is not
// from a browser page and is none of CORS' business.
func logRefusal(c *gin.Context, log *slog.Logger, route, origin string) {
	if origin == "" {
		return
	}
	if len(origin) > maxLoggedOrigin {
		origin = origin[:maxLoggedOrigin] + "…"
	}
	log.Warn("cors: origin not in server.cors.allowed_origins; the browser will block the answer",
		"route", route, "origin", origin, "client", c.ClientIP())
}

// preflight answers OPTIONS on the exchange route: 204, and for a listed origin the
// methods, headers and max-age the page's POST needs.
func (s *Server) preflight(rt *Runtime) gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h["Vary"] = varyPreflight
		h["Allow"] = allowExchange
		if c.Request.Header.Get("Access-Control-Request-Method") != "" && rt.cors.allow(c, s.log, routeExchange) {
			h["Access-Control-Allow-Methods"] = corsAllowMethods
			h["Access-Control-Allow-Headers"] = corsAllowHeaders
			h["Access-Control-Max-Age"] = corsMaxAgeValue
		}
		c.Status(http.StatusNoContent)
	}
}

// corsAnswer marks an exchange answer for the page (exchangeHeaders) and logs an
// unlisted origin.
func (s *Server) corsAnswer(c *gin.Context, rt *Runtime) {
	origin := c.Request.Header.Get("Origin")
	if !rt.cors.exchangeHeaders(c.Writer.Header(), origin) {
		logRefusal(c, s.log, routeExchange, origin)
	}
}
