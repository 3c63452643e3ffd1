package ldap

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/providers"

	"github.com/idbridge/idbridge/internal/loopback"
)

// Defaults of a directory's keys, as documented in configs.Directory.
const (
	DefaultPoolSize  = 8
	DefaultTimeout   = 5 * time.Second
	DefaultSizeLimit = 2
	DefaultTimeLimit = 5 * time.Second
	DefaultScope     = "sub"
)

// DirectoryConfig is one directory under `directories:`.
type DirectoryConfig struct {
	URL                string        `yaml:"url"`                  // required; ldap:// or ldaps://
	StartTLS           bool          `yaml:"start_tls"`            // default false
	CAFile             string        `yaml:"ca_file"`              // default "": system roots
	InsecureSkipVerify bool          `yaml:"insecure_skip_verify"` // default false; warned about
	BindDN             string        `yaml:"bind_dn"`              // default "": anonymous
	BindPassword       string        `yaml:"bind_password"`        // secret
	BaseDN             string        `yaml:"base_dn"`              // required
	Scope              string        `yaml:"scope"`                // default sub; base | one | sub
	PoolSize           int           `yaml:"pool_size"`            // default 8
	Timeout            time.Duration `yaml:"timeout"`              // default 5s
	SizeLimit          int           `yaml:"size_limit"`           // default 2
	TimeLimit          time.Duration `yaml:"time_limit"`           // default 5s
}

// Directories is every configured directory, each a connection pool.
type Directories struct {
	dirs   map[string]*Directory
	broken map[string]bool // configured, but its section had errors
	log    *slog.Logger
}

var _ providers.Directories = (*Directories)(nil)

// NewDirectories decodes and checks every directory's section, reporting all errors at
// once with their lines, and builds each (empty) pool. It touches no network: Start
// checks each service bind. Warnings (an unverified certificate, a password sent in
// clear) come with the errors.
func NewDirectories(secs []*configs.Section, deps providers.Deps) (providers.Directories, configs.Errors) {
	ds := &Directories{dirs: map[string]*Directory{}, broken: map[string]bool{}, log: deps.Logger}
	if ds.log == nil {
		ds.log = slog.New(slog.DiscardHandler)
	}
	var errs configs.Errors
	for _, sec := range secs {
		var cfg DirectoryConfig
		if es := sec.Decode(&cfg); len(es) > 0 {
			errs = append(errs, es...)
			ds.broken[sec.Name] = true
			continue
		}
		d, es := newDirectory(sec.Name, &cfg, sec.Errorf, ds.log)
		errs = append(errs, es...)
		if len(es.Fatal()) > 0 {
			ds.broken[sec.Name] = true
			continue
		}
		ds.dirs[sec.Name] = d
	}
	return ds, errs
}

// DecodeDirectory decodes one directory's section strictly (for `idbridge directory
// test`, which probes one directory outside a running bridge).
func DecodeDirectory(sec *configs.Section) (*DirectoryConfig, configs.Errors) {
	var cfg DirectoryConfig
	if errs := sec.Decode(&cfg); len(errs) > 0 {
		return nil, errs
	}
	return &cfg, nil
}

// newDirectoriesFrom builds directories from decoded configs, for tests.
func newDirectoriesFrom(cfgs map[string]*DirectoryConfig, deps providers.Deps) (*Directories, error) {
	ds := &Directories{dirs: map[string]*Directory{}, broken: map[string]bool{}, log: deps.Logger}
	if ds.log == nil {
		ds.log = slog.New(slog.DiscardHandler)
	}
	var errs configs.Errors
	for _, name := range sortedKeys(cfgs) {
		errf := func(key, format string, args ...any) *configs.Error {
			return &configs.Error{File: deps.File, Path: "directories." + name + "." + key, Msg: fmt.Sprintf(format, args...)}
		}
		d, es := newDirectory(name, cfgs[name], errf, ds.log)
		errs = append(errs, es.Fatal()...)
		if d != nil {
			ds.dirs[name] = d
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return ds, nil
}

// Has reports whether name is configured, with or without errors.
func (ds *Directories) Has(name string) bool {
	return ds != nil && (ds.dirs[name] != nil || ds.broken[name])
}

// Start checks every directory once (a bind and a read of base_dn), in parallel so that
// one unreachable directory does not delay the others, each bounded by its timeout and
// ctx. A failure is logged, not returned: the process keeps running so that it recovers
// by itself once the directory (or its password) is fixed.
func (ds *Directories) Start(ctx context.Context) {
	var wg sync.WaitGroup
	for _, d := range ds.dirs {
		if d.insecure {
			ds.log.Warn("ldap: insecure_skip_verify is on: the directory's certificate is not verified",
				"directory", d.name)
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, d.timeout)
			defer cancel()
			if h := d.Health(ctx); !h.OK {
				ds.log.Error("ldap: directory check failed at start; will retry on use",
					"directory", d.name, "url", d.url, "detail", h.Detail)
			} else {
				ds.log.Info("ldap: directory ready", "directory", d.name, "url", d.url)
			}
		})
	}
	wg.Wait()
}

// directory returns the pool named name.
func (ds *Directories) directory(name string) (*Directory, bool) {
	if ds == nil {
		return nil, false
	}
	d, ok := ds.dirs[name]
	return d, ok
}

// PoolStats reports every pool's connections in use and idle, for the metrics.
func (ds *Directories) PoolStats() map[string]providers.PoolStats {
	out := make(map[string]providers.PoolStats, len(ds.dirs))
	for name, d := range ds.dirs {
		st := d.Stats()
		out[name] = providers.PoolStats{InUse: st.InUse, Idle: st.Idle}
	}
	return out
}

// Health probes every directory (a bind and a read of base_dn), for /readyz.
func (ds *Directories) Health(ctx context.Context) map[string]providers.Health {
	out := make(map[string]providers.Health, len(ds.dirs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, d := range ds.dirs {
		wg.Go(func() {
			h := d.Health(ctx)
			mu.Lock()
			out[name] = h
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// Stats reports every pool's occupancy, for metrics.
func (ds *Directories) Stats() map[string]Stats {
	out := make(map[string]Stats, len(ds.dirs))
	for name, d := range ds.dirs {
		out[name] = d.Stats()
	}
	return out
}

// Close closes every pool. Connections in use are closed when they are released.
func (ds *Directories) Close() error {
	if ds == nil {
		return nil
	}
	for _, d := range ds.dirs {
		d.Close()
	}
	return nil
}

// Stats is one pool's occupancy.
type Stats struct {
	Size  int // pool_size: the most connections ever open at once
	InUse int // connections lent to a search (or being dialed)
	Idle  int // open connections waiting in the pool
}

// Directory is one directory's connection pool. Every connection is bound as the service
// account. At most Size connections are open at once: a search waits for a free one (up
// to its context's deadline) rather than open more, so a burst of requests cannot exhaust
// the directory's connection limit. A connection that fails on the network is closed and
// replaced by a fresh dial, so the pool recovers by itself after the server restarts.
type Directory struct {
	name         string
	url          string // for logs; carries no secret
	addr         string // host:port
	ldaps        bool
	startTLS     bool
	tls          *tls.Config
	insecure     bool
	bindDN       string
	bindPassword string
	baseDN       string
	scope        int
	size         int
	timeout      time.Duration
	sizeLimit    int
	timeLimit    int // seconds, as the protocol carries it
	log          *slog.Logger

	// slots holds one token per connection lent out or being dialed; its capacity is
	// the pool size. Idle connections hold no token, and a new connection is dialed
	// only when none is idle, so open connections never exceed the capacity.
	slots chan struct{}

	mu     sync.Mutex
	idle   []*conn // most recently used last
	inUse  int
	closed bool
	health providers.Health // the last known state, for Health when the pool is busy
}

// conn is a pooled connection. raw is the TCP connection under go-ldap's Conn: its
// deadlines bound every operation, including TLS handshakes that go-ldap does not time.
type conn struct {
	c   *ldap.Conn
	raw net.Conn
}

// Name is the directory's name under directories:.
func (d *Directory) Name() string { return d.name }

// Stats reports the pool's occupancy.
func (d *Directory) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Stats{Size: d.size, InUse: d.inUse, Idle: len(d.idle)}
}

// PoolStats reports the pool's connections in use and idle, for the metrics.
func (d *Directory) PoolStats() (inUse, idle int) {
	st := d.Stats()
	return st.InUse, st.Idle
}

// Close closes the idle connections and makes the pool refuse new work.
func (d *Directory) Close() {
	d.mu.Lock()
	idle := d.idle
	d.idle, d.closed = nil, true
	d.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// Health checks that the service bind works and base_dn can be read: it rebinds on a
// pooled connection (or binds on a fresh one) and reads base_dn. When every connection
// is busy it reports the last known state instead of waiting: the traffic that keeps
// the pool busy is keeping that state fresh.
func (d *Directory) Health(ctx context.Context) providers.Health {
	select {
	case d.slots <- struct{}{}:
	default:
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.health
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	err := d.withSlot(ctx, func(c *ldap.Conn, fresh bool) error {
		if !fresh && d.bindDN != "" {
			if err := c.Bind(d.bindDN, d.bindPassword); err != nil {
				return &bindError{dn: d.bindDN, err: err}
			}
		}
		_, err := c.Search(ldap.NewSearchRequest(d.baseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
			1, d.timeLimit, false, "(objectClass=*)", []string{"1.1"}, nil))
		if err != nil {
			return fmt.Errorf("read base_dn %q: %w", d.baseDN, err)
		}
		return nil
	})
	if err != nil {
		return providers.Health{Ready: true, OK: false, Detail: err.Error()}
	}
	return providers.Health{Ready: true, OK: true}
}

// errPoolClosed is returned once Close has been called (a reload replaced the pool).
var errPoolClosed = errors.New("ldap: directory pool closed")

// withConn runs fn on a pooled connection, bounded by the directory's timeout and ctx.
// A connection that fails on the network is discarded; when it came from the pool (it may
// have died while idle: a server restart, an idle timeout on the server) fn is tried once
// more on a fresh connection. The error wraps providers.ErrUnavailable when the directory
// could not answer.
func (d *Directory) withConn(ctx context.Context, fn func(c *ldap.Conn) error) error {
	select {
	case d.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("ldap: directory %s: waiting for a pooled connection: %w: %w",
			d.name, providers.ErrUnavailable, ctx.Err())
	}
	err := d.withSlot(ctx, func(c *ldap.Conn, _ bool) error { return fn(c) })
	if err != nil && isConnFailure(err) {
		return fmt.Errorf("ldap: directory %s: %w: %w", d.name, providers.ErrUnavailable, err)
	}
	return err
}

// withSlot runs fn holding a slot that the caller has taken; it releases it. fresh tells
// fn whether the connection was just dialed (and so just bound).
func (d *Directory) withSlot(ctx context.Context, fn func(c *ldap.Conn, fresh bool) error) (err error) {
	defer func() { <-d.slots }()
	defer func() { d.record(err) }()

	c, err := d.take(ctx)
	if err != nil {
		return err
	}
	fresh := c == nil
	if fresh {
		if c, err = d.dial(ctx); err != nil {
			d.giveBack(nil)
			return err
		}
	}
	err = d.do(ctx, c, func() error { return fn(c.c, fresh) })
	if err != nil && isConnFailure(err) && !fresh && ctx.Err() == nil {
		c.close()
		if c, err = d.dial(ctx); err != nil {
			d.giveBack(nil)
			return err
		}
		err = d.do(ctx, c, func() error { return fn(c.c, true) })
	}
	if err != nil && isConnFailure(err) {
		c.close()
		c = nil
	}
	d.giveBack(c)
	return err
}

// take returns an idle connection, or nil when a new one must be dialed; either way the
// connection is counted in use. It skips connections go-ldap already saw closed.
func (d *Directory) take(ctx context.Context) (*conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errPoolClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.inUse++
	for n := len(d.idle); n > 0; n = len(d.idle) {
		c := d.idle[n-1]
		d.idle = d.idle[:n-1]
		if !c.c.IsClosing() {
			return c, nil
		}
		c.close()
	}
	return nil, nil
}

// giveBack returns c to the pool (nil: it was discarded) and ends its use.
func (d *Directory) giveBack(c *conn) {
	d.mu.Lock()
	d.inUse--
	if c != nil && !d.closed && !c.c.IsClosing() {
		d.idle = append(d.idle, c)
		c = nil
	}
	d.mu.Unlock()
	if c != nil {
		c.close()
	}
}

// record keeps the outcome of the last operation for Health when the pool is busy, and
// logs the transitions, not every failure, so an outage is one line and not a flood.
func (d *Directory) record(err error) {
	if err != nil && !isConnFailure(err) {
		return // the server answered: it is up, whatever it said
	}
	h := providers.Health{Ready: true, OK: err == nil}
	if err != nil {
		h.Detail = err.Error()
	}
	d.mu.Lock()
	was := d.health
	d.health = h
	d.mu.Unlock()
	switch {
	case was.OK && !h.OK:
		d.log.Warn("ldap: directory unavailable", "directory", d.name, "detail", h.Detail)
	case !was.OK && h.OK && was.Detail != "":
		d.log.Info("ldap: directory available again", "directory", d.name)
	}
}

// deadline is when an operation started now must end: the directory's timeout, or
// sooner if ctx says so.
func (d *Directory) deadline(ctx context.Context) time.Time {
	dl := time.Now().Add(d.timeout)
	if cdl, ok := ctx.Deadline(); ok && cdl.Before(dl) {
		dl = cdl
	}
	return dl
}

// do runs op on c with c's deadline set from the timeout and ctx, and a cancellation of
// ctx interrupting it. A deadline that fires breaks the connection (go-ldap's reader
// stops), so its error is a connection failure and c is discarded.
func (d *Directory) do(ctx context.Context, c *conn, op func() error) error {
	_ = c.raw.SetDeadline(d.deadline(ctx))
	stop := context.AfterFunc(ctx, func() { interrupt(c.raw) })
	err := op()
	if !stop() {
		// ctx ended during op: the connection may be half-way through a response.
		c.close()
		if err == nil {
			err = ctx.Err()
		}
		return &netError{err: err}
	}
	_ = c.raw.SetDeadline(time.Time{})
	return err
}

// dial opens, secures and binds a new connection within the directory's timeout.
func (d *Directory) dial(ctx context.Context) (*conn, error) {
	deadline := d.deadline(ctx)
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var nd net.Dialer
	raw, err := nd.DialContext(dctx, "tcp", d.addr)
	if err != nil {
		return nil, &netError{err: fmt.Errorf("dial %s: %w", d.addr, err)}
	}
	_ = raw.SetDeadline(deadline)
	stop := context.AfterFunc(dctx, func() { interrupt(raw) })

	nc := raw
	if d.ldaps {
		tc := tls.Client(raw, d.tls)
		if err := tc.HandshakeContext(dctx); err != nil {
			stop()
			raw.Close()
			return nil, &netError{err: fmt.Errorf("ldaps %s: %w", d.addr, err)}
		}
		nc = tc
	}
	c := &conn{c: ldap.NewConn(nc, d.ldaps), raw: raw}
	c.c.Start()
	// go-ldap's own request timeout backs up the deadlines on raw.
	c.c.SetTimeout(d.timeout)
	fail := func(err error) (*conn, error) {
		stop()
		c.close()
		if cerr := dctx.Err(); cerr != nil {
			// Interrupted by the deadline or the caller: say so, whatever go-ldap saw.
			err = &netError{err: fmt.Errorf("%w: %w", err, cerr)}
		}
		return nil, err
	}
	if d.startTLS {
		if err := c.c.StartTLS(d.tls); err != nil {
			return fail(&netError{err: fmt.Errorf("starttls %s: %w", d.addr, err)})
		}
	}
	if d.bindDN != "" {
		if err := c.c.Bind(d.bindDN, d.bindPassword); err != nil {
			if isConnFailure(err) {
				return fail(&netError{err: fmt.Errorf("bind: %w", err)})
			}
			return fail(&bindError{dn: d.bindDN, err: err})
		}
	}
	if !stop() {
		c.close()
		return nil, &netError{err: fmt.Errorf("dial %s: %w", d.addr, dctx.Err())}
	}
	_ = raw.SetDeadline(time.Time{})
	return c, nil
}

// interrupt makes any blocked I/O on raw return at once: a deadline in the past.
func interrupt(raw net.Conn) { _ = raw.SetDeadline(time.Unix(1, 0)) }

// close closes the socket at once, so that the server sees the connection go before a
// replacement is dialed (the pool bound holds on the server's side too), and lets go-ldap
// wind down its goroutines in the background: its Close can wait up to the request
// timeout for them, and no caller should wait for a connection it is throwing away.
func (c *conn) close() {
	_ = c.raw.Close()
	go func() { _ = c.c.Close() }()
}

// netError marks a failure of the connection itself: the pool discards the connection.
type netError struct{ err error }

func (e *netError) Error() string { return e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

// bindError is a refused service bind: a configuration or directory problem that makes
// the directory unusable (ErrUnavailable), never a verdict on a user's token.
type bindError struct {
	dn  string
	err error
}

func (e *bindError) Error() string { return fmt.Sprintf("bind as %q: %v", e.dn, e.err) }
func (e *bindError) Unwrap() error { return e.err }

// isConnFailure tells an answer from the server (a result code: the connection is fine)
// from a failure to get one (network, timeout, client-side protocol error, a refused
// service bind).
func isConnFailure(err error) bool {
	if err == nil {
		return false
	}
	var ne *netError
	var be *bindError
	if errors.As(err, &ne) || errors.As(err, &be) || errors.Is(err, errPoolClosed) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var le *ldap.Error
	if errors.As(err, &le) {
		// go-ldap numbers its client-side errors (network, unexpected message, ...) from 200.
		return le.ResultCode >= ldap.ErrorNetwork && le.ResultCode < 1000
	}
	return true
}

// newDirectory checks one directory's configuration and builds its (empty) pool. errf
// places an error at a key of the directory's section.
func newDirectory(name string, cfg *DirectoryConfig, errf func(key, format string, args ...any) *configs.Error, log *slog.Logger) (*Directory, configs.Errors) {
	var errs configs.Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, errf(key, format, args...))
	}
	warn := func(key, format string, args ...any) {
		e := errf(key, format, args...)
		e.Warning = true
		errs = append(errs, e)
	}
	d := &Directory{
		name:         name,
		url:          cfg.URL,
		startTLS:     cfg.StartTLS,
		insecure:     cfg.InsecureSkipVerify,
		bindDN:       cfg.BindDN,
		bindPassword: cfg.BindPassword,
		baseDN:       cfg.BaseDN,
		size:         cmp.Or(cfg.PoolSize, DefaultPoolSize),
		timeout:      cmp.Or(cfg.Timeout, DefaultTimeout),
		sizeLimit:    cmp.Or(cfg.SizeLimit, DefaultSizeLimit),
		log:          log,
		// Until the first check, nothing is known; Detail says so.
		health: providers.Health{Ready: true, OK: false, Detail: "not checked yet"},
	}

	host := ""
	if cfg.URL == "" {
		bad("url", "required")
	} else if u, err := url.Parse(cfg.URL); err != nil {
		bad("url", "not a URL: %v", err)
	} else {
		port := u.Port()
		switch u.Scheme {
		case "ldap":
			port = cmp.Or(port, "389")
		case "ldaps":
			d.ldaps = true
			port = cmp.Or(port, "636")
		default:
			bad("url", "scheme must be ldap:// or ldaps://, not %q", u.Scheme)
		}
		host = u.Hostname()
		if host == "" {
			bad("url", "no host")
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			bad("url", "give only scheme, host and port; the search base is base_dn")
		}
		if u.Scheme == "ldap" && !cfg.StartTLS && cfg.BindPassword != "" && !loopback.Host(host) {
			warn("url", "ldap:// without start_tls sends bind_password in clear; use ldaps:// or start_tls: true")
		}
		d.addr = net.JoinHostPort(host, port)
	}
	if d.ldaps && d.startTLS {
		bad("start_tls", "ldaps:// is already TLS; use ldap:// with start_tls")
	}
	if cfg.BaseDN == "" {
		bad("base_dn", "required")
	} else if _, err := ldap.ParseDN(cfg.BaseDN); err != nil {
		bad("base_dn", "not a DN: %v", err)
	}
	if cfg.BindDN == "" && cfg.BindPassword != "" {
		bad("bind_dn", "required with bind_password")
	}
	if cfg.BindDN != "" && cfg.BindPassword == "" {
		// An empty password is an unauthenticated bind (RFC 4513 §5.1.2): it would
		// "succeed" as anonymous on many servers and hide the misconfiguration.
		bad("bind_password", "required with bind_dn (both empty binds anonymously)")
	}
	switch cmp.Or(cfg.Scope, DefaultScope) {
	case "base":
		d.scope = ldap.ScopeBaseObject
	case "one":
		d.scope = ldap.ScopeSingleLevel
	case "sub":
		d.scope = ldap.ScopeWholeSubtree
	default:
		bad("scope", "must be base, one or sub, not %q", cfg.Scope)
	}
	if cfg.PoolSize < 0 {
		bad("pool_size", "must not be negative (0: the default, %d)", DefaultPoolSize)
	}
	if cfg.Timeout < 0 {
		bad("timeout", "must not be negative (0: the default, %s)", DefaultTimeout)
	}
	if cfg.SizeLimit < 0 {
		bad("size_limit", "must not be negative (0: the default, %d)", DefaultSizeLimit)
	}
	if cfg.TimeLimit < 0 {
		bad("time_limit", "must not be negative (0: the default, %s)", DefaultTimeLimit)
	}
	if cfg.InsecureSkipVerify {
		warn("insecure_skip_verify", "the directory's certificate is not verified: anyone on the path can impersonate it")
	}
	d.timeLimit = int(math.Ceil(cmp.Or(cfg.TimeLimit, DefaultTimeLimit).Seconds()))

	d.tls = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // operator's explicit choice, warned about at start
	if cfg.CAFile != "" {
		pem, err := configs.ReadFileLimited(cfg.CAFile, 1<<20)
		if err != nil {
			bad("ca_file", "%v", err)
		} else {
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				bad("ca_file", "no PEM certificate in %s", cfg.CAFile)
			}
			d.tls.RootCAs = roots
		}
	}
	if len(errs.Fatal()) > 0 {
		return nil, errs
	}
	d.slots = make(chan struct{}, d.size)
	return d, errs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// names lists every configured directory, sorted, for an error message.
func (ds *Directories) names() []string {
	var out []string
	for n := range ds.dirs {
		out = append(out, n)
	}
	for n := range ds.broken {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
