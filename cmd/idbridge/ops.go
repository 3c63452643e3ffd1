package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"time"

	"github.com/idbridge/idbridge/cache"
	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/server"
)

// process holds what `serve` builds once and every reload shares: the cache (so that a
// reload keeps the identities of unchanged providers and the Spotnana tokens) and the
// metrics (so that counters keep counting). Changing `cache:` needs a restart.
type process struct {
	cache   cache.Cache
	redis   *cache.Redis // nil with the memory backend
	metrics *metrics
	cfg     configs.Cache // the cache section the process started with
}

// newProcess builds the process-wide parts from the config loaded at start.
func newProcess(cfg *configs.Config, logger *slog.Logger) (*process, error) {
	p := &process{metrics: newMetrics(), cfg: cfg.Cache}
	switch cfg.Cache.Backend {
	case "redis":
		r, err := cache.NewRedis(cfg.Cache, cache.RedisOptions{Logger: logger.With("component", "cache")})
		if err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
		p.cache, p.redis = r, r
		p.metrics.watchRedis(r)
	default:
		p.cache = cache.NewMemory(cfg.Cache.MaxEntries, nil)
	}
	return p, nil
}

// Close releases the shared cache, once no runtime uses it any more.
func (p *process) Close() error { return p.cache.Close() }

// options are the server options that survive reloads.
func (p *process) options(logger *slog.Logger) server.Options {
	return server.Options{Logger: logger, Metrics: p.metrics.Handler(), Observer: p.metrics, ConnRefused: p.metrics.ConnRefused}
}

// chainParts gives a runtime's chain its cache and observer. Without a process (the
// CLI's one-shot commands) each runtime gets its own memory cache and no metrics.
func (p *process) chainParts(cfg *configs.Config) (cache.Cache, providers.Observer) {
	if p == nil {
		return cache.NewMemory(cfg.Cache.MaxEntries, nil), nil
	}
	return p.cache, p.metrics
}

// installed tells the process that b serves from now on.
func (p *process) installed(cfg *configs.Config, b *built) {
	p.metrics.install(cfg, b)
}

// reloaded counts a reload and warns about what only a restart applies.
func (p *process) reloaded(logger *slog.Logger, cfg *configs.Config, old *server.Runtime, ok bool) {
	p.metrics.reloaded(ok)
	if !ok || cfg == nil {
		return
	}
	if !reflect.DeepEqual(cfg.Cache, p.cfg) {
		logger.Warn("cache section changed; it applies after a restart, the running cache keeps serving")
	}
	if old != nil && old.Config != nil {
		was, now := old.Config.Server, cfg.Server
		if was.Listen != now.Listen || was.AdminListen != now.AdminListen {
			logger.Warn("listen addresses changed; they apply after a restart")
		}
		if was.TLS != now.TLS {
			logger.Warn("server.tls file names changed; they apply after a restart (the files named at start are re-read on every reload)")
		}
	}
}

// dnsTimeout bounds the Spotnana token URL lookup of /readyz.
const dnsTimeout = time.Second

// health extends the providers' report with the process's other dependencies: the
// directories, the shared cache and Spotnana's token URL. None of them makes the
// replica unready: an outage is reported, and the replica keeps its place in the load
// balancer (the contract's /readyz).
func (p *process) health(cfg *configs.Config, dirs providers.Directories, base func(context.Context) (bool, map[string]any)) func(context.Context) (bool, map[string]any) {
	return func(ctx context.Context) (bool, map[string]any) {
		ready, out := base(ctx)
		if dh, ok := dirs.(interface {
			Health(context.Context) map[string]providers.Health
		}); ok {
			for name, h := range dh.Health(ctx) {
				out["directory:"+name] = h
			}
		}
		if p != nil {
			entry := map[string]any{"backend": "memory", "ok": true}
			if p.redis != nil {
				h := p.redis.Health(ctx)
				entry = map[string]any{"backend": "redis", "ok": h.OK, "degraded": h.Degraded, "detail": h.Detail,
					"topology": h.Topology, "primaries": h.Primaries}
			}
			out["cache"] = entry
		}
		if cfg.Spotnana != nil && cfg.Spotnana.TokenURL != "" {
			out["spotnana"] = resolvable(ctx, cfg.Spotnana.TokenURL)
		}
		return ready, out
	}
}

// resolvable reports whether the host of raw resolves: a cheap sign that Spotnana can
// be reached, which does not call Spotnana itself.
func resolvable(ctx context.Context, raw string) providers.Health {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return providers.Health{Ready: true, OK: false, Detail: "token_url has no host"}
	}
	host := u.Hostname()
	if net.ParseIP(host) != nil {
		return providers.Health{Ready: true, OK: true, Detail: "token_url host is an address"}
	}
	ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	if _, err := net.DefaultResolver.LookupHost(ctx, host); err != nil {
		return providers.Health{Ready: true, OK: false, Detail: "token_url host does not resolve"}
	}
	return providers.Health{Ready: true, OK: true, Detail: "token_url host resolves"}
}

// loadForReload loads path as `check` does: the file's errors and every provider's,
// each once, so that a refused reload logs all of them together.
func loadForReload(path string) (*configs.Config, configs.Errors) {
	cfg, errs := configs.Load(path)
	if cfg != nil {
		_, perrs := buildRuntime(cfg, slog.New(slog.DiscardHandler), nil, true)
		errs = append(errs, perrs...)
	}
	var out configs.Errors
	seen := map[string]bool{}
	for _, e := range errs {
		key := fmt.Sprintf("%s:%d:%s:%s", e.File, e.Line, e.Path, e.Msg)
		if !seen[key] {
			seen[key] = true
			out = append(out, e)
		}
	}
	return cfg, out
}
