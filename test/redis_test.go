package test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/idbridge/idbridge/cache/redistest"
	"github.com/idbridge/idbridge/spotnana"
)

// testCacheKey is a 32-byte encryption key, hex.
const testCacheKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

func redisTop(addr string) string {
	return fmt.Sprintf(`
cache:
  backend: redis
  redis: {addr: %q, key_prefix: "idb-test:"}
  encryption_key: %s
`, addr, testCacheKey)
}

// TestRedisSharedByReplicas runs two bridges on one Redis: what one learns (accepted
// identities, negative answers) the other reuses; Redis holds nothing in clear; a Redis
// crash degrades both to memory without failing a request, and sharing resumes after
// Redis comes back.
func TestRedisSharedByReplicas(t *testing.T) {
	rs := redistest.Start(t)
	idp := newIntrospector(t)
	cfg := introspectionConfig(idp.URL, "email", "", redisTop(rs.Addr()))
	a := startBridge(t, cfg)
	b := startBridge(t, cfg)

	get := func(br *bridge, tok string) response {
		t.Helper()
		return do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(tok))
	}
	if e := emailOf(t, get(a, "good-shared-1")); e != "alice@example.com" {
		t.Fatalf("replica A: %q", e)
	}
	if e := emailOf(t, get(b, "good-shared-1")); e != "alice@example.com" {
		t.Fatalf("replica B: %q", e)
	}
	if n := idp.lookups.Load(); n != 1 {
		t.Fatalf("introspection lookups = %d after both replicas answered one token, want 1", n)
	}
	// Negative answers are shared too.
	if r := get(a, "junk-1"); r.Status != 401 {
		t.Fatalf("junk on A: %d", r.Status)
	}
	if r := get(b, "junk-1"); r.Status != 401 {
		t.Fatalf("junk on B: %d", r.Status)
	}
	if n := idp.lookups.Load(); n != 2 {
		t.Fatalf("introspection lookups = %d after a junk token on both replicas, want 2", n)
	}

	t.Run("nothing in clear", func(t *testing.T) {
		rc := redis.NewClient(&redis.Options{Addr: rs.Addr()})
		defer rc.Close()
		ctx := context.Background()
		tokSum := sha256.Sum256([]byte("good-shared-1"))
		forbidden := []string{
			"good-shared-1", "junk-1", hex.EncodeToString(tokSum[:]), string(tokSum[:]),
			base64.StdEncoding.EncodeToString(tokSum[:]), base64.RawURLEncoding.EncodeToString(tokSum[:]),
			"alice", "example.com", "corp-intro", "s3cr3t-client-secret", testCacheKey,
		}
		var keys []string
		iter := rc.Scan(ctx, 0, "*", 100).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
		if len(keys) < 2 {
			t.Fatalf("Redis holds %d keys; the test expects the shared entries there", len(keys))
		}
		for _, k := range keys {
			v, err := rc.Get(ctx, k).Result()
			if err != nil && err != redis.Nil {
				t.Errorf("GET %q: %v", k, err)
			}
			for _, f := range forbidden {
				if strings.Contains(k, f) || strings.Contains(v, f) {
					t.Errorf("Redis entry %q holds %q in clear", k, f)
				}
			}
		}
	})

	// Redis crashes: both replicas keep answering from memory and report degraded mode.
	rs.Kill()
	for i := 0; i < 5; i++ {
		for _, br := range []*bridge{a, b} {
			if e := emailOf(t, get(br, fmt.Sprintf("good-outage-%d", i))); e != "alice@example.com" {
				t.Fatalf("during the outage: %q", e)
			}
		}
	}
	for _, br := range []*bridge{a, b} {
		eventually(t, "/readyz reports Redis degraded", func() bool {
			r := do(t, "GET", br.Admin+"/readyz", nil)
			if r.Status != 200 {
				t.Fatalf("/readyz during a Redis outage: %d %s (an outage must not make the replica unready)", r.Status, r.Body)
			}
			c, _ := r.JSON(t)["dependencies"].(map[string]any)["cache"].(map[string]any)
			return c["backend"] == "redis" && c["ok"] == false && c["degraded"] == true
		})
		if v, _ := sample(scrape(t, br), "idbridge_cache_redis_degraded"); v != 1 {
			t.Errorf("idbridge_cache_redis_degraded = %v during the outage", v)
		}
	}

	// Redis is back (empty): once both replicas have reconnected, a token learned by one
	// is again a hit on the other.
	rs.Restart()
	for _, br := range []*bridge{a, b} {
		eventually(t, "/readyz reports Redis back", func() bool {
			c, _ := do(t, "GET", br.Admin+"/readyz", nil).JSON(t)["dependencies"].(map[string]any)["cache"].(map[string]any)
			return c["ok"] == true
		})
	}
	n := 0
	eventually(t, "sharing resumes", func() bool {
		n++
		tok := fmt.Sprintf("good-after-%d", n)
		before := idp.lookups.Load()
		emailOf(t, get(a, tok))
		emailOf(t, get(b, tok))
		return idp.lookups.Load()-before == 1
	})
	if v, _ := sample(scrape(t, a), "idbridge_cache_redis_degraded"); v != 0 {
		t.Errorf("idbridge_cache_redis_degraded = %v after Redis came back", v)
	}
}

// TestRedisSharesSpotnanaTokens: a user's Spotnana token obtained through one replica is
// reused by the other, so Spotnana sees one exchange for the pair.
func TestRedisSharesSpotnanaTokens(t *testing.T) {
	rs := redistest.Start(t)
	is := newIssuer(t)
	srv, sw := inProcessSandbox(t)
	cfg := exchangeConfig(t, "127.0.0.1:0", is.URL(), srv.URL+spotnana.SandboxTokenPath, "")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(data, redisTop(rs.Addr())...), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startBridgeFile(t, cfg)
	b := startBridgeFile(t, cfg)
	// Spotnana calls user-detail back on replica A; either replica would do.
	sb := newSandbox(sw, spotnana.SandboxConfig{Users: []string{"alice@example.com"}, UserDetailURL: a.URL + "/v1/user-detail"})

	tok := mint(t, is, nil)
	first := wantTokens(t, exchange(t, a, tok))
	second := wantTokens(t, exchange(t, b, tok))
	if first["access_token"] != second["access_token"] {
		t.Fatal("replica B obtained a new Spotnana token instead of reusing A's")
	}
	if n := sb.Requests(); n != 1 {
		t.Fatalf("Spotnana saw %d token requests for two exchanges on two replicas, want 1", n)
	}
}
