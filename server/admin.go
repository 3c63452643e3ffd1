package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

// AdminHandler serves the admin listener: liveness, readiness, metrics, cache purge and
// reload. It is never rate limited.
func (s *Server) AdminHandler() http.Handler {
	e := gin.New()
	e.Use(s.recovery)
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
	if s.opts.Reload != nil {
		e.POST("/admin/reload", func(c *gin.Context) {
			if err := s.opts.Reload(); err != nil {
				c.JSON(http.StatusUnprocessableEntity, gin.H{"error": "invalid_config", "error_description": err.Error()})
				return
			}
			c.JSON(http.StatusOK, gin.H{"reloaded": true})
		})
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
	ready := s.ready.Load()
	detail := map[string]any{}
	if rt.Health != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
		ok, d := rt.Health(ctx)
		cancel()
		ready = ready && ok
		detail = d
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	body, _ := json.Marshal(map[string]any{"ready": ready, "dependencies": detail})
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
