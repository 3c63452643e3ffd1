package app

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
	"github.com/idbridge/idbridge/providers"
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
	connsRefused    *prometheus.CounterVec

	// Children already looked up, per label set: WithLabelValues hashes and locks on
	// every call, and these run several times per request.
	requestChildren  sync.Map                 // requestKey → *requestChild
	providerChildren sync.Map                 // [2]string{provider, outcome} → *providerChild
	cacheChildren    [2][4]prometheus.Counter // [miss, hit][kind]; only the kinds the chain reports

	// view is what the scrape-time collectors read: the runtime serving now.
	view     atomic.Pointer[runtimeView]
	counters *counterCollector
}

// runtimeView is the part of a runtime that scrape-time collectors read.
type runtimeView struct {
	instances []*providers.Instance
	dirs      providers.Directories
}

var (
	_ server.RequestObserver = (*metrics)(nil)
	_ providers.Observer     = (*metrics)(nil)
)

// Latency buckets: from a cache hit (tens of microseconds) to an IdP call near its
// timeout.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics(version string) *metrics {
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
	m.connsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idbridge_connections_refused_total",
		Help: "API connections closed on accept for being over server.max_connections (reason total) or max_connections_per_client (reason per_client).",
	}, []string{"reason"})
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "idbridge_build_info",
		Help: "Always 1; the labels carry the build's version and Go version.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	m.counters = &counterCollector{m: m, seen: map[providers.Counters]countersSeen{}, totals: map[counterKey]float64{}, help: map[string]string{}}

	m.reg.MustRegister(
		m.requests, m.requestDuration, m.providerResults, m.providerLatency,
		m.cacheResults, m.exchanges, m.reloads, m.connsRefused, buildInfo, m.counters, &poolCollector{m: m},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Zero-valued series for the reload results, so that an alert on errors works
	// before the first reload.
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("error")
	m.connsRefused.WithLabelValues(server.ConnRefusedTotal)
	m.connsRefused.WithLabelValues(server.ConnRefusedPerClient)
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

// ConnRefused counts an API connection refused for reason (server.Options.ConnRefused).
func (m *metrics) ConnRefused(reason string) { m.connsRefused.WithLabelValues(reason).Inc() }

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

// install points the scrape-time collectors at the plan now serving.
func (m *metrics) install(p *Plan) {
	// The view first: a scrape in between must not take the new providers, not yet in
	// the view, for retired ones.
	m.view.Store(&runtimeView{instances: p.Instances, dirs: p.Directories})
	m.counters.track(p.Instances)
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
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "idbridge_cache_redis_fallback_total",
			Help: "Cache calls served by the memory fallback while Redis was unreachable.",
		}, func() float64 { return float64(r.Stats().Fallback) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "idbridge_cache_redis_fallback_hits_total",
			Help: "Cache lookups answered from the memory fallback (an entry found) while Redis was unreachable.",
		}, func() float64 { return float64(r.Stats().FallbackHits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "idbridge_cache_redis_primary_changes_total",
			Help: "Times the set of Redis primaries changed (a Sentinel failover, a Cluster resharding or failover).",
		}, func() float64 { return float64(r.Stats().PrimaryMoves) }),
		redisPrimaries{r},
	)
}

// redisPrimaries exports idbridge_cache_redis_primary{topology, addr} = 1 for each
// primary last seen, so that a dashboard shows which server serves now.
type redisPrimaries struct{ r *cache.Redis }

var redisPrimaryDesc = prometheus.NewDesc("idbridge_cache_redis_primary",
	"1 for each Redis primary this replica last saw (standalone: the address; sentinel: the sentinels' answer; cluster: every slot owner).",
	[]string{"topology", "addr"}, nil)

func (c redisPrimaries) Describe(ch chan<- *prometheus.Desc) { ch <- redisPrimaryDesc }

func (c redisPrimaries) Collect(ch chan<- prometheus.Metric) {
	st := c.r.Stats()
	for _, a := range st.Primaries {
		ch <- prometheus.MustNewConstMetric(redisPrimaryDesc, prometheus.GaugeValue, 1, st.Topology, a)
	}
}

// counterCollector turns the counters providers keep (providers.Counters: the jwt
// provider's key loads) into one monotonic counter per provider name. A reload builds
// new providers whose counters start at zero, so it adds the increase it sees on each
// provider since the previous scrape rather than reporting the providers' own totals.
// Providers are tracked when installed, not when first scraped, so that one retired
// before any scrape still counts; a retired provider is read one last time.
type counterCollector struct {
	m *metrics

	mu     sync.Mutex
	seen   map[providers.Counters]countersSeen
	totals map[counterKey]float64
	help   map[string]string // metric name → help, as the providers declare it
	descs  map[string]*prometheus.Desc
}

type countersSeen struct {
	name string
	last map[[2]string]int64 // {counter name, result} → value at the last scrape
}

type counterKey struct{ metric, provider, result string }

// Describe sends nothing: the series are declared by the providers, so the collector
// is unchecked.
func (c *counterCollector) Describe(chan<- *prometheus.Desc) {}

func (c *counterCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	current := map[providers.Counters]bool{}
	if v := c.m.view.Load(); v != nil {
		for _, in := range v.instances {
			if p, ok := in.Provider.(providers.Counters); ok {
				current[p] = true
			}
		}
	}
	for p, prev := range c.seen {
		now := map[[2]string]int64{}
		for _, ct := range p.Counters() {
			k := [2]string{ct.Name, ct.Result}
			now[k] = ct.Value
			c.help[ct.Name] = ct.Help
			c.add(counterKey{ct.Name, prev.name, ct.Result}, ct.Value-prev.last[k])
		}
		if current[p] {
			c.seen[p] = countersSeen{name: prev.name, last: now}
		} else {
			delete(c.seen, p)
		}
	}
	if c.descs == nil {
		c.descs = map[string]*prometheus.Desc{}
	}
	for k, v := range c.totals {
		d := c.descs[k.metric]
		if d == nil {
			d = prometheus.NewDesc("idbridge_"+k.metric+"_total", c.help[k.metric], []string{"provider", "result"}, nil)
			c.descs[k.metric] = d
		}
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, k.provider, k.result)
	}
}

// track starts counting the providers among instances that keep counters.
func (c *counterCollector) track(instances []*providers.Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, in := range instances {
		if p, ok := in.Provider.(providers.Counters); ok {
			if _, seen := c.seen[p]; !seen {
				c.seen[p] = countersSeen{name: in.Name}
			}
		}
	}
}

func (c *counterCollector) add(k counterKey, delta int64) {
	if _, ok := c.totals[k]; !ok || delta > 0 {
		c.totals[k] += float64(max(delta, 0))
	}
}

// poolCollector reports the directory pools of the runtime serving now.
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
	for name, st := range v.dirs.PoolStats() {
		ch <- prometheus.MustNewConstMetric(poolDesc, prometheus.GaugeValue, float64(st.InUse), name, "in_use")
		ch <- prometheus.MustNewConstMetric(poolDesc, prometheus.GaugeValue, float64(st.Idle), name, "idle")
	}
}
