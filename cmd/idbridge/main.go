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
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/idbridge/idbridge/web"
)

// version, when set at build time with -ldflags "-X main.version=…", replaces the
// module version the build info gives.
var version = ""

const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// errUsage marks errors that exit 2.
var errUsage = errors.New("usage")

type command struct {
	name  string
	sub   string // the one subcommand ("test", "generate"), or ""
	usage string // after "idbridge NAME": the arguments
	desc  string // one line
	run   func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "", "--config FILE", "run the bridge (IDBRIDGE_CONFIG may give FILE); SIGHUP reloads, SIGTERM stops", cmdServe},
		{"demo", "", "[flags]", "a demo issuer, the bridge and the Spotnana sandbox on loopback; one full exchange, step by step", cmdDemo},
		{"init", "", "--idp KIND [--issuer URL] [--audience AUD] [--out FILE]", "write a starter config for okta, entra, adfs, google, auth0, keycloak, oidc, ldap or ad", cmdInit},
		{"check", "", "--config FILE [--strict]", "validate a config without its secrets; print every error, exit 2 on any", cmdCheck},
		{"map", "", "[--config FILE] [--provider NAME] --input FILE|- [--suggest]", "dry-run the mapping on a JSON document or a JWT (decoded unverified)", cmdMap},
		{"directory", "test", "--config FILE [--directory NAME] --claims FILE|--token FILE", "bind to a directory, build the filter from sample claims, search, print the entry and the trace", cmdDirectory},
		{"resolve", "", "--config FILE --token FILE|-", "run the whole chain for one token: provider, identity document, trace, email", cmdResolve},
		{"exchange", "", "--config FILE --subject-token FILE|-", "validate a token locally, perform one token exchange, print Spotnana's JSON", cmdExchange},
		{"keys", "generate", "--dir DIR", "create a new RS256 signing key for assertion mode", cmdKeys},
		{"sandbox", "", "[flags]", "a local Spotnana token endpoint (" + "/v2/auth/oauth2-token" + ") for development", cmdSandbox},
		{"version", "", "[--embed-sri]", "print the version and VCS revision, or the embed script's integrity hash", cmdVersion},
	}
}

func main() {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		usage(stdout)
		return exitOK
	case "-version", "--version":
		return cmdVersion(args[1:], stdout, stderr)
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		if wantsHelp(args[1:]) {
			return help(c, stdout)
		}
		return c.run(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "idbridge: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "idbridge: a bridge between a company's identity systems and Spotnana")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "usage: idbridge COMMAND [flags]     (idbridge COMMAND --help for its flags)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		name := c.name
		if c.sub != "" {
			name += " " + c.sub
		}
		fmt.Fprintf(w, "  %-16s %s\n", name, c.desc)
	}
}

// wantsHelp reports -h or --help among the flags (before a "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// help prints a command's description, usage and every flag to w: the command runs
// with -h and w as its output, so that its own flag set is the one documented.
func help(c command, w io.Writer) int {
	name := c.name
	if c.sub != "" {
		name += " " + c.sub
	}
	fmt.Fprintf(w, "idbridge %s: %s\n\nusage: idbridge %s %s\n\n", name, c.desc, name, c.usage)
	args := []string{"-h"}
	if c.sub != "" {
		args = []string{c.sub, "-h"}
	}
	c.run(args, io.Discard, w)
	return exitOK
}

// newFlags returns a FlagSet that reports to stderr and never exits the process. On
// -h it lists every flag (help prints the rest).
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("idbridge "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n == 0 {
			fmt.Fprintln(fs.Output(), "flags: none")
			return
		}
		fmt.Fprintln(fs.Output(), "flags:")
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses args into fs. A bad flag or a stray argument is a usage error (the
// caller exits 2); a stray argument that looks like a config file gets a hint, since
// every command takes the file as --config FILE.
func parseArgs(fs *flag.FlagSet, args []string) bool {
	if fs.Parse(args) != nil {
		return false // flag printed the error and the flags
	}
	if fs.NArg() == 0 {
		return true
	}
	arg := fs.Arg(0)
	fmt.Fprintf(fs.Output(), "%s: unexpected argument %q", fs.Name(), arg)
	if ext := filepath.Ext(arg); fs.Lookup("config") != nil && (ext == ".yaml" || ext == ".yml") {
		fmt.Fprintf(fs.Output(), ": the config file is given as --config %s", arg)
	}
	fmt.Fprintln(fs.Output())
	return false
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", stderr)
	sri := fs.Bool("embed-sri", false, "print only the embed script's Subresource Integrity hash (for integrity=\"…\")")
	if !parseArgs(fs, args) {
		return exitUsage
	}
	if *sri {
		fmt.Fprintln(stdout, web.SRI())
		return exitOK
	}
	fmt.Fprintf(stdout, "idbridge %s\n", versionString())
	return exitOK
}

// shortVersion is the version alone, for the serving log line and the build_info
// metric: the -ldflags version, else the module version, with the VCS revision's first
// 12 digits when the build recorded one.
func shortVersion() string {
	v := strings.Fields(versionString())[0]
	if bi, ok := debug.ReadBuildInfo(); ok && version == "" && !strings.Contains(v, "-") {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += "+" + s.Value[:12]
			}
		}
	}
	return v
}

// versionString is the module version and the VCS state the build info records
// (go build in a git checkout stamps vcs.revision, vcs.time and vcs.modified).
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (no build info)"
	}
	v := version
	if v == "" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "(devel)"
	}
	var rev, at, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	var b strings.Builder
	b.WriteString(v)
	if rev != "" {
		fmt.Fprintf(&b, " (revision %s", rev)
		if at != "" {
			b.WriteString(", " + at)
		}
		b.WriteString(modified + ")")
	}
	b.WriteString(" " + bi.GoVersion)
	return b.String()
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
