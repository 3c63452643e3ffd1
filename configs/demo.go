package configs

import _ "embed"

// Demo is the configuration `idbridge demo` runs: a jwt provider for the demo issuer,
// the email mapping, and a spotnana: section pointing at the local sandbox. Parse it
// with a lookup function that supplies the IDBRIDGE_DEMO_* variables it names.
//
//go:embed demo.yaml
var Demo []byte
