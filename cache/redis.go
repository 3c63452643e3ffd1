package cache

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/idbridge/idbridge/configs"
)

// Defaults of RedisOptions and of the `cache.redis:` section.
const (
	DefaultRedisAddr      = "127.0.0.1:6379"
	DefaultRedisKeyPrefix = "idbridge:"
	DefaultOpTimeout      = 300 * time.Millisecond
	DefaultProbeInterval  = time.Second
	DefaultGenerationTTL  = time.Second
)

// maxEntryTTL caps what one entry may live.
const maxEntryTTL = 7 * 24 * time.Hour

// probeTTL is how long the key written by a health check lives.
const probeTTL = time.Minute

// maxGenCache bounds the local cache of generations; groups come from configuration,
// so in practice it holds one entry per kind and provider.
const maxGenCache = 4096

// RedisOptions are the process-side settings of NewRedis; the zero value is usable.
type RedisOptions struct {
	// Logger receives one line per transition to and from degraded mode. nil: discard.
	Logger *slog.Logger
	// Now is the clock of the memory fallback and of the generation cache. nil: time.Now.
	Now func() time.Time
	// FallbackEntries bounds the memory fallback, per kind. 0: cfg.MaxEntries, else 100000.
	FallbackEntries int
	// OpTimeout bounds every Redis call (dial, pool wait, write, read). 0: 300ms.
	OpTimeout time.Duration
	// ProbeInterval is how often a degraded cache PINGs Redis. 0: 1s.
	ProbeInterval time.Duration
	// GenerationTTL is how long generations are reused locally before being read again:
	// a Purge on another replica shows here within this window. 0: 1s; < 0: never reuse.
	GenerationTTL time.Duration
	// OnStateChange, if set, is called on every transition (true: now degraded). It runs
	// on the goroutine that saw the transition (inside NewRedis when Redis is down at
	// start) and must return quickly.
	OnStateChange func(degraded bool)
}

// RedisHealth is what /readyz shows of the shared cache.
type RedisHealth struct {
	OK        bool     // Redis answers reads and writes of our keys
	Degraded  bool     // the memory fallback serves
	Topology  string   // standalone | sentinel | cluster
	Primaries []string // the primaries last seen (host:port); one unless cluster
	Detail    string   // a short reason, never a secret
}

// KindStats counts Gets of one kind.
type KindStats struct {
	Hits   uint64
	Misses uint64
}

// RedisStats is a snapshot of the Redis cache's counters, for metrics.
type RedisStats struct {
	Kinds        map[Kind]KindStats // Gets, whether answered by Redis or by the fallback
	Errors       uint64             // Redis calls that failed (each one is a miss or a lost Set)
	Fallback     uint64             // Get, Set and Delete calls served by memory while degraded
	FallbackHits uint64             // of those, Gets that found their entry in memory
	Transitions  uint64             // changes of state, both ways
	Degraded     bool
	Topology     string   // standalone | sentinel | cluster
	Primaries    []string // the primaries last seen, sorted
	PrimaryMoves uint64   // times the set of primaries changed (a failover, a resharding)
}

// Redis is the shared backend: several replicas read and write one Redis. Every value is
// sealed with AES-256-GCM and every key is an HMAC, both under subkeys of
// cache.encryption_key, so Redis holds nothing readable or linkable without that key:
// no token hash, email, provider name or identity document. When Redis is unreachable
// Redis serves from a memory fallback (see Degraded) and never returns an error.
//
// Redis is one standalone server, a primary found through Redis Sentinel, or a Redis
// Cluster (configs.Redis), optionally over TLS and as an ACL user.
//
// Purge works by generations, because HMAC'd keys cannot be scanned by prefix (nor,
// under Cluster, scanned at all without visiting every node): each entry's key
// includes a kind-wide generation and a generation of the group's first path element
// (the provider name: "okta" in "okta/3f2a…"). Purge(kind, "") renews the kind-wide
// one; Purge(kind, p) renews the one of p's first element, so it drops every group of
// that provider, whatever follows the "/" in p, and a p that is only a part of a name
// ("ok") matches the provider named exactly "ok", not "okta". Old entries become
// unreachable and expire on their own TTL. Other replicas see a purge within
// RedisOptions.GenerationTTL (this replica too, when a Get races with its own Purge).
// Generations are random and created on first use; a generation key that goes
// missing (deleted, evicted) is created anew, which purges rather than revives.
//
// Every sealed entry carries its expiry and its generations inside the seal, so that
// someone who can write to Redis but holds no key cannot keep an entry past its TTL
// (PERSIST) nor bring a purged entry back.
//
// Under Redis Cluster the generation keys share one hash tag (one slot), and entries
// spread over every node by their HMAC names.
type Redis struct {
	client redis.UniversalClient
	finder *primaryFinder
	seal   *sealer
	prefix string
	mem    *Memory
	log    *slog.Logger
	now    func() time.Time
	opTO   time.Duration
	genTTL time.Duration
	notify func(bool)

	degraded atomic.Bool
	lastErr  atomic.Pointer[string] // why Redis was last found down; no secrets

	primaries    atomic.Pointer[[]string] // last seen; nil before the first look
	primaryMoves atomic.Uint64

	genMu sync.RWMutex
	gens  map[genID]genEntry

	// pendMu orders Purges against the return from degraded mode: a purge made while
	// Redis was away is replayed before Redis serves again.
	pendMu  sync.Mutex
	pending []genID

	hits, misses         [numKinds]atomic.Uint64
	errs, fallback, flip atomic.Uint64
	fallbackHits         atomic.Uint64

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

var _ Cache = (*Redis)(nil)

// genID names one generation: kind-wide when !prov, else the provider's.
type genID struct {
	kind     Kind
	prov     bool
	provider string
}

// gens are the two generations that enter an entry's key.
type gens struct{ kind, prov uint64 }

type genEntry struct {
	g       gens
	fetched time.Time
}

// NewRedis returns the Redis backend for the `cache:` section. It fails only on a bad
// configuration; an unreachable Redis starts it in degraded mode.
func NewRedis(cfg configs.Cache, opts RedisOptions) (*Redis, error) {
	master, err := parseEncryptionKey(cfg)
	if err != nil {
		return nil, err
	}
	s, err := newSealer(master)
	if err != nil {
		return nil, err
	}
	rc := cfg.Redis
	if rc.Addr == "" && rc.Sentinel == nil && rc.Cluster == nil {
		rc.Addr = DefaultRedisAddr
	}
	if rc.KeyPrefix == "" {
		rc.KeyPrefix = DefaultRedisKeyPrefix
	}
	if rc.DB < 0 {
		return nil, fmt.Errorf("cache: redis.db must be >= 0, got %d", rc.DB)
	}
	if topologyOf(rc) == TopologyStandalone {
		if _, _, err := net.SplitHostPort(rc.Addr); err != nil {
			return nil, fmt.Errorf("cache: redis.addr: %w", err)
		}
	}
	tlsCfg, err := RedisTLS(rc)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.FallbackEntries <= 0 {
		opts.FallbackEntries = cfg.MaxEntries
	}
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = DefaultOpTimeout
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = DefaultProbeInterval
	}
	if opts.GenerationTTL == 0 {
		opts.GenerationTTL = DefaultGenerationTTL
	}

	client := newClient(rc, tlsCfg, opts.OpTimeout)
	r := &Redis{
		client: client,
		finder: newPrimaryFinder(rc, client, tlsCfg, opts.OpTimeout),
		seal:   s,
		prefix: rc.KeyPrefix,
		mem:    NewMemory(opts.FallbackEntries, opts.Now).LimitBytes(int64(cfg.MaxBytes)),
		log:    opts.Logger,
		now:    opts.Now,
		opTO:   opts.OpTimeout,
		genTTL: opts.GenerationTTL,
		notify: opts.OnStateChange,
		gens:   make(map[genID]genEntry),
		done:   make(chan struct{}),
	}
	// A Redis that is down at start, a wrong password or a user without rights is not a
	// configuration error: start degraded, say why, and let the prober bring it in.
	ctx, cancel := context.WithTimeout(context.Background(), opts.OpTimeout)
	err = r.check(ctx)
	if err == nil {
		r.lookPrimaries(ctx)
	}
	cancel()
	if err != nil {
		r.markDown(err)
	}
	r.wg.Add(1)
	go r.probe(opts.ProbeInterval)
	return r, nil
}

// Degraded reports whether Redis is unreachable and the memory fallback is serving.
func (r *Redis) Degraded() bool { return r.degraded.Load() }

// Health reports whether Redis serves, with a short reason, the topology and the
// primaries for /readyz. When not degraded it writes a probe key, so that an outage, a
// demoted primary (READONLY) or a user without rights (NOPERM) is noticed even without
// traffic.
func (r *Redis) Health(ctx context.Context) RedisHealth {
	h := RedisHealth{Topology: r.finder.topology, Primaries: r.lastPrimaries()}
	if !r.degraded.Load() {
		octx, cancel := context.WithTimeout(ctx, r.opTO)
		err := r.check(octx)
		if err == nil {
			r.lookPrimaries(octx)
		}
		cancel()
		if err == nil {
			h.OK, h.Primaries, h.Detail = true, r.lastPrimaries(), "redis ok"
			return h
		}
		if ctx.Err() != nil {
			h.Detail = "redis: health check cancelled"
			return h
		}
		r.fail(ctx, err)
	}
	why := "unreachable"
	if p := r.lastErr.Load(); p != nil {
		why = *p
	}
	h.Degraded, h.Detail = true, "redis degraded, serving from memory: "+why
	return h
}

// check writes the probe key: the cheapest call that needs a reachable, writable
// primary and an ACL user allowed to write our keys.
func (r *Redis) check(ctx context.Context) error {
	return r.client.Set(ctx, r.prefix+genHashTag+"probe", "1", probeTTL).Err()
}

// lookPrimaries asks the topology which servers are the primaries now and counts a
// change. A failed look keeps the last answer.
func (r *Redis) lookPrimaries(ctx context.Context) {
	p, err := r.finder.primaries(ctx)
	if err != nil || len(p) == 0 {
		return
	}
	old := r.primaries.Swap(&p)
	if old != nil && !slices.Equal(*old, p) {
		r.primaryMoves.Add(1)
		r.log.Warn("cache: redis primaries changed", "topology", r.finder.topology, "was", strings.Join(*old, ","), "now", strings.Join(p, ","))
	}
}

func (r *Redis) lastPrimaries() []string {
	if p := r.primaries.Load(); p != nil {
		return slices.Clone(*p)
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (r *Redis) Stats() RedisStats {
	st := RedisStats{
		Kinds:        make(map[Kind]KindStats, numKinds),
		Errors:       r.errs.Load(),
		Fallback:     r.fallback.Load(),
		FallbackHits: r.fallbackHits.Load(),
		Transitions:  r.flip.Load(),
		Degraded:     r.degraded.Load(),
		Topology:     r.finder.topology,
		Primaries:    r.lastPrimaries(),
		PrimaryMoves: r.primaryMoves.Load(),
	}
	for k := Kind(0); k < numKinds; k++ {
		st.Kinds[k] = KindStats{Hits: r.hits[k].Load(), Misses: r.misses[k].Load()}
	}
	return st
}

// Get returns the value stored under k, or a miss when Redis has none, when the value
// does not open under our key (another key, tampering), or when Redis fails.
func (r *Redis) Get(ctx context.Context, k Key) ([]byte, bool) {
	if k.Kind >= numKinds {
		return nil, false
	}
	v, ok := r.get(ctx, k)
	if ok {
		r.hits[k.Kind].Add(1)
	} else {
		r.misses[k.Kind].Add(1)
	}
	return v, ok
}

func (r *Redis) get(ctx context.Context, k Key) ([]byte, bool) {
	if r.degraded.Load() {
		r.fallback.Add(1)
		v, ok := r.mem.Get(ctx, k)
		if ok {
			r.fallbackHits.Add(1)
		}
		return v, ok
	}
	g, ok := r.generations(ctx, k.Kind, provider(k.Group))
	if !ok {
		return nil, false
	}
	name := r.entryKey(k, g)
	octx, cancel := context.WithTimeout(ctx, r.opTO)
	b, err := r.client.Get(octx, name).Bytes()
	cancel()
	if err != nil {
		if !errors.Is(err, redis.Nil) {
			r.fail(ctx, err)
		}
		return nil, false
	}
	return r.seal.openEntry(name, b, r.now(), g)
}

// Set stores v under k for ttl (at most 7 days). A Set that Redis refuses lands in the
// memory fallback.
func (r *Redis) Set(ctx context.Context, k Key, v []byte, ttl time.Duration) {
	if k.Kind >= numKinds || ttl <= 0 {
		return
	}
	ttl = min(max(ttl, time.Millisecond), maxEntryTTL)
	if !r.degraded.Load() {
		g, ok := r.generations(ctx, k.Kind, provider(k.Group))
		if ok {
			name := r.entryKey(k, g)
			sealed := r.seal.sealEntry(name, r.now().Add(ttl), g, v)
			octx, cancel := context.WithTimeout(ctx, r.opTO)
			err := r.client.Do(octx, "set", name, sealed, "px", ttl.Milliseconds()).Err()
			cancel()
			if err == nil {
				return
			}
			r.fail(ctx, err)
		}
		if !r.degraded.Load() {
			return // the caller's context ended: a lost Set, nothing more
		}
	}
	r.fallback.Add(1)
	r.mem.Set(ctx, k, v, ttl)
}

// Delete drops k. While degraded only the fallback forgets it: the Redis entry, if
// any, stays until its TTL or a Purge.
func (r *Redis) Delete(ctx context.Context, k Key) {
	if k.Kind >= numKinds {
		return
	}
	r.mem.Delete(ctx, k)
	if r.degraded.Load() {
		r.fallback.Add(1)
		return
	}
	name, ok := r.entryName(ctx, k)
	if !ok {
		return
	}
	octx, cancel := context.WithTimeout(ctx, r.opTO)
	err := r.client.Del(octx, name).Err()
	cancel()
	if err != nil {
		r.fail(ctx, err)
	}
}

// Purge drops the entries of kind whose group's provider (first path element) is that
// of groupPrefix, or every entry of kind when groupPrefix is "" (see Redis). It cannot
// count what it dropped and returns -1. A purge made while degraded is replayed on
// Redis before Redis serves again.
func (r *Redis) Purge(ctx context.Context, kind Kind, groupPrefix string) int {
	if kind >= numKinds {
		return 0
	}
	r.mem.Purge(ctx, kind, groupPrefix)
	id := genID{kind: kind}
	if groupPrefix != "" {
		id = genID{kind: kind, prov: true, provider: provider(groupPrefix)}
	}
	r.pendMu.Lock()
	if r.degraded.Load() {
		r.addPending(id)
		r.pendMu.Unlock()
		return -1
	}
	r.pendMu.Unlock()
	// A purge must not be lost to an impatient caller: it is bounded by OpTimeout anyway.
	ctx = context.WithoutCancel(ctx)
	if err := r.renew(ctx, id); err != nil {
		r.pendMu.Lock()
		r.addPending(id)
		r.pendMu.Unlock()
		r.fail(ctx, err)
	}
	return -1
}

// addPending remembers a purge to replay, once: a long outage with many reloads must
// not grow the list. pendMu must be held.
func (r *Redis) addPending(id genID) {
	for _, p := range r.pending {
		if p == id {
			return
		}
	}
	r.pending = append(r.pending, id)
}

// Close stops the prober and closes the connections.
func (r *Redis) Close() error {
	var err error
	r.closeOnce.Do(func() {
		close(r.done)
		r.wg.Wait()
		r.finder.close()
		err = r.client.Close()
	})
	return err
}

// provider is the first path element of a group, the unit of Purge.
func provider(group string) string {
	if i := strings.IndexByte(group, '/'); i >= 0 {
		return group[:i]
	}
	return group
}

func (r *Redis) genName(id genID) string {
	tag := byte(tagKindGen)
	if id.prov {
		tag = tagProvGen
	}
	return r.seal.name(r.prefix, tag, id.kind, gens{}, id.provider, "")
}

// newGen seals a fresh random generation for the key name. Random rather than INCR: a
// generation key that is lost and created again must never repeat an earlier number,
// or entries of that earlier epoch would come back.
func (r *Redis) newGen(name string) []byte {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return r.seal.seal(name, b[:])
}

// renew gives id a fresh random generation. Generation keys have no TTL: one that
// expired would purge its scope for nothing (and one that is evicted or deleted does
// just that, never worse).
func (r *Redis) renew(ctx context.Context, id genID) error {
	name := r.genName(id)
	octx, cancel := context.WithTimeout(ctx, r.opTO)
	err := r.client.Set(octx, name, r.newGen(name), 0).Err()
	cancel()
	if err != nil {
		return err
	}
	r.genMu.Lock()
	for g := range r.gens {
		if g.kind == id.kind && (!id.prov || g.provider == id.provider) {
			delete(r.gens, g)
		}
	}
	r.genMu.Unlock()
	return nil
}

// entryName returns the Redis key of k under the current generations; not ok when the
// generations cannot be read (Redis failed, and the caller has been told so).
func (r *Redis) entryName(ctx context.Context, k Key) (string, bool) {
	g, ok := r.generations(ctx, k.Kind, provider(k.Group))
	if !ok {
		return "", false
	}
	return r.entryKey(k, g), true
}

func (r *Redis) entryKey(k Key, g gens) string {
	return r.seal.name(r.prefix, tagEntry, k.Kind, g, k.Group, k.ID)
}

// generations returns the kind-wide and the provider's generation, reused for genTTL
// so that a Get costs one round trip, not two.
func (r *Redis) generations(ctx context.Context, kind Kind, prov string) (gens, bool) {
	id := genID{kind: kind, prov: true, provider: prov}
	now := r.now()
	r.genMu.RLock()
	e, ok := r.gens[id]
	r.genMu.RUnlock()
	if ok && now.Sub(e.fetched) < r.genTTL {
		return e.g, true
	}
	kname, pname := r.genName(genID{kind: kind}), r.genName(id)
	g, ok, err := r.readGens(ctx, kname, pname)
	if err != nil {
		r.fail(ctx, err)
		return gens{}, false
	}
	if !ok {
		return gens{}, false
	}
	if r.genTTL > 0 {
		r.genMu.Lock()
		if len(r.gens) >= maxGenCache {
			clear(r.gens)
		}
		r.gens[id] = genEntry{g: g, fetched: now}
		r.genMu.Unlock()
	}
	return g, true
}

// readGens reads the two generations in one MGET (one hash slot: genHashTag). One
// that is missing, because nothing was purged yet or because the key was lost, is
// created at random (SET NX, so that replicas racing to create it agree on one).
// Not ok, without an error, when a generation vanished again in between: a miss.
func (r *Redis) readGens(ctx context.Context, kname, pname string) (gens, bool, error) {
	for attempt := 0; attempt < 2; attempt++ {
		octx, cancel := context.WithTimeout(ctx, r.opTO)
		vals, err := r.client.MGet(octx, kname, pname).Result()
		cancel()
		if err != nil {
			return gens{}, false, err
		}
		kv, kok := r.genValue(kname, vals[0])
		pv, pok := r.genValue(pname, vals[1])
		if kok && pok {
			return gens{kind: kv, prov: pv}, true, nil
		}
		for i, name := range []string{kname, pname} {
			if vals[i] != nil {
				continue
			}
			octx, cancel := context.WithTimeout(ctx, r.opTO)
			err := r.client.SetNX(octx, name, r.newGen(name), 0).Err()
			cancel()
			if err != nil {
				return gens{}, false, err
			}
		}
	}
	return gens{}, false, nil
}

// genValue decodes a stored generation; not ok when absent. A value that does not
// open (tampered) still yields a number, derived from its bytes, so that every replica
// agrees on it and it differs from every real generation: entries go missing rather
// than purged ones coming back.
func (r *Redis) genValue(name string, v any) (uint64, bool) {
	s, ok := v.(string)
	if !ok {
		return 0, false
	}
	if b, ok := r.seal.open(name, []byte(s)); ok && len(b) == 8 {
		return binary.BigEndian.Uint64(b), true
	}
	sum := sha256.Sum256([]byte(s))
	return binary.BigEndian.Uint64(sum[:8]), true
}

// fail records a failed Redis call. A call cut short by the caller's own context says
// nothing about Redis; a WRONGTYPE reply is one bad key, not an outage. Anything else
// (dial error, timeout, refused auth, LOADING) turns on degraded mode.
func (r *Redis) fail(ctx context.Context, err error) {
	r.errs.Add(1)
	if ctx.Err() != nil || redis.HasErrorPrefix(err, "WRONGTYPE") {
		return
	}
	r.markDown(err)
}

func (r *Redis) markDown(err error) {
	msg := err.Error()
	r.lastErr.Store(&msg)
	if !r.degraded.CompareAndSwap(false, true) {
		return
	}
	// Start the fallback empty: what it kept from an earlier outage may have been
	// deleted or purged in Redis since.
	r.resetMemory()
	r.flip.Add(1)
	r.log.Warn("cache: redis unreachable or refusing us, serving from memory", "topology", r.finder.topology, "error", msg)
	if r.notify != nil {
		r.notify(true)
	}
}

func (r *Redis) resetMemory() {
	ctx := context.Background()
	for k := Kind(0); k < numKinds; k++ {
		r.mem.Purge(ctx, k, "")
	}
}

// probe checks Redis while degraded and brings it back once it answers and the purges
// made meanwhile are replayed; while Redis serves, it follows the primaries.
func (r *Redis) probe(every time.Duration) {
	defer r.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.opTO)
		if !r.degraded.Load() {
			// Keep /readyz and the metrics current through a failover.
			r.lookPrimaries(ctx)
			cancel()
			continue
		}
		err := r.check(ctx)
		if err == nil {
			r.lookPrimaries(ctx)
		}
		cancel()
		if err != nil {
			msg := err.Error()
			r.lastErr.Store(&msg)
			continue
		}
		r.recover()
	}
}

func (r *Redis) recover() {
	r.pendMu.Lock()
	defer r.pendMu.Unlock()
	// Generations may have moved while we were away.
	r.genMu.Lock()
	clear(r.gens)
	r.genMu.Unlock()
	for len(r.pending) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), r.opTO)
		err := r.renew(ctx, r.pending[0])
		cancel()
		if err != nil {
			msg := err.Error()
			r.lastErr.Store(&msg)
			return
		}
		r.pending = r.pending[1:]
	}
	r.pending = nil
	if !r.degraded.CompareAndSwap(true, false) {
		return
	}
	r.resetMemory()
	r.flip.Add(1)
	r.log.Info("cache: redis reachable again, serving from redis")
	if r.notify != nil {
		r.notify(false)
	}
}
