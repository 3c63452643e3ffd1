// Package server is idbridge's HTTP surface, built on Gin: the user-detail and
// token-exchange routes, bearer parsing, the admin listener, and the one place where
// errors become HTTP statuses. Gin types never leave this package.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/playground"
)

// Runtime is everything one configuration needs to serve. A reload builds a new Runtime
// and swaps it in atomically; requests in flight finish on the one they started with.
type Runtime struct {
	Config *configs.Config
	Bridge *Bridge
	// Exchange performs the token exchange for an already validated and mapped user; nil
	// when the exchange route is off.
	Exchange ExchangeFunc
	// JWKS serves assertion mode's public keys; nil outside assertion mode.
	JWKS http.Handler
	// Health reports dependencies for /readyz: ready is false only while the runtime
	// cannot serve at all (a jwt provider that never loaded keys).
	Health func(ctx context.Context) (ready bool, deps Dependencies)
	// Close releases the runtime's resources once no request uses it any more.
	Close func()

	allowed []*net.IPNet
	cors    *corsPolicy
	limiter *limiter
	engine  *gin.Engine
	// state is the number of requests using the runtime times two, plus one once it is
	// retired. One word, so that "the last request left" and "it is retired" are seen
	// together: with a separate flag, a release that saw the count reach zero could read
	// the flag after a swap had set it and new requests had started, and close the
	// runtime under them.
	state atomic.Int64
	once  sync.Once
}

const (
	stateRetired = 1
	stateRequest = 2
)

// ExchangeFunc exchanges the user's token at Spotnana and returns Spotnana's JSON answer.
type ExchangeFunc func(ctx context.Context, res *Resolution, token string) ([]byte, error)

// Options are the process-wide parts that survive reloads.
type Options struct {
	Logger *slog.Logger
	// Metrics is served at /metrics on the admin listener; nil serves nothing there.
	Metrics http.Handler
	// Observer receives per-request measurements; may be nil.
	Observer RequestObserver
	// AccessLog, when set, writes the per-request info line without going through slog.
	AccessLog *AccessLog
	// ConnRefused, when set, is told of each API connection closed at once for being
	// over server.max_connections (ConnRefusedTotal) or max_connections_per_client
	// (ConnRefusedPerClient).
	ConnRefused func(reason string)
	// Playground, when set, serves the mapping playground on the admin listener; its
	// Resolve is the server's own (the running chain, uncached).
	Playground *playground.Options
}

// RequestObserver receives one call per API request, for metrics.
type RequestObserver interface {
	Request(route string, status int, d time.Duration)
	Exchange(outcome string)
}

// Server serves the current Runtime.
type Server struct {
	opts    Options
	log     *slog.Logger
	current atomic.Pointer[Runtime]
	pins    *Pins
	ready   atomic.Bool
	certs   atomic.Pointer[certReloader] // set by Serve, read by ReloadTLS on SIGHUP
}

// New returns a server for rt. It validates what only the server can (CIDRs, proxies).
func New(rt *Runtime, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: opts.Logger, pins: NewPins()}
	if err := s.prepare(rt); err != nil {
		return nil, err
	}
	s.current.Store(rt)
	s.ready.Store(true)
	return s, nil
}

// Pins exposes the pin set (tests assert that no lock is held across an exchange).
func (s *Server) Pins() *Pins { return s.pins }

// Swap replaces the runtime; the old one is closed when its last request finishes.
func (s *Server) Swap(rt *Runtime) error {
	if err := s.prepare(rt); err != nil {
		return err
	}
	old := s.current.Swap(rt)
	if old != nil {
		old.retire()
	}
	return nil
}

// Current returns the runtime serving new requests.
func (s *Server) Current() *Runtime { return s.current.Load() }

// Close releases the current runtime once its last request finishes (after Serve has
// returned); it goes through the same close-once path as a reload's retirement, so a
// reload racing with shutdown cannot close a runtime twice.
func (s *Server) Close() {
	if rt := s.current.Load(); rt != nil {
		rt.retire()
	}
}

// acquire counts a request in and reports whether the runtime was still live; a
// retired runtime must be released again at once.
func (rt *Runtime) acquire() bool { return rt.state.Add(stateRequest)&stateRetired == 0 }

func (rt *Runtime) release() {
	if rt.state.Add(-stateRequest) == stateRetired {
		rt.closeOnce()
	}
}

func (rt *Runtime) retire() {
	if rt.state.Or(stateRetired) == 0 {
		rt.closeOnce()
	}
}

func (rt *Runtime) closeOnce() {
	rt.once.Do(func() {
		if rt.Close != nil {
			rt.Close()
		}
	})
}

// acquireCurrent returns the current runtime, counted as in use until release. A
// runtime loaded just before a Swap may be retired, and closed, before it is counted: it
// is then let go and the new one taken, so that no request ever runs on a closed runtime.
func (s *Server) acquireCurrent() *Runtime {
	for {
		rt := s.current.Load()
		if rt.acquire() {
			return rt
		}
		rt.release()
	}
}

// ServeHTTP serves the main listener with the current runtime's engine.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := s.acquireCurrent()
	defer rt.release()
	rt.engine.ServeHTTP(w, r)
}

// Listen opens the configured listeners (so callers can learn the bound ports).
func (s *Server) Listen() (main, admin net.Listener, err error) {
	cfg := s.current.Load().Config.Server
	main, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, nil, err
	}
	if cfg.AdminListen == "" || (cfg.AdminListen == cfg.Listen && !strings.HasSuffix(cfg.Listen, ":0")) {
		return main, nil, nil
	}
	admin, err = net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		main.Close()
		return nil, nil, err
	}
	return main, admin, nil
}

// Serve serves on already opened listeners until ctx is done. admin may be nil, in which
// case the admin routes are served on the main listener (the operator set one address).
func (s *Server) Serve(ctx context.Context, main, admin net.Listener) error {
	cfg := s.current.Load().Config.Server
	var handler http.Handler = s
	adminHandler := s.AdminHandler()
	if admin == nil {
		mux := http.NewServeMux()
		mux.Handle("/healthz", adminHandler)
		mux.Handle("/readyz", adminHandler)
		mux.Handle("/metrics", adminHandler)
		mux.Handle("/admin/", adminHandler)
		mux.Handle("/", s)
		handler = mux
	}
	srv := &http.Server{
		Handler:           s.checkFraming(handler),
		ConnContext:       connContext,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.RequestTimeout,
		WriteTimeout:      cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	// The API listener: connection bounds first, then TLS, then the framing check,
	// which must read the requests in clear (see framing.go).
	fl := &framedListener{
		Listener: newLimitListener(main, cfg.MaxConnections, cfg.MaxConnectionsPerClient, s.opts.ConnRefused),
		maxHead:  cfg.MaxHeaderBytes,
	}
	if cfg.TLS.CertFile != "" {
		certs, err := newCertReloader(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return err
		}
		s.certs.Store(certs)
		fl.tls = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get, NextProtos: []string{"http/1.1"}}
	}
	servers := []*http.Server{srv}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(fl) }()
	if admin != nil {
		// The admin listener gets the same timeouts: without them, idle connections
		// stayed open for as long as their clients wished.
		asrv := &http.Server{Handler: adminHandler, ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			ReadTimeout: cfg.RequestTimeout, WriteTimeout: cfg.RequestTimeout + 5*time.Second,
			IdleTimeout: cfg.IdleTimeout, MaxHeaderBytes: cfg.MaxHeaderBytes, ErrorLog: srv.ErrorLog}
		servers = append(servers, asrv)
		go func() { errc <- asrv.Serve(admin) }()
	}
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			for _, x := range servers {
				x.Close()
			}
			return err
		}
	case <-ctx.Done():
	}
	s.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	var firstErr error
	for _, x := range servers {
		err := x.Shutdown(sctx)
		if errors.Is(err, context.DeadlineExceeded) {
			// The contract's shutdown is "finish in-flight requests within
			// shutdown_timeout, exit 0": requests still running then are cut off, which
			// is the operator's chosen bound, not a failure of the process.
			s.log.Warn("shutdown_timeout reached; closing the connections still in use", "timeout", cfg.ShutdownTimeout)
			x.Close()
			continue
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// requestID names a request: the caller's X-Request-Id when it is plain (cleanRequestID),
// else a new one.
func requestID(r *http.Request) string {
	if id := cleanRequestID(r.Header.Get("X-Request-Id")); id != "" {
		return id
	}
	return newRequestID()
}

// newRequestID returns 16 random hex digits.
func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// cleanRequestID accepts a caller's X-Request-Id only when it is short and plain, so
// that it can be echoed and logged without injection.
func cleanRequestID(id string) string {
	if id == "" || len(id) > 64 {
		return ""
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '-' || c == '_' || c == '.') {
			return ""
		}
	}
	return id
}

func parseCIDRs(list []string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, s := range list {
		if !strings.Contains(s, "/") {
			if ip := net.ParseIP(s); ip != nil {
				if ip.To4() != nil {
					s += "/32"
				} else {
					s += "/128"
				}
			}
		}
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}
