package main

import (
	"fmt"
	"io"
	"time"

	"github.com/idbridge/idbridge/spotnana"
)

// cmdKeys groups the key-management subcommands of assertion mode. Only "generate"
// exists: rotation is adding a key (it takes over after publish_ahead) and later
// deleting the old file, so no other command is needed.
func cmdKeys(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "generate" {
		fmt.Fprintln(stderr, "usage: idbridge keys generate --dir DIR")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return exitOK
		}
		return exitUsage
	}
	fs := newFlags("keys generate", stderr)
	dir := fs.String("dir", "", "`DIR` to write the key into (spotnana.assertion.keys_dir); created 0700 if missing")
	if err := fs.Parse(args[1:]); err != nil {
		return helpOrUsage(err)
	}
	if *dir == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "idbridge keys generate: --dir DIR is required, and nothing else")
		return exitUsage
	}
	kid, path, err := spotnana.GenerateKey(*dir, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "idbridge keys generate: %v\n", err)
		return exitRuntime
	}
	fmt.Fprintf(stdout, "kid: %s\npath: %s\n", kid, path)
	fmt.Fprintln(stdout, "The key is published in the JWKS at once and signs once publish_ahead has passed.")
	return exitOK
}
