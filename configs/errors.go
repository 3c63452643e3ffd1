package configs

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one configuration error, printed as FILE:LINE: key.path: message.
type Error struct {
	File string
	Line int    // 0 when the error is about the file as a whole (it cannot be read)
	Path string // key path, e.g. providers[0].audiences
	Msg  string
	// Warning marks advice that does not make the file invalid.
	Warning bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
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

// Fatal returns the errors that make the configuration invalid (every non-warning).
func (es Errors) Fatal() Errors {
	var out Errors
	for _, e := range es {
		if !e.Warning {
			out = append(out, e)
		}
	}
	return out
}

// Warnings returns the advice that does not make the configuration invalid.
func (es Errors) Warnings() Errors {
	var out Errors
	for _, e := range es {
		if e.Warning {
			out = append(out, e)
		}
	}
	return out
}

// Err returns the fatal errors as an error, or nil when there are none. It spares
// callers the trap of a nil Errors stored in a non-nil error interface.
func (es Errors) Err() error {
	if f := es.Fatal(); len(f) > 0 {
		return f
	}
	return nil
}

// sortErrors puts errors in file order, keeping the order of errors on the same line.
func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if c := cmp.Compare(a.File, b.File); c != 0 {
			return c
		}
		return cmp.Compare(a.Line, b.Line)
	})
}

// Excused reports an error that only follows from a key LoadOffline could not resolve
// here, which a check away from the real environment must not count against the file:
// any error at or below a key whose reference is absent (its value is a stand-in), and
// an error at a file key that names the absent file.
func (c *Config) Excused(e *Error) bool {
	if e.Warning {
		return false
	}
	for p, file := range c.absent {
		if file == "" && below(e.Path, p) {
			return true
		}
		if file != "" && e.Path == p && (strings.Contains(e.Msg, file) || strings.Contains(e.Msg, "no such file")) {
			return true
		}
	}
	return false
}
