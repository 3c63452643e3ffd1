// Package app turns a configuration file into a running bridge, in two steps with a
// clear line between them (the shape of Caddy's Provision/Cleanup):
//
//   - Load parses: it reads the file, hands each section to the package that owns it
//     (through the registry: provider types, enrichment steps, directories; the mapping
//     package for mapping rules) and collects every error once, in file order. It has no
//     side effects: no network call, no goroutine. `idbridge check` stops here.
//   - Plan.Start starts what Load built (key loads, refreshers, directory checks), under
//     the caller's context, and undoes a half-done start when a later step fails.
//
// The registry is injected (cmd builds it): this package names no provider type.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/idbridge/idbridge/cache"
	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/mapping"
	"github.com/idbridge/idbridge/outbound"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/server"
	"github.com/idbridge/idbridge/spotnana"
)

// Plan is a parsed configuration: every part built, nothing started.
type Plan struct {
	Config    *configs.Config
	Instances []*providers.Instance
	// Mapping is the top-level mapping; Overrides a provider's own, by instance.
	Mapping   *mapping.Rules
	Overrides map[*providers.Instance]*mapping.Rules
	// Directories are the configured directories; nil without a directories: section.
	Directories providers.Directories

	logger   *slog.Logger
	client   *http.Client
	exchange *exchangePlan // nil without a spotnana: section
	closers  []func() error
	closed   bool
}

// LoadFile reads and parses path with the registry's secret keys and builds every part
// (see Load). The Plan is nil when the file itself could not be read as YAML.
func LoadFile(path string, reg providers.Registry, logger *slog.Logger) (*Plan, configs.Errors) {
	cfg, errs := configs.Load(path, reg.SecretKeys()...)
	if cfg == nil {
		return nil, errs
	}
	p, perrs := Load(cfg, reg, logger)
	perrs = append(perrs, CheckListener(cfg, true)...)
	return p, SortErrors(append(errs, perrs...))
}

// Load builds every part cfg names, without side effects, and returns every error (and
// warning) of the parts, each reported once by the part that owns the rule. The Plan is
// returned even with errors, so that its parts can be closed; start it only when
// errs.Fatal() is empty. logger receives what the parts log later; nil discards.
func Load(cfg *configs.Config, reg providers.Registry, logger *slog.Logger) (*Plan, configs.Errors) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Plan{Config: cfg, logger: logger, Overrides: map[*providers.Instance]*mapping.Rules{}}
	var errs configs.Errors

	client, err := outbound.New(cfg.Outbound)
	if err != nil {
		// At the file's own key, so that check without --strict excuses a file that is
		// only absent here, as it does every other.
		path, msg := "outbound", err.Error()
		if fe := (*outbound.FileError)(nil); errors.As(err, &fe) {
			path, msg = path+"."+fe.Key, fe.Err.Error()
		}
		errs = append(errs, &configs.Error{File: cfg.File, Line: 1, Path: path, Msg: msg})
	}
	p.client = client
	if client != nil {
		// Each runtime has its own client: a retired one's keep-alive connections would
		// otherwise hold two goroutines each until their idle timeout.
		p.closers = append(p.closers, func() error { client.CloseIdleConnections(); return nil })
	}
	deps := providers.Deps{HTTPClient: client, Logger: logger, Now: time.Now, File: cfg.File}
	if cfg.Cache.Backend == "redis" && !cfg.Reported("cache.redis") && !cfg.Unresolved("cache.redis") {
		// The cache package reads its TLS files; check reports what it would refuse.
		if _, err := cache.RedisTLS(cfg.Cache.Redis); err != nil {
			path, msg := "cache.redis", err.Error()
			if fe := (*outbound.FileError)(nil); errors.As(err, &fe) {
				path, msg = path+"."+fe.Key, fe.Err.Error()
			}
			errs = append(errs, &configs.Error{File: cfg.File, Line: max(cfg.Cache.Redis.Line, 1), Path: path, Msg: msg})
		}
	}

	if len(cfg.Directories) > 0 {
		if reg.Directories == nil {
			d := cfg.Directories[0]
			errs = append(errs, &configs.Error{File: d.File, Line: d.Line, Path: "directories", Msg: "directories are not supported by this build"})
		} else {
			dirs, derrs := reg.Directories.New(cfg.Directories, deps)
			errs = append(errs, derrs...)
			if dirs != nil {
				p.Directories = dirs
				deps.Directories = dirs
				p.closers = append(p.closers, dirs.Close)
			}
		}
	}

	// A section configs already refused (a typo, a failed reference) is not judged again
	// by the next owner: each fault is reported once.
	if cfg.Mapping.Line > 0 && !cfg.Reported("mapping") {
		rules, merrs := CompileMapping(cfg.File, "mapping", &cfg.Mapping)
		errs = append(errs, merrs...)
		errs = append(errs, LintMapping(cfg.File, "mapping", &cfg.Mapping)...)
		p.Mapping = rules
	}
	for _, sec := range cfg.Providers {
		if cfg.Unresolved(sec.Path) {
			continue
		}
		in, ierrs := p.provider(cfg, sec, reg, deps)
		errs = append(errs, ierrs...)
		if in != nil {
			p.Instances = append(p.Instances, in)
		}
	}
	if cfg.Spotnana != nil && !cfg.Reported("spotnana") {
		x, err := planExchange(cfg, client, logger)
		if err != nil {
			errs = append(errs, &configs.Error{File: cfg.File, Line: cfg.Spotnana.Line, Path: "spotnana", Msg: err.Error()})
		}
		p.exchange = x
		if cfg.Spotnana.Mode == "assertion" {
			for _, f := range spotnana.LooseKeyFiles(cfg.Spotnana.Assertion.KeysDir) {
				errs = append(errs, &configs.Error{File: cfg.File, Line: cfg.Spotnana.Line, Path: "spotnana.assertion.keys_dir", Warning: true,
					Msg: "private key " + f + " is readable by group or others; make it 0400 or 0600 (Kubernetes: defaultMode: 0400)"})
			}
		}
	}
	// An error from any part may quote a value a reference brought in: show the
	// reference instead.
	return p, cfg.Redact(SortErrors(errs))
}

// provider builds one provider and its steps.
func (p *Plan) provider(cfg *configs.Config, sec *configs.ProviderSection, reg providers.Registry, deps providers.Deps) (*providers.Instance, configs.Errors) {
	var errs configs.Errors
	own, steps := sec.Split(reg.StepKeys())
	typ, ok := reg.Types[sec.Type]
	switch {
	case sec.Type == "":
		return nil, configs.Errors{sec.Errorf("type", "required: one of %s", joinNames(reg.TypeNames()))}
	case !ok:
		return nil, configs.Errors{sec.Errorf("type", "unknown provider type %q (known: %s)", sec.Type, joinNames(reg.TypeNames()))}
	}
	if typ.Warnings != nil {
		errs = append(errs, typ.Warnings(own)...)
	}
	// The steps are checked even when the provider's own keys are not: their faults are
	// theirs. Without a provider (nil), a step does not judge what depends on it.
	var inst *providers.Instance
	var prov providers.Provider
	if in, err := typ.New(own, deps); err != nil {
		errs = append(errs, asConfigErrors(sec, err)...)
	} else {
		inst, prov = &in, in.Provider
		if inst.Close != nil {
			p.closers = append(p.closers, inst.Close)
		}
	}
	var enrichers []providers.Enricher
	intos := map[string]string{}
	for _, step := range steps {
		i := slices.IndexFunc(reg.Steps, func(s providers.Step) bool { return s.Key == step.Name })
		if w := reg.Steps[i].Warnings; w != nil {
			errs = append(errs, w(step)...)
		}
		e, err := reg.Steps[i].New(step, sec, prov, deps)
		if err != nil {
			errs = append(errs, asConfigErrors(sec, err)...)
			continue
		}
		// Two steps merging under one key would overwrite each other's answer.
		if into, ok := e.(interface{ Into() string }); ok {
			if other, dup := intos[into.Into()]; dup {
				errs = append(errs, step.Errorf("into", "is the same as %s.into (%q): one would overwrite the other", other, into.Into()))
			}
			intos[into.Into()] = step.Name
		}
		enrichers = append(enrichers, e)
	}
	var rules *mapping.Rules
	if sec.Mapping != nil && !cfg.Reported(sec.Path+".mapping") {
		var merrs configs.Errors
		rules, merrs = CompileMapping(sec.File, sec.Path+".mapping", sec.Mapping)
		errs = append(errs, merrs...)
		errs = append(errs, LintMapping(sec.File, sec.Path+".mapping", sec.Mapping)...)
	}
	if inst == nil {
		return nil, errs
	}
	inst.Enrichers = enrichers
	if rules != nil {
		p.Overrides[inst] = rules
	}
	return inst, errs
}

// Warnings are the advice Load found, for the log at start.
func (p *Plan) warn(errs configs.Errors) {
	for _, w := range errs.Warnings() {
		p.logger.Warn("configuration", "warning", w.Error())
	}
}

// Start starts every part, bounded by ctx: the directories' first checks and each
// provider's Start, in order. When one fails, what was started is closed and the error
// returned. A Plan starts once.
func (p *Plan) Start(ctx context.Context) error {
	if p.Directories != nil {
		p.Directories.Start(ctx)
	}
	for _, in := range p.Instances {
		if in.Start == nil {
			continue
		}
		if err := in.Start(ctx); err != nil {
			p.Close()
			return fmt.Errorf("provider %s: %w", in.Name, err)
		}
	}
	if p.exchange != nil {
		if err := p.exchange.start(ctx); err != nil {
			p.Close()
			return err
		}
		p.closers = append(p.closers, p.exchange.close)
	}
	return nil
}

// Close releases every part, started or not, in reverse order. It is safe to call twice.
func (p *Plan) Close() {
	if p == nil || p.closed {
		return
	}
	p.closed = true
	for i := len(p.closers) - 1; i >= 0; i-- {
		_ = p.closers[i]()
	}
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

func joinNames(names []string) string {
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += n
	}
	return out
}

// SortErrors puts errors in file order, keeping the owners' order on one line. Nothing is
// merged: each fault has one owner, who reports it once.
func SortErrors(errs configs.Errors) configs.Errors {
	slices.SortStableFunc(errs, func(a, b *configs.Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	return errs
}

// ToSpec converts a config mapping section to the mapping package's own types.
func ToSpec(m *configs.Mapping) mapping.Spec {
	spec := mapping.Spec{AllowedDomains: m.AllowedDomains, RewriteDomains: m.RewriteDomains, AllowUnicode: m.AllowUnicode}
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

// CompileMapping compiles a mapping section (the mapping package owns its rules) and
// places each error at its candidate's, or transform's, line.
func CompileMapping(file, path string, m *configs.Mapping) (*mapping.Rules, configs.Errors) {
	rules, errs := mapping.Compile(ToSpec(m))
	return rules, positioned(file, path, m, errs, false)
}

// LintMapping returns the mapping's warnings (claim URIs with bare dots, an unverified
// email claim), positioned like CompileMapping's errors.
func LintMapping(file, path string, m *configs.Mapping) configs.Errors {
	return positioned(file, path, m, mapping.Lint(ToSpec(m)), true)
}

// positioned places the mapping package's errors at their candidate's (or transform's)
// line.
func positioned(file, path string, m *configs.Mapping, errs []*mapping.CompileError, warning bool) configs.Errors {
	var out configs.Errors
	for _, e := range errs {
		line, p := m.Line, path
		if e.Index >= 0 && e.Index < len(m.Email) {
			c := &m.Email[e.Index]
			line, p = c.Line, fmt.Sprintf("%s.email[%d]", path, e.Index)
			var j int
			if _, err := fmt.Sscanf(e.Field, "transforms[%d]", &j); err == nil && j >= 0 && j < len(c.Transforms) && c.Transforms[j].Line > 0 {
				line = c.Transforms[j].Line
			}
		}
		if e.Field != "" {
			p += "." + e.Field
		}
		out = append(out, &configs.Error{File: file, Line: max(line, 1), Path: p, Msg: e.Msg, Warning: warning})
	}
	return out
}

// NewLogger builds the process logger from the log section.
func NewLogger(cfg configs.Log, w io.Writer) *slog.Logger {
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

// CheckListener reports what would stop serve once it has started: the main listener's
// certificate and key (server.tls) that cannot be read, or do not parse or match, read
// by server.LoadKeyPair as serve reads them. serve,
// check and a reload ask it; the one-shot commands (resolve, exchange) listen on nothing
// and do not. An unreadable file is reported at its own key, so that check without
// --strict (strict false) excuses one that is only absent here, and takes one this user
// may not read (permission denied) as a warning: check often runs as another user than
// serve.
func CheckListener(cfg *configs.Config, strict bool) configs.Errors {
	t := cfg.Server.TLS
	if t.CertFile == "" || t.KeyFile == "" || cfg.Reported("server.tls") || cfg.Unresolved("server.tls") {
		return nil
	}
	_, err := server.LoadKeyPair(t.CertFile, t.KeyFile)
	if err == nil {
		return nil
	}
	// A read failure is one *outbound.FileError per file (errors.Join when both fail).
	all := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		all = j.Unwrap()
	}
	var errs configs.Errors
	for _, e := range all {
		fe := (*outbound.FileError)(nil)
		if !errors.As(e, &fe) {
			continue
		}
		ce := &configs.Error{File: cfg.File, Line: 1, Path: "server.tls." + fe.Key, Msg: fe.Err.Error()}
		if !strict && errors.Is(fe.Err, fs.ErrPermission) {
			ce.Warning = true
			ce.Msg += " (this user may not read it here; check --strict and serve require it)"
		}
		errs = append(errs, ce)
	}
	if len(errs) == 0 {
		errs = append(errs, &configs.Error{File: cfg.File, Line: 1, Path: "server.tls", Msg: "cert_file and key_file are not a usable certificate and key: " + err.Error()})
	}
	return errs
}
