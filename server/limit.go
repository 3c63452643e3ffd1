package server

import (
	"math"
	"sync"
	"time"
)

// maxBuckets bounds the buckets held at once. Sweeps only drop buckets that are full
// again, which at a low rate takes long: a caller with many addresses (an IPv6 range)
// could otherwise grow the map without limit in between.
const maxBuckets = 100_000

// limiter is a per-client token bucket (server.rate_limit). Buckets idle long enough to
// be full again are dropped, and at most max are held, so memory stays bounded.
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	max   int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rps float64, burst int, now func() time.Time) *limiter {
	b := float64(burst)
	if b <= 0 {
		b = math.Max(1, math.Ceil(rps))
	}
	return &limiter{rate: rps, burst: b, max: maxBuckets, now: now, buckets: make(map[string]*bucket), swept: now()}
}

// allow takes one token from client's bucket.
func (l *limiter) allow(client string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		full := time.Duration(l.burst / l.rate * float64(time.Second))
		for k, b := range l.buckets {
			if now.Sub(b.last) > full {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[client]
	if !ok {
		if len(l.buckets) >= l.max {
			// Full of recently active clients: forget one (map order makes it arbitrary).
			// That client starts again with a full bucket, which errs on its side.
			for k := range l.buckets {
				delete(l.buckets, k)
				break
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[client] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// retryAfter is the whole seconds until one token is back.
func (l *limiter) retryAfter() int {
	return int(math.Max(1, math.Ceil(1/l.rate)))
}
