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
	"strings"
	"syscall"
	"time"

	"github.com/idbridge/idbridge/app"
	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/mapping"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/server"
	"github.com/idbridge/idbridge/spotnana"
)

// loadPlan parses a config file and builds every part it names (nothing is started),
// with the registry's secret keys. newLog builds the logger the parts will log to from
// the file's log section; nil discards. It prints every error and warning to stderr as
// FILE:LINE: key.path: message, in file order, each once, and reports whether the plan
// may start; the plan (when not nil) must be closed or started. Unless strict, a
// reference or file that cannot be resolved here is a warning (configs.LoadOffline), so
// that a file is checked without its secrets; serve is always strict. listens adds what
// only a command that serves needs (app.CheckListener: the TLS certificate and key).
func loadPlan(path string, stderr io.Writer, newLog func(configs.Log) *slog.Logger, strict, listens bool) (*app.Plan, bool) {
	if path == "" {
		fmt.Fprintln(stderr, "idbridge: --config FILE is required (or set IDBRIDGE_CONFIG)")
		return nil, false
	}
	reg := registry()
	load := configs.Load
	if !strict {
		load = configs.LoadOffline
	}
	cfg, errs := load(path, reg.SecretKeys()...)
	var plan *app.Plan
	if cfg != nil {
		logger := slog.New(slog.DiscardHandler)
		if newLog != nil {
			logger = newLog(cfg.Log)
		}
		var perrs configs.Errors
		plan, perrs = app.Load(cfg, reg, logger)
		errs = append(errs, perrs...)
		if listens {
			errs = append(errs, app.CheckListener(cfg, strict)...)
		}
		errs = slices.DeleteFunc(errs, cfg.Excused)
	}
	errs = app.SortErrors(errs)
	for _, e := range errs {
		fmt.Fprintln(stderr, e.Error())
	}
	if len(errs.Fatal()) > 0 {
		plan.Close()
		return nil, false
	}
	return plan, true
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	path := configFlag(fs)
	strict := fs.Bool("strict", false, "treat references and files that cannot be resolved here as errors, as serve does")
	if !parseArgs(fs, args) {
		return exitUsage
	}
	// check parses only: nothing is started, no network is touched.
	plan, ok := loadPlan(*path, stderr, nil, *strict, true)
	if !ok {
		return exitUsage
	}
	plan.Close()
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return exitOK
}

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("serve", stderr)
	path := configFlag(fs)
	if !parseArgs(fs, args) {
		return exitUsage
	}
	sink := newLogSink(stderr)
	defer sink.Close()
	var logger *slog.Logger
	newLog := func(c configs.Log) *slog.Logger {
		logger = slog.New(flushingHandler{app.NewLogger(c, sink).Handler(), sink})
		return logger
	}
	plan, ok := loadPlan(*path, stderr, newLog, true, true)
	if !ok {
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := app.Serve(ctx, plan, app.ServeOptions{
		Path:       *path,
		Registry:   registry(),
		Logger:     logger,
		AccessLog:  &server.AccessLog{W: sink, JSON: plan.Config.Log.Format != "text"},
		Ready:      func(string, string) { sink.Flush() }, // tell the operator at once that it listens
		Playground: playgroundOptions(plan.Config, *path),
		Version:    shortVersion(),
	})
	if err != nil {
		logger.Error("idbridge stopped", "error", err)
		return exitRuntime
	}
	return exitOK
}

func cmdMap(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("map", stderr)
	path := configFlag(fs)
	provider := fs.String("provider", "", "apply this provider's mapping override (default: the top-level mapping)")
	input := fs.String("input", "", "identity document `FILE` (JSON) or a token (JWT, decoded unverified), or - for standard input")
	suggest := fs.Bool("suggest", false, "list every value that looks like an email, with its gjson path, a rule to paste and the known traps (--config optional)")
	if !parseArgs(fs, args) {
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
	cfg, errs := configs.LoadOffline(path, registry().SecretKeys()...)
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
	rules, cerrs := app.CompileMapping(cfg.File, where, m)
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
	rt    *server.Runtime
	code  int
}

func loadTokenCommand(name, tokenFlag, tokenHelp string, args []string, stderr io.Writer) tokenCommand {
	fs := newFlags(name, stderr)
	path := configFlag(fs)
	tokenFile := fs.String(tokenFlag, "", tokenHelp)
	if !parseArgs(fs, args) {
		return tokenCommand{code: exitUsage}
	}
	if *tokenFile == "" {
		fmt.Fprintf(stderr, "idbridge %s: --%s FILE|- is required\n", name, tokenFlag)
		return tokenCommand{code: exitUsage}
	}
	plan, ok := loadPlan(*path, stderr, func(c configs.Log) *slog.Logger { return app.NewLogger(c, stderr) }, true, false)
	if !ok {
		return tokenCommand{code: exitUsage}
	}
	raw, err := readInput(*tokenFile, os.Stdin)
	if err != nil {
		plan.Close()
		fmt.Fprintf(stderr, "idbridge %s: %v\n", name, err)
		return tokenCommand{code: exitUsage}
	}
	var none *app.Process // one-shot: a memory cache of its own, no metrics
	rt, err := none.Runtime(context.Background(), plan)
	if err != nil {
		fmt.Fprintf(stderr, "idbridge %s: %v\n", name, err)
		return tokenCommand{code: exitRuntime}
	}
	return tokenCommand{cfg: plan.Config, token: string(trimSpace(raw)), rt: rt}
}

func cmdResolve(args []string, stdout, stderr io.Writer) int {
	tc := loadTokenCommand("resolve", "token", "`FILE` holding the bearer token, or - for standard input", args, stderr)
	if tc.code != 0 {
		return tc.code
	}
	defer tc.rt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), tc.cfg.Server.RequestTimeout)
	defer cancel()
	sum := providers.TokenSum(tc.token)
	fmt.Fprintf(stdout, "token fingerprint: %s\n", providers.Fingerprint(sum))
	res, err := tc.rt.Bridge.Chain().Resolve(ctx, tc.token, sum)
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
	email, trace, err := tc.rt.Bridge.RulesFor(res.Instance).Trace(res.Document)
	fmt.Fprint(stdout, trace.String())
	if err != nil {
		fmt.Fprintf(stdout, "result: no email (%v)\n", err)
		return exitRuntime
	}
	fmt.Fprintf(stdout, "email: %s\n", email)
	return exitOK
}

// verdict is the refusal's class in words (providers.Classify, as the server's status).
func verdict(err error) string { return providers.Classify(err).String() }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

func cmdExchange(args []string, stdout, stderr io.Writer) int {
	tc := loadTokenCommand("exchange", "subject-token", "`FILE` holding the user's token, or - for standard input", args, stderr)
	if tc.code != 0 {
		return tc.code
	}
	defer tc.rt.Close()
	cfg, token, rt := tc.cfg, tc.token, tc.rt
	if cfg.Spotnana == nil {
		fmt.Fprintf(stderr, "%s: spotnana: the section is required for an exchange\n", cfg.File)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Server.RequestTimeout+cfg.Spotnana.Timeout*time.Duration(1+maxRetries(cfg.Spotnana)))
	defer cancel()
	// The token is validated and mapped locally first, as the route does: a bad token
	// never reaches Spotnana.
	res, err := rt.Bridge.Resolve(ctx, token, providers.TokenSum(token))
	if err != nil {
		fmt.Fprintf(stderr, "idbridge exchange: refused locally (%s): %v\n", verdict(err), err)
		return exitRuntime
	}
	body, err := rt.Exchange(ctx, res, token)
	if err != nil {
		var refused *spotnana.RefusedError
		if errors.As(err, &refused) {
			out, _ := json.MarshalIndent(refused, "", "  ")
			fmt.Fprintf(stdout, "%s\n", out)
		}
		fmt.Fprintf(stderr, "idbridge exchange: %v\n", err)
		return exitRuntime
	}
	var pretty any
	if json.Unmarshal(body, &pretty) == nil {
		body, _ = json.MarshalIndent(pretty, "", "  ")
	}
	fmt.Fprintf(stdout, "%s\n", body)
	return exitOK
}

func maxRetries(sc *configs.Spotnana) int {
	if sc.MaxRetries == nil {
		return 3
	}
	return *sc.MaxRetries
}
