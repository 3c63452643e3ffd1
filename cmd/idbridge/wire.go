package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/idbridge/idbridge/cache"
	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/mapping"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/providers/introspection"
	"github.com/idbridge/idbridge/providers/jwt"
	"github.com/idbridge/idbridge/providers/ldap"
	"github.com/idbridge/idbridge/providers/userinfo"
	"github.com/idbridge/idbridge/server"
)

// registry is the one place that names every provider type.
func registry() providers.Registry {
	return providers.Registry{
		Types: map[string]providers.Factory{
			jwt.Type:           jwt.New,
			introspection.Type: introspection.New,
			userinfo.Type:      userinfo.New,
			ldap.Type:          ldap.New,
		},
		Lookup:   ldap.NewLookup,
		Userinfo: userinfo.NewEnricher,
		Warnings: map[string]func(*configs.ProviderSection) configs.Errors{
			introspection.Type: introspection.Warnings,
			jwt.Type:           jwt.Warnings,
		},
	}
}

// newLogger builds the process logger from the log section.
func newLogger(cfg configs.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	switch cfg.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// newHTTPClient builds the client for every outbound call: system roots plus an extra
// CA, an optional client certificate, proxies from the environment. Deadlines are set
// per call by whoever makes it.
func newHTTPClient(cfg configs.Outbound) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("outbound.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("outbound.ca_file: no certificate found")
		}
		tlsCfg.RootCAs = pool
	}
	if cfg.ClientCertFile != "" {
		cert, err := loadKeyPair(cfg.ClientCertFile, cfg.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("outbound.client_cert_file: %w", err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}
	tr.TLSClientConfig = tlsCfg
	tr.Proxy = http.ProxyFromEnvironment
	return &http.Client{Transport: tr, Timeout: time.Minute}, nil
}

// loadKeyPair accepts the key as a path or, when the secret reference put PEM content
// there (client_key_file: ${file:…}), as PEM itself.
func loadKeyPair(certFile, key string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM := []byte(key)
	if !strings.Contains(key, "-----BEGIN") {
		if keyPEM, err = os.ReadFile(key); err != nil {
			return tls.Certificate{}, errors.New("cannot read client_key_file")
		}
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// toSpec converts a config mapping section to the mapping package's own types.
func toSpec(m *configs.Mapping) mapping.Spec {
	spec := mapping.Spec{AllowedDomains: m.AllowedDomains, RewriteDomains: m.RewriteDomains}
	for _, c := range m.Email {
		mc := mapping.Candidate{Path: c.Path, Template: c.Template}
		if c.When != nil {
			mc.When = &mapping.When{Path: c.When.Path, Equals: c.When.Equals, HasEquals: c.When.Equals != nil, Matches: c.When.Matches, Exists: c.When.Exists}
		}
		for _, t := range c.Transforms {
			mc.Transforms = append(mc.Transforms, mapping.Transform{Name: t.Name, Arg: t.Arg, With: t.With})
		}
		spec.Candidates = append(spec.Candidates, mc)
	}
	return spec
}

// compileMapping compiles a mapping section, turning its errors into positioned config
// errors.
func compileMapping(file, path string, m *configs.Mapping) (*mapping.Rules, configs.Errors) {
	rules, errs := mapping.Compile(toSpec(m))
	var out configs.Errors
	for _, e := range errs {
		line, p := m.Line, path
		if e.Index >= 0 && e.Index < len(m.Email) {
			line = m.Email[e.Index].Line
			p = fmt.Sprintf("%s.email[%d]", path, e.Index)
		}
		if e.Field != "" {
			p += "." + e.Field
		}
		out = append(out, &configs.Error{File: file, Line: line, Path: p, Msg: e.Msg})
	}
	return rules, out
}

// built is a runtime plus what `check` and the CLI need to know about it.
type built struct {
	rt        *server.Runtime
	instances []*providers.Instance
	cache     cache.Cache
	dirs      providers.Directories
}

// buildRuntime builds every part a config needs. With validateOnly, factories only check
// their sections (no network, no goroutines) and the runtime is not usable. Every error
// is collected, so `check` prints them all at once. proc gives the process-wide cache and
// metrics; nil (one-shot commands) gives the runtime a memory cache of its own.
func buildRuntime(cfg *configs.Config, logger *slog.Logger, proc *process, validateOnly bool) (*built, configs.Errors) {
	var errs configs.Errors
	reg := registry()
	httpClient, err := newHTTPClient(cfg.Outbound)
	if err != nil {
		errs = append(errs, &configs.Error{File: cfg.File, Line: 1, Path: "outbound", Msg: err.Error()})
	}
	deps := providers.Deps{HTTPClient: httpClient, Logger: logger, Now: time.Now, File: cfg.File, ValidateOnly: validateOnly}

	var closers []func() error
	if httpClient != nil {
		// Each runtime has its own client: a retired one's keep-alive connections would
		// otherwise hold two goroutines each until their idle timeout.
		closers = append(closers, func() error { httpClient.CloseIdleConnections(); return nil })
	}
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}

	if len(cfg.Directories) > 0 {
		dirs, err := ldap.NewDirectories(cfg.Directories, deps)
		if err != nil {
			errs = append(errs, asConfigErrors(&configs.ProviderSection{File: cfg.File, Line: 1, Path: "directories"}, err)...)
		} else {
			deps.Directories = dirs
			closers = append(closers, dirs.Close)
		}
	}

	def, merrs := compileMapping(cfg.File, "mapping", &cfg.Mapping)
	errs = append(errs, merrs...)
	overrides := map[*providers.Instance]*mapping.Rules{}
	var instances []*providers.Instance
	for _, sec := range cfg.Providers {
		factory, ok := reg.Types[sec.Type]
		if !ok {
			errs = append(errs, &configs.Error{File: sec.File, Line: sec.Line, Path: sec.Path + ".type", Msg: fmt.Sprintf("unknown provider type %q (known: %s)", sec.Type, strings.Join(typeNames(reg), ", "))})
			continue
		}
		if warn, ok := reg.Warnings[sec.Type]; ok && validateOnly {
			errs = append(errs, warn(sec)...)
		}
		in, err := factory(sec, deps)
		if err != nil {
			errs = append(errs, asConfigErrors(sec, err)...)
			continue
		}
		inst := &in
		if inst.Close != nil {
			closers = append(closers, inst.Close)
		}
		for _, step := range []struct {
			present bool
			factory providers.EnricherFactory
			key     string
		}{{sec.Lookup != nil, reg.Lookup, "lookup"}, {sec.Userinfo != nil, reg.Userinfo, "userinfo"}} {
			if !step.present {
				continue
			}
			if step.factory == nil {
				errs = append(errs, sec.Errorf(step.key, "%s steps are not supported by this build", step.key))
				continue
			}
			e, err := step.factory(sec, inst.Provider, deps)
			if err != nil {
				errs = append(errs, asConfigErrors(sec, err)...)
				continue
			}
			inst.Enrichers = append(inst.Enrichers, e)
		}
		if sec.Mapping != nil {
			r, merrs := compileMapping(sec.File, sec.Path+".mapping", sec.Mapping)
			errs = append(errs, merrs...)
			overrides[inst] = r
		}
		instances = append(instances, inst)
	}
	if cfg.Spotnana != nil && validateOnly {
		if _, err := buildExchange(cfg, httpClient, nil, logger, true); err != nil {
			errs = append(errs, &configs.Error{File: cfg.File, Line: cfg.Spotnana.Line, Path: "spotnana", Msg: err.Error()})
		}
	}
	if len(errs.Fatal()) > 0 || validateOnly {
		closeAll()
		return &built{instances: instances}, errs
	}

	c, obs := proc.chainParts(cfg)
	chain := providers.NewChain(instances, c, nil, obs)
	chain.SetRequestTimeout(cfg.Server.RequestTimeout)
	bridge := server.NewBridge(chain, def, overrides, cfg.Response.EmailField, cfg.Response.Extra)
	rt := &server.Runtime{
		Config: cfg,
		Bridge: bridge,
		Health: proc.health(cfg, deps.Directories, healthFunc(instances)),
		Close:  closeAll,
	}
	if cfg.Spotnana != nil {
		parts, err := buildExchange(cfg, httpClient, c, logger, false)
		if err != nil {
			closeAll()
			return nil, configs.Errors{{File: cfg.File, Line: cfg.Spotnana.Line, Path: "spotnana", Msg: err.Error()}}
		}
		closers = append(closers, parts.close)
		rt.Exchange, rt.JWKS = parts.exchange, parts.jwks
	}
	return &built{rt: rt, instances: instances, cache: c, dirs: deps.Directories}, errs
}

func typeNames(reg providers.Registry) []string {
	var names []string
	for n := range reg.Types {
		names = append(names, n)
	}
	return names
}

// asConfigErrors keeps positioned errors as they are and positions any other error at
// the provider's section.
func asConfigErrors(sec *configs.ProviderSection, err error) configs.Errors {
	var ce configs.Errors
	if errors.As(err, &ce) {
		return ce
	}
	var one *configs.Error
	if errors.As(err, &one) {
		return configs.Errors{one}
	}
	return configs.Errors{{File: sec.File, Line: sec.Line, Path: sec.Path, Msg: err.Error()}}
}

// healthFunc reports each provider and enrichment step that can tell its state.
func healthFunc(instances []*providers.Instance) func(ctx context.Context) (bool, map[string]any) {
	return func(ctx context.Context) (bool, map[string]any) {
		ready := true
		out := map[string]any{}
		for _, in := range instances {
			entry := map[string]any{"type": in.Type}
			if h, ok := in.Provider.(providers.HealthChecker); ok {
				st := h.Health(ctx)
				if !st.Ready && in.Type == "jwt" {
					ready = false
				}
				entry["ready"], entry["ok"] = st.Ready, st.OK
				if st.Detail != "" {
					entry["detail"] = st.Detail
				}
			}
			for i, e := range in.Enrichers {
				if h, ok := e.(providers.HealthChecker); ok {
					st := h.Health(ctx)
					entry[fmt.Sprintf("step%d", i)] = st
				}
			}
			out["provider:"+in.Name] = entry
		}
		return ready, out
	}
}
