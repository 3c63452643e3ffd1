package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/idbridge/idbridge/scaffold"
)

func cmdInit(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("init", stderr)
	kind := fs.String("idp", "", "the identity system: "+strings.Join(scaffold.Names(), ", "))
	issuer := fs.String("issuer", "", "the issuer `URL`; its discovery document is read when reachable (default: a placeholder)")
	audience := fs.String("audience", "", "the aud the IdP puts in its tokens (default: the kind's usual one)")
	out := fs.String("out", "idbridge.yaml", "write to `FILE`; - for standard output")
	force := fs.Bool("force", false, "overwrite FILE if it exists")
	if !parseArgs(fs, args) {
		return exitUsage
	}
	if *kind == "" {
		fmt.Fprintf(stderr, "idbridge init: --idp KIND is required (%s)\n", strings.Join(scaffold.Names(), ", "))
		return exitUsage
	}
	o := scaffold.Options{Issuer: *issuer, Audience: *audience}
	if *issuer != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment}}
		d, err := scaffold.Discover(ctx, client, *issuer)
		cancel()
		if err != nil {
			o.DiscoveryError = strings.ReplaceAll(err.Error(), "\n", " ")
			fmt.Fprintf(stderr, "idbridge init: the discovery document could not be read (%v): writing the offline template\n", err)
		} else {
			o.Discovery = d
		}
	}
	text, err := scaffold.Render(*kind, o)
	if err != nil {
		fmt.Fprintf(stderr, "idbridge init: %v\n", err)
		return exitUsage
	}
	if *out == "-" {
		_, _ = stdout.Write(text)
		return exitOK
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(*out, flags, 0o600)
	if err != nil {
		if os.IsExist(err) {
			fmt.Fprintf(stderr, "idbridge init: %s exists: choose another --out, or --force\n", *out)
			return exitUsage
		}
		fmt.Fprintf(stderr, "idbridge init: %v\n", err)
		return exitRuntime
	}
	if _, err := f.Write(text); err != nil {
		f.Close()
		fmt.Fprintf(stderr, "idbridge init: %v\n", err)
		return exitRuntime
	}
	if err := f.Close(); err != nil {
		fmt.Fprintf(stderr, "idbridge init: %v\n", err)
		return exitRuntime
	}
	fmt.Fprintf(stdout, "wrote %s\nnext: idbridge check --config %s\n", *out, *out)
	return exitOK
}
