// Command idbridge lets a company's users reach Spotnana with the identity they already
// have: it answers Spotnana's user-detail call and performs the token exchange, after
// validating the user's token through the configured providers and mapping it to an email.
//
// Exit status: 0 success, 1 runtime failure, 2 usage or configuration error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/gin-gonic/gin"

	"github.com/idbridge/idbridge/web"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// errUsage marks errors that exit 2.
var errUsage = errors.New("usage")

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "serve --config FILE: run the bridge (IDBRIDGE_CONFIG may give FILE)", cmdServe},
		{"init", "init --idp KIND [--issuer URL] [--out FILE]: write a starter config (okta, entra, adfs, google, auth0, keycloak, oidc, ldap, ad)", cmdInit},
		{"check", "check --config FILE: validate a config; print every error, exit 2 on any", cmdCheck},
		{"map", "map --config FILE [--provider NAME] --input FILE|-: dry-run the mapping on an identity JSON", cmdMap},
		{"resolve", "resolve --config FILE --token FILE|-: run the whole chain for one token", cmdResolve},
		{"exchange", "exchange --config FILE --subject-token FILE|-: perform one token exchange, print Spotnana's JSON", cmdExchange},
		{"demo", "demo [--once]: a demo issuer, the bridge and the Spotnana sandbox on loopback; one full exchange, step by step", cmdDemo},
		{"directory", "directory test --config FILE [--directory NAME] --claims FILE|--token FILE: bind, build the filter, search, map", cmdDirectory},
		{"keys", "keys generate --dir DIR: create a new RS256 signing key for assertion mode", cmdKeys},
		{"sandbox", "sandbox [flags]: a local Spotnana token endpoint for development (see sandbox --help)", cmdSandbox},
		{"version", "version [--embed-sri]: print the version, or the embed script's integrity hash", cmdVersion},
	}
}

func main() {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "idbridge: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: idbridge COMMAND [flags]")
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %s\n", c.summary)
	}
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", stderr)
	sri := fs.Bool("embed-sri", false, "print only the embed script's Subresource Integrity hash (for integrity=\"…\")")
	if err := fs.Parse(args); err != nil {
		return helpOrUsage(err)
	}
	if *sri {
		fmt.Fprintln(stdout, web.SRI())
		return exitOK
	}
	fmt.Fprintf(stdout, "idbridge %s\n", version)
	return exitOK
}

// newFlags returns a FlagSet that reports to stderr and never exits the process.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("idbridge "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// configFlag registers --config with IDBRIDGE_CONFIG as its default.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", os.Getenv("IDBRIDGE_CONFIG"), "config `FILE` (default $IDBRIDGE_CONFIG)")
}

// readInput reads FILE, or standard input for "-".
func readInput(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(io.LimitReader(stdin, 1<<20))
	}
	return os.ReadFile(name)
}
