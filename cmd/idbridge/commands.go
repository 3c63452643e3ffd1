package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/mapping"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/server"
)

// loadConfig loads and fully validates a config file, providers included. It prints
// every error to stderr as FILE:LINE: key.path: message. Unless strict, references and
// files that cannot be resolved here are warnings (configs.LoadOffline), so that a file
// is checked without its secrets.
func loadConfig(path string, stderr io.Writer, strict bool) (*configs.Config, bool) {
	if path == "" {
		fmt.Fprintln(stderr, "idbridge: --config FILE is required (or set IDBRIDGE_CONFIG)")
		return nil, false
	}
	load := configs.Load
	if !strict {
		load = configs.LoadOffline
	}
	cfg, errs := load(path)
	if cfg != nil {
		_, perrs := buildRuntime(cfg, slog.New(slog.DiscardHandler), nil, true)
		errs = append(errs, perrs...)
		errs = slices.DeleteFunc(errs, cfg.Excused)
	}
	// In file order, as an editor would walk them.
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].File == errs[j].File && errs[i].Line < errs[j].Line })
	// The config loader and the mapping compiler both check mapping rules, in their own
	// words: a mapping position is printed once. Any other two errors at one position
	// are two problems and are both printed.
	seen := map[string]bool{}
	for _, e := range errs {
		key := fmt.Sprintf("%s:%d:%s", e.File, e.Line, e.Path)
		if !strings.Contains(e.Path, "mapping") {
			key += ":" + e.Msg
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		fmt.Fprintln(stderr, e.Error())
	}
	return cfg, len(errs.Fatal()) == 0
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	path := configFlag(fs)
	strict := fs.Bool("strict", false, "treat references and files that cannot be resolved here as errors, as serve does")
	if fs.Parse(args) != nil {
		return exitUsage
	}
	if _, ok := loadConfig(*path, stderr, *strict); !ok {
		return exitUsage
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return exitOK
}

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("serve", stderr)
	path := configFlag(fs)
	if fs.Parse(args) != nil {
		return exitUsage
	}
	cfg, ok := loadConfig(*path, stderr, true)
	if !ok {
		return exitUsage
	}
	sink := newLogSink(stderr)
	defer sink.Close()
	logger := newLogger(cfg.Log, sink)
	logger = slog.New(flushingHandler{logger.Handler(), sink})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ready := func(string, string) { sink.Flush() } // tell the operator at once that it listens
	access := &server.AccessLog{W: sink, JSON: cfg.Log.Format != "text"}
	if err := serve(ctx, *path, cfg, logger, access, ready); err != nil {
		logger.Error("idbridge stopped", "error", err)
		return exitRuntime
	}
	return exitOK
}

// serve runs the bridge for cfg until ctx is done; SIGHUP reloads path. ready, when not
// nil, receives the bound addresses once listening.
//
// access, when not nil, is the fast path for the per-request log line; it must write to
// the same place as logger.
func serve(ctx context.Context, path string, cfg *configs.Config, logger *slog.Logger, access *server.AccessLog, ready func(main, admin string)) error {
	proc, err := newProcess(cfg, logger)
	if err != nil {
		return err
	}
	defer proc.Close()
	b, errs := buildRuntime(cfg, logger, proc, false)
	if len(errs.Fatal()) > 0 {
		return errs.Fatal()
	}
	opts := proc.options(logger)
	opts.AccessLog = access
	opts.Playground = playgroundOptions(cfg, path)
	srv, err := server.New(b.rt, opts)
	if err != nil {
		return err
	}
	proc.installed(cfg, b)
	mainLn, adminLn, err := srv.Listen()
	if err != nil {
		b.rt.Close()
		return err
	}
	// SIGHUP is caught before "idbridge serving" is logged: its default action would
	// kill a process reloaded as soon as it says it serves.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	adminAddr := ""
	if adminLn != nil {
		adminAddr = adminLn.Addr().String()
	}
	logger.Info("idbridge serving", "version", version, "listen", mainLn.Addr().String(), "admin_listen", adminAddr, "providers", len(b.instances))
	if ready != nil {
		ready(mainLn.Addr().String(), adminAddr)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload(path, logger, srv, proc)
			}
		}
	}()
	err = srv.Serve(ctx, mainLn, adminLn)
	srv.Close()
	return err
}

// reload re-reads the config; a valid one replaces the running one atomically, an
// invalid one is logged with every error and the old one keeps serving.
// The cache is the process's: unchanged providers keep their entries.
func reload(path string, logger *slog.Logger, srv *server.Server, proc *process) {
	cfg, errs := loadForReload(path)
	if cfg == nil || len(errs.Fatal()) > 0 {
		logReloadErrors(logger, errs)
		proc.reloaded(logger, nil, nil, false)
		return
	}
	b, errs := buildRuntime(cfg, logger, proc, false)
	if len(errs.Fatal()) > 0 {
		logReloadErrors(logger, errs)
		proc.reloaded(logger, nil, nil, false)
		return
	}
	old := srv.Current()
	if err := srv.Swap(b.rt); err != nil {
		b.rt.Close()
		logger.Error("config reload refused", "error", err)
		proc.reloaded(logger, nil, nil, false)
		return
	}
	proc.installed(cfg, b)
	proc.reloaded(logger, cfg, old, true)
	if err := srv.ReloadTLS(); err != nil {
		logger.Error("TLS certificate reload failed; the previous certificate keeps serving", "error", err)
	}
	logger.Info("config reloaded", "providers", len(b.instances))
}

func logReloadErrors(logger *slog.Logger, errs configs.Errors) {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs.Fatal() {
		msgs = append(msgs, e.Error())
	}
	logger.Error("config reload refused; the previous config keeps serving", "errors", msgs)
}

func cmdMap(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("map", stderr)
	path := configFlag(fs)
	provider := fs.String("provider", "", "apply this provider's mapping override (default: the top-level mapping)")
	input := fs.String("input", "", "identity document `FILE` (JSON) or a token (JWT, decoded unverified), or - for standard input")
	suggest := fs.Bool("suggest", false, "list every value that looks like an email, with its gjson path, a rule to paste and the known traps (--config optional)")
	if fs.Parse(args) != nil {
		return exitUsage
	}
	if *input == "" {
		fmt.Fprintln(stderr, "idbridge map: --input FILE|- is required")
		return exitUsage
	}
	raw, err := readInput(*input, os.Stdin)
	if err != nil {
		fmt.Fprintf(stderr, "idbridge map: %v\n", err)
		return exitUsage
	}
	in, err := mapping.ParseInput(raw)
	if err != nil {
		fmt.Fprintf(stderr, "idbridge map: the input: %v\n", err)
		return exitUsage
	}
	if in.FromJWT {
		fmt.Fprintf(stdout, "input: a JWT's payload, decoded WITHOUT verifying its signature (UNVERIFIED); header %s\n", in.Header)
	}
	if *suggest {
		printSuggestions(stdout, in.Document)
		if *path == "" {
			return exitOK
		}
	}
	rules, where, ok := mapRules(*path, *provider, stderr)
	if !ok {
		return exitUsage
	}
	email, trace, err := rules.Trace(in.Document)
	fmt.Fprintf(stdout, "rules: %s\n%s", where, trace.String())
	if err != nil {
		fmt.Fprintf(stdout, "result: no email (%v)\n", err)
		return exitRuntime
	}
	fmt.Fprintf(stdout, "email: %s\n", email)
	return exitOK
}

// mapRules compiles the mapping that applies (the top level, or provider's override)
// from path, which needs no secret and no network: only the mapping's own errors count.
func mapRules(path, provider string, stderr io.Writer) (*mapping.Rules, string, bool) {
	if path == "" {
		fmt.Fprintln(stderr, "idbridge map: --config FILE is required (or set IDBRIDGE_CONFIG)")
		return nil, "", false
	}
	cfg, errs := configs.LoadOffline(path)
	if cfg == nil {
		fmt.Fprintln(stderr, errs.Error())
		return nil, "", false
	}
	m, where := &cfg.Mapping, "mapping"
	if provider != "" {
		var sec *configs.ProviderSection
		for _, s := range cfg.Providers {
			if s.Name == provider {
				sec = s
			}
		}
		if sec == nil {
			fmt.Fprintf(stderr, "idbridge map: no provider named %q\n", provider)
			return nil, "", false
		}
		if sec.Mapping != nil {
			m, where = sec.Mapping, sec.Path+".mapping"
		}
	}
	for _, e := range cfg.Redact(errs.Fatal()) {
		if e.Path == where || strings.HasPrefix(e.Path, where+".") {
			fmt.Fprintln(stderr, e.Error())
		}
	}
	rules, cerrs := compileMapping(cfg.File, where, m)
	if len(cerrs) > 0 {
		fmt.Fprintln(stderr, cerrs.Error())
		return nil, "", false
	}
	return rules, where, true
}

// printSuggestions lists the email-like values of doc, safe ones first.
func printSuggestions(w io.Writer, doc []byte) {
	sugg := mapping.Suggest(doc)
	if len(sugg) == 0 {
		fmt.Fprintln(w, "no value looks like an email")
		return
	}
	fmt.Fprintln(w, "values that look like an email (a rule to paste under mapping.email, then the traps):")
	for _, s := range sugg {
		fmt.Fprintf(w, "\n  %s = %q\n", s.Path, s.Value)
		for _, l := range strings.Split(s.Rule, "\n") {
			fmt.Fprintf(w, "    %s\n", l)
		}
		for _, t := range s.Traps {
			fmt.Fprintf(w, "    TRAP: %s\n", t)
		}
	}
	fmt.Fprintln(w)
}

// tokenCommand is what resolve and exchange share: flags, the validated config, the token
// read from FILE or standard input, and a running runtime. code is set when it failed.
type tokenCommand struct {
	cfg   *configs.Config
	token string
	b     *built
	code  int
}

func loadTokenCommand(name, tokenFlag, tokenHelp string, args []string, stderr io.Writer) tokenCommand {
	fs := newFlags(name, stderr)
	path := configFlag(fs)
	tokenFile := fs.String(tokenFlag, "", tokenHelp)
	if fs.Parse(args) != nil {
		return tokenCommand{code: exitUsage}
	}
	if *tokenFile == "" {
		fmt.Fprintf(stderr, "idbridge %s: --%s FILE|- is required\n", name, tokenFlag)
		return tokenCommand{code: exitUsage}
	}
	cfg, ok := loadConfig(*path, stderr, true)
	if !ok {
		return tokenCommand{code: exitUsage}
	}
	raw, err := readInput(*tokenFile, os.Stdin)
	if err != nil {
		fmt.Fprintf(stderr, "idbridge %s: %v\n", name, err)
		return tokenCommand{code: exitUsage}
	}
	b, errs := buildRuntime(cfg, newLogger(cfg.Log, stderr), nil, false)
	if len(errs.Fatal()) > 0 {
		fmt.Fprintln(stderr, errs.Fatal().Error())
		return tokenCommand{code: exitUsage}
	}
	return tokenCommand{cfg: cfg, token: string(trimSpace(raw)), b: b}
}

func cmdResolve(args []string, stdout, stderr io.Writer) int {
	tc := loadTokenCommand("resolve", "token", "`FILE` holding the bearer token, or - for standard input", args, stderr)
	if tc.code != 0 {
		return tc.code
	}
	defer tc.b.rt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), tc.cfg.Server.RequestTimeout)
	defer cancel()
	sum := providers.TokenSum(tc.token)
	fmt.Fprintf(stdout, "token fingerprint: %s\n", providers.Fingerprint(sum))
	res, err := tc.b.rt.Bridge.Chain().Resolve(ctx, tc.token, sum)
	if err != nil {
		fmt.Fprintf(stdout, "result: refused (%s)\n", verdict(err))
		fmt.Fprintf(stdout, "detail: %v\n", err)
		return exitRuntime
	}
	fmt.Fprintf(stdout, "provider: %s (type %s)\n", res.Provider, res.Instance.Type)
	var pretty any
	if json.Unmarshal(res.Document, &pretty) == nil {
		out, _ := json.MarshalIndent(pretty, "", "  ")
		fmt.Fprintf(stdout, "identity document:\n%s\n", out)
	}
	email, trace, err := tc.b.rt.Bridge.RulesFor(res.Instance).Trace(res.Document)
	fmt.Fprint(stdout, trace.String())
	if err != nil {
		fmt.Fprintf(stdout, "result: no email (%v)\n", err)
		return exitRuntime
	}
	fmt.Fprintf(stdout, "email: %s\n", email)
	return exitOK
}

func verdict(err error) string {
	switch {
	case errors.Is(err, providers.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, providers.ErrInsufficientScope):
		return "insufficient scope"
	case errors.Is(err, providers.ErrAccessDenied):
		return "access denied"
	case errors.Is(err, providers.ErrInvalidToken):
		return "invalid token"
	}
	return "error"
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}
