// Package configs loads idbridge's configuration file: strict YAML decoding, ${env:} and
// ${file:} references, defaults, and validation that reports every error at once as
// FILE:LINE: key.path: message. Each provider's own section stays a yaml.Node, decoded by
// the provider's package with DecodeStrict. Example files live in configs/examples/.
package configs

import "fmt"

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
