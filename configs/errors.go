package configs

import (
	"fmt"
	"strings"
)

// Error is one configuration error, printed as FILE:LINE: key.path: message.
type Error struct {
	File string
	Line int
	Path string // key path, e.g. providers[0].audiences
	Msg  string
	// Warning marks advice that does not make the file invalid.
	Warning bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	fmt.Fprintf(&b, ":%d: ", e.Line)
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	if e.Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every error found, in file order. It is an error itself when non-empty.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}
