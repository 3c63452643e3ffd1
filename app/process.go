package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/idbridge/idbridge/cache"
	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/playground"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/server"
)

// Process holds what `serve` builds once and every reload shares: the cache (so that a
// reload keeps the identities of unchanged providers and the Spotnana tokens) and the
// metrics (so that counters keep counting). Changing `cache:` needs a restart.
type Process struct {
	cache   cache.Cache
	redis   *cache.Redis // nil with the memory backend
	metrics *metrics
	cfg     configs.Cache // the cache section the process started with
	version string
}

// NewProcess builds the process-wide parts from the config loaded at start. version is
// exported as idbridge_build_info.
func NewProcess(cfg *configs.Config, logger *slog.Logger, version string) (*Process, error) {
	p := &Process{metrics: newMetrics(version), cfg: cfg.Cache, version: version}
	switch cfg.Cache.Backend {
	case "redis":
		// go-redis logs dial and sentinel failures through a logger of its own, one per
		// process, in plain text on stderr: send them to ours, at debug, since the cache
		// already logs each outage once with its reason.
		redis.SetLogger(redisLog{logger.With("component", "go-redis")})
		r, err := cache.NewRedis(cfg.Cache, cache.RedisOptions{Logger: logger.With("component", "cache")})
		if err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
		p.cache, p.redis = r, r
		p.metrics.watchRedis(r)
	default:
		p.cache = cache.NewMemory(cfg.Cache.MaxEntries, nil).LimitBytes(int64(cfg.Cache.MaxBytes))
	}
	return p, nil
}

// redisLog adapts slog to go-redis' logger.
type redisLog struct{ l *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.l.DebugContext(ctx, fmt.Sprintf(format, v...))
}

// Close releases the shared cache, once no runtime uses it any more.
func (p *Process) Close() error { return p.cache.Close() }

// Options are the server options that survive reloads.
func (p *Process) Options(logger *slog.Logger) server.Options {
	return server.Options{Logger: logger, Metrics: p.metrics.Handler(), Observer: p.metrics, ConnRefused: p.metrics.ConnRefused}
}

// Runtime starts plan (see Plan.Start) and assembles the runtime that serves it: the
// chain over the process's cache, the bridge, the health report and the exchange.
// Without a process (the CLI's one-shot commands, p nil) the runtime gets a memory cache
// of its own and no metrics. The runtime's Close closes the plan.
func (p *Process) Runtime(ctx context.Context, plan *Plan) (*server.Runtime, error) {
	if err := plan.Start(ctx); err != nil {
		return nil, err
	}
	cfg := plan.Config
	var c cache.Cache
	var obs providers.Observer
	if p == nil {
		c = cache.NewMemory(cfg.Cache.MaxEntries, nil).LimitBytes(int64(cfg.Cache.MaxBytes))
	} else {
		c, obs = p.cache, p.metrics
	}
	chain := providers.NewChain(plan.Instances, c, nil, obs)
	chain.SetRequestTimeout(cfg.Server.RequestTimeout)
	rt := &server.Runtime{
		Config: cfg,
		Bridge: server.NewBridge(chain, plan.Mapping, plan.Overrides, cfg.Response.EmailField, cfg.Response.Extra),
		Health: p.health(plan),
		Close:  plan.Close,
	}
	if plan.exchange != nil {
		x, err := plan.exchange.exchangeFunc(c)
		if err != nil {
			plan.Close()
			return nil, fmt.Errorf("spotnana: %w", err)
		}
		rt.Exchange, rt.JWKS = x, plan.exchange.jwks()
	}
	return rt, nil
}

// installed tells the process that plan serves from now on.
func (p *Process) installed(plan *Plan) { p.metrics.install(plan) }

// reloaded counts a reload and warns about what only a restart applies.
func (p *Process) reloaded(logger *slog.Logger, cfg *configs.Config, old *server.Runtime, ok bool) {
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
		if wl, nl := old.Config.Log, cfg.Log; wl.Level != nl.Level || wl.Format != nl.Format {
			logger.Warn("log section changed; level and format apply after a restart (redact_emails applies now)",
				"level", wl.Level, "format", wl.Format, "new_level", nl.Level, "new_format", nl.Format)
		}
	}
}

// dnsTimeout bounds the Spotnana token URL lookup of /readyz.
const dnsTimeout = time.Second

// health reports each provider and enrichment step that can tell its state, the
// directories, the shared cache and Spotnana's token URL. The replica is ready once one
// provider can serve: a provider that cannot yet (Health.Ready false: a jwt provider
// whose keys never loaded) is shown unready in the detail, but one IdP down during a
// scale-up must not keep new replicas, and every other issuer, out of the load balancer.
// An outage is reported, and the replica keeps its place (the contract's /readyz).
func (p *Process) health(plan *Plan) func(context.Context) (bool, server.Dependencies) {
	cfg := plan.Config
	return func(ctx context.Context) (bool, server.Dependencies) {
		ready := false
		deps := server.Dependencies{Providers: make(map[string]server.ProviderHealth, len(plan.Instances))}
		for _, in := range plan.Instances {
			entry := server.ProviderHealth{Type: in.Type}
			if h, ok := in.Provider.(providers.HealthChecker); !ok {
				ready = true // nothing to wait for
			} else {
				st := h.Health(ctx)
				ready = ready || st.Ready
				entry.Health = &st
			}
			for i, e := range in.Enrichers {
				if h, ok := e.(providers.HealthChecker); ok {
					if entry.Steps == nil {
						entry.Steps = map[int]providers.Health{}
					}
					entry.Steps[i] = h.Health(ctx)
				}
			}
			deps.Providers[in.Name] = entry
		}
		if plan.Directories != nil {
			deps.Directories = plan.Directories.Health(ctx)
		}
		if p != nil {
			deps.Cache = &server.CacheHealth{Backend: "memory", OK: true}
			if p.redis != nil {
				h := p.redis.Health(ctx)
				deps.Cache = &server.CacheHealth{Backend: "redis", OK: h.OK, RedisHealth: &server.RedisHealth{
					Degraded: h.Degraded, Detail: h.Detail, Topology: h.Topology, Primaries: h.Primaries}}
			}
		}
		if cfg.Spotnana != nil && cfg.Spotnana.TokenURL != "" {
			h := resolvable(ctx, cfg.Spotnana.TokenURL)
			deps.Spotnana = &h
		}
		return ready, deps
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

// ServeOptions are what `idbridge serve` passes to Serve.
type ServeOptions struct {
	Path     string // the config file, re-read on SIGHUP
	Registry providers.Registry
	Logger   *slog.Logger
	// AccessLog, when not nil, is the fast path for the per-request log line; it must
	// write to the same place as Logger.
	AccessLog *server.AccessLog
	// Ready, when not nil, receives the bound addresses once listening.
	Ready   func(main, admin string)
	Version string
	// Playground, when not nil, serves the mapping playground on the admin listener.
	Playground *playground.Options
}

// Serve runs the bridge for plan until ctx is done; SIGHUP reloads the file (Reload).
// plan must have loaded without fatal errors; Serve starts it.
func Serve(ctx context.Context, plan *Plan, o ServeOptions) error {
	logger := o.Logger
	proc, err := NewProcess(plan.Config, logger, o.Version)
	if err != nil {
		plan.Close()
		return err
	}
	defer proc.Close()
	rt, err := proc.Runtime(ctx, plan)
	if err != nil {
		return err
	}
	opts := proc.Options(logger)
	opts.AccessLog = o.AccessLog
	opts.Playground = o.Playground
	srv, err := server.New(rt, opts)
	if err != nil {
		plan.Close()
		return err
	}
	proc.installed(plan)
	mainLn, adminLn, err := srv.Listen()
	if err != nil {
		plan.Close()
		return err
	}
	// SIGHUP is caught before "idbridge serving" is logged: its default action would
	// kill a process reloaded as soon as it says it serves.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	adminAddr := ""
	if adminLn != nil {
		adminAddr = adminLn.Addr().String()
	}
	plan.warn(nil)
	logger.Info("idbridge serving", "version", o.Version, "listen", mainLn.Addr().String(), "admin_listen", adminAddr, "providers", len(plan.Instances))
	if o.Ready != nil {
		o.Ready(mainLn.Addr().String(), adminAddr)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				Reload(ctx, o.Path, o.Registry, logger, srv, proc)
			}
		}
	}()
	// The operator sees when the stop began and that in-flight requests finished.
	stopping := make(chan time.Time, 1)
	stopLine := context.AfterFunc(ctx, func() {
		began := time.Now()
		logger.Info("idbridge stopping: no new connections, finishing in-flight requests",
			"shutdown_timeout_ms", plan.Config.Server.ShutdownTimeout.Milliseconds())
		// Sent after the line is logged, so that "stopped" (which waits for it) always
		// follows it, and the line is in the log before the process flushes and exits.
		stopping <- began
	})
	err = srv.Serve(ctx, mainLn, adminLn)
	srv.Close()
	if !stopLine() && err == nil {
		logger.Info("idbridge stopped", "shutdown_ms", time.Since(<-stopping).Milliseconds())
	}
	return err
}

// Reload re-reads path; a valid config replaces the running one atomically, an invalid
// one is logged with every error and the old one keeps serving. The config is parsed
// once: the plan that was checked is the plan started. The cache is the process's:
// unchanged providers keep their entries. It reports whether the new config serves.
func Reload(ctx context.Context, path string, reg providers.Registry, logger *slog.Logger, srv *server.Server, proc *Process) bool {
	plan, errs := LoadFile(path, reg, logger)
	if plan == nil || len(errs.Fatal()) > 0 {
		plan.Close()
		logReloadErrors(logger, errs)
		proc.reloaded(logger, nil, nil, false)
		return false
	}
	plan.warn(errs)
	rt, err := proc.Runtime(ctx, plan)
	if err != nil {
		logger.Error("config reload refused; the previous config keeps serving", "error", err)
		proc.reloaded(logger, nil, nil, false)
		return false
	}
	old := srv.Current()
	adoptState(old, rt)
	if lost := lostProviders(ctx, old, rt); len(lost) > 0 {
		// A file that parses can still name a jwks_uri that does not answer: swapping it
		// in would turn a serving provider into one that refuses every token (503), on
		// every replica that reloads. The running config stays until the new one works.
		rt.Close()
		logger.Error("config reload refused; the previous config keeps serving: with the new config these providers could not get ready",
			"providers", lost)
		proc.reloaded(logger, nil, nil, false)
		return false
	}
	if err := srv.Swap(rt); err != nil {
		rt.Close()
		logger.Error("config reload refused", "error", err)
		proc.reloaded(logger, nil, nil, false)
		return false
	}
	proc.installed(plan)
	proc.reloaded(logger, plan.Config, old, true)
	if err := srv.ReloadTLS(); err != nil {
		logger.Error("TLS certificate reload failed; the previous certificate keeps serving", "error", err)
	}
	logger.Info("config reloaded", "providers", len(plan.Instances))
	return true
}

// adoptState lets each provider of next that replaces an unchanged one of old (same name
// and fingerprint) start from its state (providers.StateAdopter): a reload during an IdP
// outage keeps the keys the running provider has.
func adoptState(old, next *server.Runtime) {
	if old == nil || old.Bridge == nil || next.Bridge == nil {
		return
	}
	running := map[string]*providers.Instance{}
	for _, in := range old.Bridge.Chain().Instances() {
		running[in.Name+"\x00"+in.Fingerprint] = in
	}
	for _, in := range next.Bridge.Chain().Instances() {
		a, ok := in.Provider.(providers.StateAdopter)
		if prev := running[in.Name+"\x00"+in.Fingerprint]; ok && prev != nil {
			a.AdoptState(prev.Provider)
		}
	}
}

// lostProviders names each provider that is ready in the running runtime and not in its
// replacement, with the replacement's reason ("corp: no key set loaded yet: …"), and
// says so when the running runtime is ready and its replacement has no ready provider at
// all. A provider that was not ready before, or is new, is not counted otherwise: a
// reload may be what fixes it.
func lostProviders(ctx context.Context, old, next *server.Runtime) []string {
	if old == nil || old.Health == nil || next.Health == nil {
		return nil
	}
	wasReady, was := old.Health(ctx)
	nowReady, now := next.Health(ctx)
	var lost []string
	if wasReady && !nowReady {
		// Matching by name alone would let a renamed provider with dead keys through.
		lost = append(lost, "no provider of the new config is ready")
	}
	for name, h := range now.Providers {
		if h.Health == nil || h.Ready {
			continue
		}
		if w, ok := was.Providers[name]; ok && (w.Health == nil || w.Ready) {
			lost = append(lost, name+": "+h.Detail)
		}
	}
	slices.Sort(lost)
	return lost
}

func logReloadErrors(logger *slog.Logger, errs configs.Errors) {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs.Fatal() {
		msgs = append(msgs, e.Error())
	}
	logger.Error("config reload refused; the previous config keeps serving", "errors", msgs)
}
