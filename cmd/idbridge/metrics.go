package main

import (
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/idbridge/idbridge/cache"
	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/providers/jwt"
	"github.com/idbridge/idbridge/server"
)

// metrics is the process's Prometheus registry and every series idbridge exports. One
// value per process, passed to whoever measures: it outlives reloads, so counters keep
// counting when a new config comes in. Its own registry (not the global default) keeps
// tests and embedded uses free of each other's series.
type metrics struct {
	reg *prometheus.Registry

	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	providerResults *prometheus.CounterVec
	providerLatency *prometheus.HistogramVec
	cacheResults    *prometheus.CounterVec
	exchanges       *prometheus.CounterVec
	reloads         *prometheus.CounterVec

	// Children already looked up, per label set: WithLabelValues hashes and locks on
	// every call, and these run several times per request.
	requestChildren  sync.Map                 // requestKey → *requestChild
	providerChildren sync.Map                 // [2]string{provider, outcome} → *providerChild
	cacheChildren    [2][4]prometheus.Counter // [miss, hit][kind]; only the kinds the chain reports

	// view is what the scrape-time collectors read: the runtime serving now.
	view atomic.Pointer[runtimeView]
	jwks *jwksCollector
}

// runtimeView is the part of a runtime that scrape-time collectors read.
type runtimeView struct {
	instances []*providers.Instance
	dirs      providers.Directories
	dirNames  []string
}

// poolStater is what an LDAP directory pool offers for metrics. It is an interface so
// that providers/ldap owns the implementation: its *Directory satisfies it with a
// one-line PoolStats method over its Stats.
type poolStater interface {
	PoolStats() (inUse, idle int)
}

var (
	_ server.RequestObserver = (*metrics)(nil)
	_ providers.Observer     = (*metrics)(nil)
)

// Latency buckets: from a cache hit (tens of microseconds) to an IdP call near its
// timeout.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idbridge_http_requests_total",
		Help: "API requests answered, by route and HTTP status.",
	}, []string{"route", "code"})
	m.requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "idbridge_http_request_duration_seconds",
		Help:    "Time to answer an API request, by route and HTTP status.",
		Buckets: latencyBuckets,
	}, []string{"route", "code"})
	m.providerResults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idbridge_provider_outcomes_total",
		Help: "Verdicts of each provider consulted by the chain (accepted, not_mine, invalid, unavailable, denied), cache hits included.",
	}, []string{"provider", "outcome"})
	m.providerLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "idbridge_provider_duration_seconds",
		Help:    "Time a provider took to decide, enrichment steps included; answers from the cache are not observed.",
		Buckets: latencyBuckets,
	}, []string{"provider", "outcome"})
	m.cacheResults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idbridge_cache_requests_total",
		Help: "Cache lookups by kind (identity, negative) and result (hit, miss).",
	}, []string{"kind", "result"})
	for h, result := range []string{"miss", "hit"} {
		for _, k := range []cache.Kind{cache.Identity, cache.Negative} {
			m.cacheChildren[h][k] = m.cacheResults.WithLabelValues(k.String(), result)
		}
	}
	m.exchanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idbridge_exchanges_total",
		Help: "Token exchanges by outcome.",
	}, []string{"outcome"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idbridge_config_reloads_total",
		Help: "Configuration reloads (SIGHUP) by result: ok, or error when the old config keeps serving.",
	}, []string{"result"})
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "idbridge_build_info",
		Help: "Always 1; the labels carry the build's version and Go version.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	m.jwks = &jwksCollector{m: m, seen: map[*jwt.Provider]jwksSeen{}, totals: map[jwksKey]float64{}}

	m.reg.MustRegister(
		m.requests, m.requestDuration, m.providerResults, m.providerLatency,
		m.cacheResults, m.exchanges, m.reloads, buildInfo, m.jwks, &poolCollector{m: m},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Zero-valued series for the reload results, so that an alert on errors works
	// before the first reload.
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("error")
	return m
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Request implements server.RequestObserver.
func (m *metrics) Request(route string, status int, d time.Duration) {
	k := requestKey{route, status}
	ch, ok := m.requestChildren.Load(k)
	if !ok {
		code := strconv.Itoa(status)
		ch, _ = m.requestChildren.LoadOrStore(k, &requestChild{
			count:   m.requests.WithLabelValues(route, code),
			latency: m.requestDuration.WithLabelValues(route, code),
		})
	}
	c := ch.(*requestChild)
	c.count.Inc()
	c.latency.Observe(d.Seconds())
}

type requestKey struct {
	route  string
	status int
}

type requestChild struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

type providerChild struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

// Exchange implements server.RequestObserver.
func (m *metrics) Exchange(outcome string) { m.exchanges.WithLabelValues(outcome).Inc() }

// ProviderOutcome implements providers.Observer. The chain reports a zero duration for
// an answer from the cache: observing it would drown the providers' real latency.
func (m *metrics) ProviderOutcome(provider, outcome string, d time.Duration) {
	k := [2]string{provider, outcome}
	ch, ok := m.providerChildren.Load(k)
	if !ok {
		ch, _ = m.providerChildren.LoadOrStore(k, &providerChild{
			count:   m.providerResults.WithLabelValues(provider, outcome),
			latency: m.providerLatency.WithLabelValues(provider, outcome),
		})
	}
	c := ch.(*providerChild)
	c.count.Inc()
	if d > 0 {
		c.latency.Observe(d.Seconds())
	}
}

// CacheResult implements providers.Observer.
func (m *metrics) CacheResult(kind cache.Kind, hit bool) {
	h := 0
	if hit {
		h = 1
	}
	if int(kind) < len(m.cacheChildren[h]) {
		if c := m.cacheChildren[h][kind]; c != nil {
			c.Inc()
			return
		}
	}
	m.cacheResults.WithLabelValues(kind.String(), [2]string{"miss", "hit"}[h]).Inc()
}

// reloaded counts one reload by its result.
func (m *metrics) reloaded(ok bool) {
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
	} else {
		m.reloads.WithLabelValues("error").Inc()
	}
}

// install points the scrape-time collectors at the runtime now serving.
func (m *metrics) install(cfg *configs.Config, b *built) {
	v := &runtimeView{instances: b.instances, dirs: b.dirs}
	for name := range cfg.Directories {
		v.dirNames = append(v.dirNames, name)
	}
	// The view first: a scrape in between must not take the new providers, not yet in
	// the view, for retired ones.
	m.view.Store(v)
	m.jwks.track(b.instances)
}

// watchRedis exports the shared cache's state: degraded (Redis unreachable, memory
// serving) and its error count.
func (m *metrics) watchRedis(r *cache.Redis) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "idbridge_cache_redis_degraded",
			Help: "1 while Redis is unreachable and this replica serves from its memory fallback.",
		}, func() float64 {
			if r.Degraded() {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "idbridge_cache_redis_errors_total",
			Help: "Redis calls that failed (each one a miss or a lost write).",
		}, func() float64 { return float64(r.Stats().Errors) }),
	)
}

// jwksCollector turns the jwt providers' key-load counters into one monotonic counter
// per provider name. A reload builds new providers whose counters start at zero, so it
// adds the increase it sees on each provider since the previous scrape rather than
// reporting the providers' own totals. Providers are tracked when installed, not when
// first scraped, so that one retired before any scrape still counts; a retired
// provider is read one last time.
type jwksCollector struct {
	m *metrics

	mu     sync.Mutex
	seen   map[*jwt.Provider]jwksSeen
	totals map[jwksKey]float64
}

type jwksSeen struct {
	name  string
	stats jwt.Stats
}

type jwksKey struct{ provider, result string }

var jwksDesc = prometheus.NewDesc("idbridge_jwks_refreshes_total",
	"JWKS loads of jwt providers by result: ok (new key set in use), error (IdP unreachable), invalid (unusable answer), rate_limited (unknown-kid refresh refused).",
	[]string{"provider", "result"}, nil)

var jwksKeysDesc = prometheus.NewDesc("idbridge_jwks_keys",
	"Keys in the last key set each jwt provider loaded, by state: usable, or skipped as unusable (each skipped key is logged with its kid and reason).",
	[]string{"provider", "state"}, nil)

func (c *jwksCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jwksDesc
	ch <- jwksKeysDesc
}

func (c *jwksCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	current := map[*jwt.Provider]bool{}
	if v := c.m.view.Load(); v != nil {
		for _, in := range v.instances {
			if p, ok := in.Provider.(*jwt.Provider); ok {
				current[p] = true
			}
		}
	}
	for p, prev := range c.seen {
		now := p.Stats()
		if current[p] {
			ch <- prometheus.MustNewConstMetric(jwksKeysDesc, prometheus.GaugeValue, float64(now.UsableKeys), prev.name, "usable")
			ch <- prometheus.MustNewConstMetric(jwksKeysDesc, prometheus.GaugeValue, float64(now.SkippedKeys), prev.name, "skipped")
		}
		c.add(prev.name, jwt.ResultOK, now.OK-prev.stats.OK)
		c.add(prev.name, jwt.ResultError, now.Error-prev.stats.Error)
		c.add(prev.name, jwt.ResultInvalid, now.Invalid-prev.stats.Invalid)
		c.add(prev.name, jwt.ResultRateLimited, now.RateLimited-prev.stats.RateLimited)
		if current[p] {
			c.seen[p] = jwksSeen{name: prev.name, stats: now}
		} else {
			delete(c.seen, p)
		}
	}
	for k, v := range c.totals {
		ch <- prometheus.MustNewConstMetric(jwksDesc, prometheus.CounterValue, v, k.provider, k.result)
	}
}

// track starts counting the jwt providers among instances.
func (c *jwksCollector) track(instances []*providers.Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, in := range instances {
		if p, ok := in.Provider.(*jwt.Provider); ok {
			if _, seen := c.seen[p]; !seen {
				c.seen[p] = jwksSeen{name: in.Name}
			}
		}
	}
}

func (c *jwksCollector) add(name, result string, delta int64) {
	k := jwksKey{name, result}
	if _, ok := c.totals[k]; !ok || delta > 0 {
		c.totals[k] += float64(max(delta, 0))
	}
}

// poolCollector reports the LDAP pools of the runtime serving now.
type poolCollector struct{ m *metrics }

var poolDesc = prometheus.NewDesc("idbridge_ldap_pool_connections",
	"Connections of each directory's pool, by state (in_use, idle).",
	[]string{"directory", "state"}, nil)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) { ch <- poolDesc }

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.m.view.Load()
	if v == nil || v.dirs == nil {
		return
	}
	for _, name := range v.dirNames {
		d, ok := v.dirs.Directory(name)
		if !ok {
			continue
		}
		ps, ok := d.(poolStater)
		if !ok {
			continue
		}
		inUse, idle := ps.PoolStats()
		ch <- prometheus.MustNewConstMetric(poolDesc, prometheus.GaugeValue, float64(inUse), name, "in_use")
		ch <- prometheus.MustNewConstMetric(poolDesc, prometheus.GaugeValue, float64(idle), name, "idle")
	}
}
