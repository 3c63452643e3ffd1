package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/idbridge/idbridge/cache"
	"github.com/idbridge/idbridge/playground"
	"github.com/idbridge/idbridge/providers"
)

// AdminHandler serves the admin listener: liveness, readiness, metrics, cache purge and
// reload. It is never rate limited.
func (s *Server) AdminHandler() http.Handler {
	e := gin.New()
	e.Use(s.recovery, s.adminGuard)
	e.GET("/healthz", func(c *gin.Context) {
		c.Header("Cache-Control", "no-store")
		c.Data(http.StatusOK, "application/json", []byte(`{"status":"ok"}`+"\n"))
	})
	e.GET("/readyz", s.readyz)
	if s.opts.Metrics != nil {
		e.GET("/metrics", gin.WrapH(s.opts.Metrics))
	}
	e.POST("/admin/cache/purge", func(c *gin.Context) {
		rt := s.acquireCurrent()
		defer rt.release()
		provider := c.Query("provider")
		if provider != "" && !hasProvider(rt, provider) {
			writeJSONError(c, http.StatusNotFound, "not_found", "no such provider")
			return
		}
		n := rt.Bridge.Chain().Purge(c.Request.Context(), provider)
		s.log.Info("cache purged", "provider", provider, "entries", n)
		c.JSON(http.StatusOK, gin.H{"purged": n, "provider": provider})
	})
	if s.opts.Playground != nil {
		po := *s.opts.Playground
		po.Resolve = s.resolveForPlayground
		h := gin.WrapH(playground.New(po))
		e.Any(playground.Path, h)
		e.Any(playground.Path+"/*rest", h)
	}
	// Profiling is opt-in (IDBRIDGE_PPROF=1) and only ever on the admin listener: a
	// profile reveals internals, and collecting one costs CPU on the serving process.
	if os.Getenv("IDBRIDGE_PPROF") == "1" {
		e.GET("/debug/pprof/*name", gin.WrapF(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/debug/pprof/profile":
				pprof.Profile(w, r)
			case "/debug/pprof/trace":
				pprof.Trace(w, r)
			default:
				pprof.Index(w, r)
			}
		}))
	}
	return e
}

func hasProvider(rt *Runtime, name string) bool {
	for _, in := range rt.Bridge.Chain().Instances() {
		if in.Name == name {
			return true
		}
	}
	return false
}

// readyz is 200 once the config is loaded and every jwt provider has loaded keys once.
// Dependency outages are reported in the body but do not make the replica unready: one
// IdP outage would otherwise take every replica out of its load balancer at once.
func (s *Server) readyz(c *gin.Context) {
	rt := s.acquireCurrent()
	defer rt.release()
	r := Readiness{Ready: s.ready.Load()}
	if rt.Health != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
		ok, deps := rt.Health(ctx)
		cancel()
		r.Ready = r.Ready && ok
		r.Dependencies = deps
	}
	status := http.StatusOK
	if !r.Ready {
		status = http.StatusServiceUnavailable
	}
	body, _ := json.Marshal(r)
	c.Header("Cache-Control", "no-store")
	c.Data(status, "application/json", append(body, '\n'))
}

// retryAfter formats a duration as whole seconds for Retry-After, at least 1.
func retryAfter(d time.Duration) string {
	sec := int((d + time.Second - 1) / time.Second)
	if sec < 1 {
		sec = 1
	}
	return strconv.Itoa(sec)
}

// resolveForPlayground runs token through the running chain, without its cache (so the
// verdicts are the providers' own, fresh), and maps the accepted document. The token is
// neither logged nor kept; provider errors never carry it.
func (s *Server) resolveForPlayground(ctx context.Context, token string) (playground.Resolution, error) {
	rt := s.acquireCurrent()
	defer rt.release()
	rec := &verdicts{}
	ch := providers.NewChain(rt.Bridge.Chain().Instances(), nil, nil, rec)
	ch.SetRequestTimeout(rt.Config.Server.RequestTimeout)
	res, err := ch.Resolve(ctx, token, providers.TokenSum(token))
	out := playground.Resolution{Verdicts: rec.list}
	if err != nil {
		out.Refusal = err.Error()
		return out, nil
	}
	out.Provider, out.Document = res.Provider, res.Document
	email, tr, err := rt.Bridge.RulesFor(res.Instance).Trace(res.Document)
	out.Email, out.Trace = email, tr.String()
	if err != nil {
		out.Refusal = err.Error()
	}
	return out, nil
}

// verdicts records each provider's outcome of one playground resolve.
type verdicts struct{ list []playground.Verdict }

func (v *verdicts) ProviderOutcome(provider, outcome string, _ time.Duration) {
	v.list = append(v.list, playground.Verdict{Provider: provider, Outcome: outcome})
}

func (v *verdicts) CacheResult(cache.Kind, bool) {}

// adminGuard protects every admin route but the probes (/healthz, /readyz, which the
// kubelet calls without credentials and which change nothing):
//
//   - without server.admin_token, a request whose Host is not an IP address or localhost
//     is refused 403, whatever its method: that is how a DNS-rebinding page addresses a
//     loopback listener, with an Origin that matches;
//   - a state-changing request (any method but GET, HEAD, OPTIONS) that carries a
//     browser's cross-site signals is refused 403: an Origin other than the listener's
//     own, or Sec-Fetch-Site other than same-origin or none. Otherwise any web page an
//     operator opens could POST /admin/cache/purge to a loopback listener;
//   - with server.admin_token set, the request must carry it as a bearer (RFC 6750),
//     compared in constant time; 401 otherwise.
func (s *Server) adminGuard(c *gin.Context) {
	r := c.Request
	if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
		c.Next()
		return
	}
	rt := s.acquireCurrent()
	want := rt.Config.Server.AdminToken
	rt.release()
	if want == "" && !addressedByIP(r.Host) {
		// Without a token, the listener's only protection from a web page is that the page
		// cannot be same-origin with it. DNS rebinding breaks that: a name the attacker
		// controls is pointed at 127.0.0.1, the page's requests then carry Host and Origin
		// both set to that name, and pass the cross-site check below. Such a request always
		// names the listener by a DNS name, so only an IP address or localhost is served.
		s.log.Warn("admin request refused: Host is not an IP address or localhost", "path", r.URL.Path, "host", clipForLog(r.Host))
		writeJSONError(c, http.StatusForbidden, "access_denied", "the admin listener answers only requests addressed to its IP address or localhost, or with admin_token")
		c.Abort()
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions && crossSite(r) {
		s.log.Warn("admin request refused: cross-site", "path", r.URL.Path, "origin", clipForLog(r.Header.Get("Origin")), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		writeJSONError(c, http.StatusForbidden, "access_denied", "cross-site request refused")
		c.Abort()
		return
	}
	if want == "" {
		c.Next()
		return
	}
	got, err := ParseBearer(r.Header.Values("Authorization"))
	if err != nil || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		c.Header("WWW-Authenticate", `Bearer realm="idbridge-admin"`)
		writeJSONError(c, http.StatusUnauthorized, "unauthorized", "admin_token required")
		c.Abort()
		return
	}
	c.Next()
}

// clipForLog bounds what a refused request's header can put into an admin log line.
func clipForLog(v string) string {
	if len(v) > 100 {
		return v[:100]
	}
	return v
}

// addressedByIP reports whether a request's Host (RFC 9110 §7.2: host and optional port)
// names an IP address or localhost, the only names under which a browser can reach a
// loopback listener without a DNS name that someone else controls.
func addressedByIP(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	_, err := netip.ParseAddr(host)
	return err == nil
}

// crossSite reports whether r carries a browser's sign of coming from another site:
// Sec-Fetch-Site (Fetch Metadata) other than same-origin or none (a user's own
// navigation), or an Origin (RFC 6454) whose host is not the one r was sent to. A
// client that is not a browser sends neither and is not affected.
func crossSite(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host)
}
