package test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idbridge/idbridge/cache/redistest"
)

// redisSection is a `cache:` section with the given `cache.redis:` lines (indented by
// four spaces) under the test key.
func redisSection(redisLines ...string) string {
	return "\ncache:\n  backend: redis\n  encryption_key: " + testCacheKey + "\n  redis:\n    " + strings.Join(redisLines, "\n    ") + "\n"
}

// yamlList writes addrs as a YAML flow list.
func yamlList(addrs []string) string { return "[" + strings.Join(addrs, ", ") + "]" }

// traffic sends user-detail requests at a steady rate to bridges, round robin, until
// stopped, and counts the answers. Tokens repeat, so that most answers can come from
// the cache (Redis or, while it is away, memory).
type traffic struct {
	answered, failed atomic.Int64
	mu               sync.Mutex
	statuses         map[int]int // non-200 statuses (0: transport error)
	stop             chan struct{}
	wg               sync.WaitGroup
}

// startTraffic runs workers goroutines, each sending one request every period.
func startTraffic(bridges []*bridge, workers int, period time.Duration) *traffic {
	tr := &traffic{statuses: map[int]int{}, stop: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range workers {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			tick := time.NewTicker(period)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-tr.stop:
					return
				case <-tick.C:
				}
				br := bridges[(w+i)%len(bridges)]
				req, _ := http.NewRequest("GET", br.URL+"/v1/user-detail", nil)
				req.Header.Set("Authorization", fmt.Sprintf("Bearer good-load-%d", (w*7919+i)%40))
				status := 0
				if resp, err := client.Do(req); err == nil {
					status = resp.StatusCode
					resp.Body.Close()
				}
				if status == 200 {
					tr.answered.Add(1)
					continue
				}
				tr.failed.Add(1)
				tr.mu.Lock()
				tr.statuses[status]++
				tr.mu.Unlock()
			}
		}()
	}
	return tr
}

// end stops the traffic and fails the test on any answer other than 200.
func (tr *traffic) end(t *testing.T, what string) (answered, failed int64) {
	t.Helper()
	close(tr.stop)
	tr.wg.Wait()
	answered, failed = tr.answered.Load(), tr.failed.Load()
	if answered == 0 {
		t.Fatalf("%s: no request answered", what)
	}
	if failed != 0 {
		t.Errorf("%s: %d of %d requests failed, by status (0 = no answer): %v", what, failed, answered+failed, tr.statuses)
	}
	return answered, failed
}

// await waits until n more requests have completed: proof that the traffic ran through
// whatever happened just before, without betting on how fast it flows.
func (tr *traffic) await(t *testing.T, n int64) {
	t.Helper()
	target := tr.answered.Load() + tr.failed.Load() + n
	eventually(t, fmt.Sprintf("%d more requests of the traffic", n), func() bool {
		return tr.answered.Load()+tr.failed.Load() >= target
	})
}

// cacheHealth returns /readyz's cache entry of br.
func cacheHealth(t *testing.T, br *bridge) map[string]any {
	t.Helper()
	r := do(t, "GET", br.Admin+"/readyz", nil)
	if r.Status != 200 {
		t.Fatalf("/readyz: %d %s (a cache outage must not make the replica unready)", r.Status, r.Body)
	}
	c, _ := r.JSON(t)["dependencies"].(map[string]any)["cache"].(map[string]any)
	return c
}

// primaries returns the primaries /readyz reports.
func primaries(c map[string]any) []string {
	var out []string
	if l, ok := c["primaries"].([]any); ok {
		for _, a := range l {
			out = append(out, fmt.Sprint(a))
		}
	}
	return out
}

// sharingWorks reports whether a fresh token answered by a is a cache hit on b (one
// introspection for both answers).
func sharingWorks(t *testing.T, idp *introspector, a, b *bridge, tok string) bool {
	t.Helper()
	before := idp.lookups.Load()
	if e := emailOf(t, userDetail(t, a, tok)); e != "alice@example.com" {
		t.Fatalf("%s on A: %q", tok, e)
	}
	if e := emailOf(t, userDetail(t, b, tok)); e != "alice@example.com" {
		t.Fatalf("%s on B: %q", tok, e)
	}
	return idp.lookups.Load()-before == 1
}

// total sums the counter name over bridges.
func total(t *testing.T, name string, bridges ...*bridge) float64 {
	var n float64
	for _, br := range bridges {
		v, _ := sample(scrape(t, br), name)
		n += v
	}
	return n
}

// TestRedisSentinelFailover: two bridges share through a Sentinel set; the primary is
// killed under steady traffic. Every request is answered (from memory while no
// primary answers), the sentinels promote the replica, /readyz and the metrics name
// it, and a token validated by one bridge is a hit on the other again.
func TestRedisSentinelFailover(t *testing.T) {
	ss := redistest.StartSentinelSet(t, redistest.Options{})
	idp := newIntrospector(t)
	cfg := introspectionConfig(idp.URL, "email", "", redisSection(
		fmt.Sprintf("sentinel: {master_name: %s, addrs: %s}", redistest.MasterName, yamlList(ss.SentinelAddrs())),
		`key_prefix: "idb-test:"`))
	a, b := startBridge(t, cfg), startBridge(t, cfg)

	if !sharingWorks(t, idp, a, b, "good-sentinel-before") {
		t.Fatal("not shared through the Sentinel set before the failover")
	}
	for _, br := range []*bridge{a, b} {
		c := cacheHealth(t, br)
		if c["ok"] != true || c["topology"] != "sentinel" || !slices.Equal(primaries(c), []string{ss.Primary.Addr()}) {
			t.Fatalf("/readyz cache before the failover: %v (primary %s)", c, ss.Primary.Addr())
		}
	}

	tr := startTraffic([]*bridge{a, b}, 4, 40*time.Millisecond) // about 100 requests/s
	// The traffic flows when the primary dies.
	tr.await(t, 50)
	memBefore := total(t, "idbridge_cache_redis_fallback_hits_total", a, b)
	lookupsBefore := idp.lookups.Load()
	killed := time.Now()
	ss.Primary.Kill()
	eventually(t, "the sentinels promote the replica", func() bool { return ss.MasterAddr() == ss.Replica.Addr() })
	promoted := time.Since(killed)
	for _, br := range []*bridge{a, b} {
		eventually(t, "/readyz names the new primary", func() bool {
			c := cacheHealth(t, br)
			return c["ok"] == true && slices.Equal(primaries(c), []string{ss.Replica.Addr()})
		})
	}
	n := 0
	eventually(t, "sharing resumes through the new primary", func() bool {
		n++
		return sharingWorks(t, idp, a, b, fmt.Sprintf("good-sentinel-after-%d", n))
	})
	resumed := time.Since(killed)
	tr.await(t, 50) // and keeps flowing after the failover
	answered, failed := tr.end(t, "failover")
	fromMemory := total(t, "idbridge_cache_redis_fallback_hits_total", a, b) - memBefore
	t.Logf("sentinel failover under load (2 bridges, 4 workers, 1 request each per 40ms): answered %d, failed %d; "+
		"identity lookups answered from memory %.0f; IdP calls meanwhile %d; promoted after %v, sharing resumed after %v",
		answered, failed, fromMemory, idp.lookups.Load()-lookupsBefore, promoted.Round(10*time.Millisecond), resumed.Round(10*time.Millisecond))

	for _, br := range []*bridge{a, b} {
		fams := scrape(t, br)
		if v, ok := sample(fams, "idbridge_cache_redis_primary", "topology", "sentinel", "addr", ss.Replica.Addr()); !ok || v != 1 {
			t.Errorf("idbridge_cache_redis_primary{addr=%s} = %v, %v", ss.Replica.Addr(), v, ok)
		}
		if _, ok := sample(fams, "idbridge_cache_redis_primary", "addr", ss.Primary.Addr()); ok {
			t.Error("the killed primary is still exported as a primary")
		}
		if v, _ := sample(fams, "idbridge_cache_redis_primary_changes_total"); v < 1 {
			t.Errorf("idbridge_cache_redis_primary_changes_total = %v after a failover", v)
		}
	}
}

// TestRedisCluster: two bridges share through a 3-primary Redis Cluster; entries
// spread over every node; an admin purge on one bridge reaches the entries on every
// node; moving the slot that holds the generations (and the slots before it on its
// node) to another node, under traffic, fails no request, and sharing goes on afterwards.
func TestRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	idp := newIntrospector(t)
	cfg := introspectionConfig(idp.URL, "email", "", redisSection(
		fmt.Sprintf("cluster: {addrs: %s}", yamlList(cl.Addrs()[:1])), // one seed is enough
		`key_prefix: "idb-test:"`))
	a, b := startBridge(t, cfg), startBridge(t, cfg)

	const tokens = 30
	for i := range tokens {
		if !sharingWorks(t, idp, a, b, fmt.Sprintf("good-cluster-%d", i)) {
			t.Fatalf("token %d not shared through the cluster", i)
		}
	}
	for _, n := range cl.Nodes {
		if size, _ := n.String("DBSIZE"); size == "0" {
			t.Fatalf("node %s holds no key: entries do not spread over the cluster", n.Addr())
		}
	}
	c := cacheHealth(t, a)
	if c["topology"] != "cluster" || len(primaries(c)) != 3 {
		t.Fatalf("/readyz cache: %v", c)
	}

	t.Run("purge reaches every node", func(t *testing.T) {
		purge(t, a)
		// Another replica sees a purge once it reads the generations again (it reuses
		// them for up to a second): wait until B looks the first token up again.
		eventually(t, "B sees the purge", func() bool {
			before := idp.lookups.Load()
			if e := emailOf(t, userDetail(t, b, "good-cluster-0")); e != "alice@example.com" {
				t.Fatalf("after the purge: %q", e)
			}
			return idp.lookups.Load() > before
		})
		before := idp.lookups.Load()
		for i := 1; i < tokens; i++ {
			if e := emailOf(t, userDetail(t, b, fmt.Sprintf("good-cluster-%d", i))); e != "alice@example.com" {
				t.Fatalf("after the purge: %q", e)
			}
		}
		if n := idp.lookups.Load() - before; n != tokens-1 {
			t.Fatalf("after a purge on A, B looked up %d of the other %d tokens again; purged entries were served", n, tokens-1)
		}
	})

	t.Run("resharding under traffic", func(t *testing.T) {
		from := cl.Owner(t, "{gen}")
		to := cl.Nodes[0]
		if to == from {
			to = cl.Nodes[1]
		}
		tr := startTraffic([]*bridge{a, b}, 4, 40*time.Millisecond)
		tr.await(t, 50) // the traffic flows while the slot moves
		cl.Reshard(t, from, to, "{gen}")
		tr.await(t, 50) // and after it moved
		answered, failed := tr.end(t, "resharding")
		t.Logf("resharding under load: answered %d, failed %d", answered, failed)
		if cl.Owner(t, "{gen}") != to {
			t.Fatal("control: the generations' slot did not move")
		}
		n := 0
		eventually(t, "sharing after the resharding", func() bool {
			n++
			return sharingWorks(t, idp, a, b, fmt.Sprintf("good-cluster-after-%d", n))
		})
		eventually(t, "/readyz names the primaries", func() bool { return len(primaries(cacheHealth(t, a))) >= 2 })
	})
}

// TestRedisTLSAndACL: a Redis that speaks only TLS, asks for a client certificate,
// and knows an ACL user limited to the idbridge: key prefix. Two bridges share through
// it (password and key from files); a wrong password and a user without rights on
// our keys are reported at start and in /readyz, and the bridge serves from memory.
func TestRedisTLSAndACL(t *testing.T) {
	tf := redistest.NewTLSFiles(t)
	rs := redistest.StartWith(t, redistest.Options{TLS: tf, ClientCerts: true, Conf: []string{
		"user default off",
		"user idbridge on >idb-s3cret resetkeys ~idbridge:* resetchannels -@all +@read +@write +@connection +ping",
		"user outsider on >out-s3cret resetkeys ~other:* resetchannels -@all +@read +@write +@connection +ping",
	}})
	dir := t.TempDir()
	for name, content := range map[string]string{"idb-pw": "idb-s3cret\n", "out-pw": "out-s3cret\n", "key": testCacheKey + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	section := func(user, pwFile string) string {
		return fmt.Sprintf(`
cache:
  backend: redis
  encryption_key: ${file:%s}
  redis:
    addr: %s
    username: %s
    password: ${file:%s}
    tls: true
    ca_file: %s
    client_cert_file: %s
    client_key_file: %s
`, filepath.Join(dir, "key"), rs.Addr(), user, filepath.Join(dir, pwFile), tf.CA, tf.ClientCert, tf.ClientKey)
	}
	idp := newIntrospector(t)

	t.Run("sharing as the ACL user over TLS", func(t *testing.T) {
		cfg := introspectionConfig(idp.URL, "email", "", section("idbridge", "idb-pw"))
		a, b := startBridge(t, cfg), startBridge(t, cfg)
		if !sharingWorks(t, idp, a, b, "good-tls-1") {
			t.Fatal("not shared through the TLS Redis")
		}
		if c := cacheHealth(t, a); c["ok"] != true {
			t.Fatalf("/readyz cache: %v", c)
		}
		purge(t, a)
		if strings.Contains(a.Logs()+b.Logs(), "idb-s3cret") {
			t.Fatal("the Redis password is in a log")
		}
	})

	cases := []struct{ name, user, pwFile, reason string }{
		{"wrong password", "idbridge", "out-pw", "WRONGPASS"},
		{"user without rights on our keys", "outsider", "out-pw", "NOPERM"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			br := startBridge(t, introspectionConfig(idp.URL, "email", "", section(tc.user, tc.pwFile)))
			if !strings.Contains(br.Logs(), "serving from memory") || !strings.Contains(br.Logs(), tc.reason) {
				t.Errorf("start log does not report %s:\n%s", tc.reason, br.Logs())
			}
			c := cacheHealth(t, br)
			if c["ok"] != false || c["degraded"] != true || !strings.Contains(fmt.Sprint(c["detail"]), tc.reason) {
				t.Errorf("/readyz cache: %v, want degraded with %s", c, tc.reason)
			}
			before := idp.lookups.Load()
			for range 3 {
				if e := emailOf(t, userDetail(t, br, "good-tls-mem")); e != "alice@example.com" {
					t.Fatalf("user-detail: %q", e)
				}
			}
			if n := idp.lookups.Load() - before; n != 1 {
				t.Errorf("%d lookups for one token asked 3 times: the memory fallback does not serve", n)
			}
			if strings.Contains(br.Logs()+fmt.Sprint(c), "s3cret") {
				t.Fatal("a Redis password is in a log or in /readyz")
			}
		})
	}

	t.Run("check reads the TLS files", func(t *testing.T) {
		// A CA file that exists but holds no certificate; and one that is absent, which
		// plain check only warns about (the file may exist where idbridge runs).
		cfg := introspectionConfig(idp.URL, "email", "", strings.Replace(section("idbridge", "idb-pw"), tf.CA, filepath.Join(dir, "key"), 1))
		code, _, stderr := runCLI(t, "", "check", "--config", writeConfig(t, cfg))
		if code != 2 || !strings.Contains(stderr, "cache.redis.ca_file: no PEM certificate") {
			t.Fatalf("check: exit %d, stderr:\n%s", code, stderr)
		}
		cfg = introspectionConfig(idp.URL, "email", "", strings.Replace(section("idbridge", "idb-pw"), tf.CA, filepath.Join(dir, "missing-ca.pem"), 1))
		path := writeConfig(t, cfg)
		if code, _, stderr := runCLI(t, "", "check", "--strict", "--config", path); code != 2 || !strings.Contains(stderr, "cache.redis.ca_file") {
			t.Fatalf("check --strict, absent ca_file: exit %d, stderr:\n%s", code, stderr)
		}
		if code, _, stderr := runCLI(t, "", "check", "--config", path); code != 0 || !strings.Contains(stderr, "cache.redis.ca_file: warning") {
			t.Fatalf("check, absent ca_file: exit %d, stderr:\n%s", code, stderr)
		}
	})
}

// TestRedisSentinelTLS: the Sentinel shape over TLS (sentinels and data servers both
// speak only TLS, under a test CA): two bridges share, and a failover is followed.
func TestRedisSentinelTLS(t *testing.T) {
	tf := redistest.NewTLSFiles(t)
	ss := redistest.StartSentinelSet(t, redistest.Options{TLS: tf})
	idp := newIntrospector(t)
	cfg := introspectionConfig(idp.URL, "email", "", redisSection(
		fmt.Sprintf("sentinel: {master_name: %s, addrs: %s}", redistest.MasterName, yamlList(ss.SentinelAddrs())),
		"tls: true", "ca_file: "+tf.CA))
	a, b := startBridge(t, cfg), startBridge(t, cfg)
	if !sharingWorks(t, idp, a, b, "good-sentinel-tls-before") {
		t.Fatal("not shared through the Sentinel set over TLS")
	}
	ss.Primary.Kill()
	eventually(t, "the sentinels promote the replica", func() bool { return ss.MasterAddr() == ss.Replica.Addr() })
	for _, br := range []*bridge{a, b} {
		eventually(t, "/readyz names the new primary", func() bool {
			c := cacheHealth(t, br)
			return c["ok"] == true && slices.Equal(primaries(c), []string{ss.Replica.Addr()})
		})
	}
	n := 0
	eventually(t, "sharing resumes over TLS", func() bool {
		n++
		return sharingWorks(t, idp, a, b, fmt.Sprintf("good-sentinel-tls-after-%d", n))
	})
}
