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
		return exitUsage
	}
	fs := newFlags("keys generate", stderr)
	dir := fs.String("dir", "", "`DIR` to write the key into (spotnana.assertion.keys_dir); created 0700 if missing")
	if !parseArgs(fs, args[1:]) {
		return exitUsage
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "idbridge keys generate: --dir DIR is required")
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
