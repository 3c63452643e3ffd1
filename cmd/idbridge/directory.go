package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/idbridge/idbridge/app"
	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/mapping"
	"github.com/idbridge/idbridge/providers"
	"github.com/idbridge/idbridge/providers/ldap"
)

func cmdDirectory(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintln(stderr, "usage: idbridge directory test --config FILE --directory NAME [--claims FILE | --token FILE] [--filter F]")
		return exitUsage
	}
	fs := newFlags("directory test", stderr)
	path := configFlag(fs)
	dir := fs.String("directory", "", "the directory `NAME` under directories: (default: the only one)")
	provider := fs.String("provider", "", "test the search of this provider (default: the first that searches the directory)")
	claims := fs.String("claims", "", "sample identity document `FILE` (JSON) whose claims fill the filter's placeholders, or -")
	tokenFile := fs.String("token", "", "token `FILE` (or -): a JWT's claims fill the filter (decoded unverified) and {{token_sha256}} is its hash")
	filter := fs.String("filter", "", "search with this filter template instead of the provider's")
	if !parseArgs(fs, args[1:]) {
		return exitUsage
	}
	if (*claims == "") == (*tokenFile == "") {
		fmt.Fprintln(stderr, "idbridge directory test: give exactly one of --claims FILE and --token FILE")
		return exitUsage
	}
	if *path == "" {
		fmt.Fprintln(stderr, "idbridge directory test: --config FILE is required (or set IDBRIDGE_CONFIG)")
		return exitUsage
	}
	// Only the directory's own keys must resolve here: no Spotnana or Redis secret.
	cfg, errs := configs.LoadOffline(*path, registry().SecretKeys()...)
	if cfg == nil {
		fmt.Fprintln(stderr, errs.Error())
		return exitUsage
	}
	if *dir == "" && len(cfg.Directories) == 1 {
		*dir = cfg.Directories[0].Name
	}
	prefix := "directories." + *dir
	// A warning here is a reference or file absent here: the test needs it.
	bad := false
	for _, e := range cfg.Redact(errs) {
		if e.Path == prefix || strings.HasPrefix(e.Path, prefix+".") {
			fmt.Fprintln(stderr, e.Error())
			bad = true
		}
	}
	if bad {
		return exitUsage
	}
	target, err := ldap.TargetFor(cfg, *dir, *provider)
	if err != nil {
		var ce configs.Errors
		if errors.As(err, &ce) {
			fmt.Fprintln(stderr, cfg.Redact(ce).Error())
		} else {
			fmt.Fprintf(stderr, "idbridge directory test: %v\n", err)
		}
		return exitUsage
	}
	if *filter != "" {
		target.Probe.Filter, target.Source = *filter, "--filter"
	}
	if target.Probe.Filter == "" {
		fmt.Fprintf(stderr, "idbridge directory test: no provider searches directory %q: give --filter\n", *dir)
		return exitUsage
	}

	var doc []byte
	if *claims != "" {
		raw, err := readInput(*claims, os.Stdin)
		if err == nil && !json.Valid(raw) {
			err = errors.New("not valid JSON")
		}
		if err != nil {
			fmt.Fprintf(stderr, "idbridge directory test: --claims: %v\n", err)
			return exitUsage
		}
		doc = raw
	} else {
		raw, err := readInput(*tokenFile, os.Stdin)
		if err != nil {
			fmt.Fprintf(stderr, "idbridge directory test: --token: %v\n", err)
			return exitUsage
		}
		tok := string(trimSpace(raw))
		sum := providers.TokenSum(tok)
		target.Probe.TokenSHA256 = hex.EncodeToString(sum[:])
		doc = []byte("{}")
		if in, err := mapping.ParseInput([]byte(tok)); err == nil && in.FromJWT {
			doc = in.Document
			fmt.Fprintf(stdout, "token %s: a JWT, its claims decoded WITHOUT verifying the signature (UNVERIFIED)\n", providers.Fingerprint(sum))
		} else {
			fmt.Fprintf(stdout, "token %s: opaque; only {{token_sha256}} is defined\n", providers.Fingerprint(sum))
		}
	}
	target.Probe.Document = doc

	fmt.Fprintf(stdout, "directory %s (filter from %s)\n", *dir, target.Source)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	entry, err := target.Probe.Run(ctx, func(s ldap.ProbeStep) {
		fmt.Fprintf(stdout, "  %-12s %s\n", s.Label+":", s.Value)
	})
	if err != nil {
		fmt.Fprintf(stdout, "FAILED at %v\n", err)
		return exitRuntime
	}
	fmt.Fprintf(stdout, "entry document:\n%s\n", indent(entry))

	// The mapping, on the document the provider would produce.
	mdoc := entry
	if target.Into != "" {
		if mdoc, err = ldap.Merge(doc, target.Into, entry); err != nil {
			fmt.Fprintf(stdout, "cannot merge the entry into the claims: %v\n", err)
			return exitRuntime
		}
	}
	m, where := &cfg.Mapping, "mapping"
	if target.Provider != nil && target.Provider.Mapping != nil {
		m, where = target.Provider.Mapping, target.Provider.Path+".mapping"
	}
	rules, cerrs := app.CompileMapping(cfg.File, where, m)
	if len(cerrs) > 0 {
		fmt.Fprintln(stderr, cerrs.Error())
		return exitUsage
	}
	email, trace, err := rules.Trace(mdoc)
	fmt.Fprintf(stdout, "mapping (%s) on the document the provider would produce:\n%s", where, trace.String())
	if err != nil {
		fmt.Fprintf(stdout, "result: no email (%v)\n", err)
		return exitRuntime
	}
	fmt.Fprintf(stdout, "email: %s\n", email)
	return exitOK
}

func indent(doc []byte) string {
	var b bytes.Buffer
	if json.Indent(&b, doc, "", "  ") != nil {
		return string(doc)
	}
	return b.String()
}
