package main

import (
	"fmt"
	"log"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"bufio"

	"github.com/idbridge/idbridge/demoissuer"
)

// memResult is the per-identity memory measure.
type memResult struct {
	Identities    int     `json:"identities"`
	Alg           string  `json:"alg"`
	RSSBeforeKB   int64   `json:"rss_before_kb"`
	RSSAfterKB    int64   `json:"rss_after_kb"`
	PeakKB        int64   `json:"peak_rss_kb"`
	BytesPerIdent float64 `json:"bytes_per_identity"`
	CacheHits     float64 `json:"replay_hits"`   // from /metrics, when idbridge exposes them
	Replayed      int     `json:"replayed"`      // tokens sent again to check they stayed cached
	ReplayCPUus   float64 `json:"replay_cpu_us"` // CPU per replayed request: a hit costs a few µs, a verify tens
	Note          string  `json:"note"`
}

// setupMemory mints the tokens for the per-identity measure. They are ES256, not
// RS256: minting 100,000 RSA signatures would take minutes on two cores, and the
// cached document (the verified claims) does not depend on the algorithm.
func (sc *scenarios) setupMemory(e *env) error {
	is, err := demoissuer.NewIssuer(demoissuer.WithAlgorithms("ES256"))
	if err != nil {
		return err
	}
	e.atExit(is.Close)
	t0 := time.Now()
	tokens, err := mintAll(e.o.memTokens, func(i int) (string, error) { return is.Mint(userClaims(i), demoissuer.WithAlg("ES256")) })
	if err != nil {
		return err
	}
	log.Printf("minted %d ES256 tokens in %s", len(tokens), time.Since(t0).Round(time.Millisecond))
	sc.mem = func(e *env) (*memResult, error) {
		// Room for every token even with uneven shards, so nothing is evicted.
		cfg := fmt.Sprintf("cache: {max_entries: %d}\n", len(tokens)*6/5) +
			jwtConfig(is.URL(), "    algorithms: [ES256]\n")
		s, err := startIdbridge(e, "idbridge-mem", cfg)
		if err != nil {
			return nil, err
		}
		defer s.stop()
		// Warm the process (buffers, pools, one identity) before the baseline reading.
		if err := sendAll(s.addr, 8, [][]byte{getRequest(s.addr, "/v1/user-detail", tokens[0])}, 2000); err != nil {
			return nil, err
		}
		time.Sleep(500 * time.Millisecond)
		r := &memResult{Identities: len(tokens), Alg: "ES256", RSSBeforeKB: memKB(s.pid(), "VmRSS")}
		reqs := make([][]byte, len(tokens))
		for i, t := range tokens {
			reqs[i] = getRequest(s.addr, "/v1/user-detail", t)
		}
		t0 := time.Now()
		if err := sendAll(s.addr, e.o.conns, reqs, len(reqs)); err != nil {
			return nil, err
		}
		log.Printf("warmed %d identities in %s", len(reqs), time.Since(t0).Round(time.Millisecond))
		time.Sleep(time.Second)
		r.RSSAfterKB = memKB(s.pid(), "VmRSS")
		r.PeakKB = memKB(s.pid(), "VmHWM")
		r.BytesPerIdent = float64(r.RSSAfterKB-r.RSSBeforeKB) * 1024 / float64(len(tokens))
		// Replay a sample: a hit costs a few µs of CPU, a signature check tens, which
		// tells that the identities really stayed cached.
		sample := reqs[:min(len(reqs), 5000)]
		hits0, okm := scrape("http://"+s.admin+"/metrics", "idbridge_cache_requests_total", `kind="identity"`, `result="hit"`)
		c0 := cpuTime(s.pid())
		if err := sendAll(s.addr, e.o.conns, sample, len(sample)); err != nil {
			return nil, err
		}
		r.ReplayCPUus = float64(cpuTime(s.pid())-c0) / float64(time.Microsecond) / float64(len(sample))
		r.Replayed = len(sample)
		if okm {
			hits1, _ := scrape("http://"+s.admin+"/metrics", "idbridge_cache_requests_total", `kind="identity"`, `result="hit"`)
			r.CacheHits = hits1 - hits0
		}
		r.Note = fmt.Sprintf("VmRSS of idbridge serve before and after %d distinct %s tokens were verified and cached (cache.max_entries %d), after a 1 s pause; Go's heap target (GOGC=100) is part of what RSS shows",
			len(tokens), r.Alg, len(tokens)*6/5)
		return r, nil
	}
	return nil
}

// sendAll sends n requests (cycling through reqs) over conns connections and fails on
// the first non-2xx answer.
func sendAll(addr string, conns int, reqs [][]byte, n int) error {
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(conns, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
				return
			}
			defer c.Close()
			br := bufio.NewReaderSize(c, 16<<10)
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				status, keep, err := roundTrip(c, br, reqs[i%len(reqs)])
				if err == nil && (status < 200 || status > 299) {
					err = fmt.Errorf("status %d", status)
				}
				if err == nil && !keep {
					err = fmt.Errorf("connection closed by server")
				}
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	runtime.Gosched()
	return firstErr
}
