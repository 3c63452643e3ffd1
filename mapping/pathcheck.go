package mapping

import (
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
)

// PathError is a malformed gjson path: gjson itself never refuses a path, it just finds
// nothing, so a typo would silently map no one. Pos is the 1-based character where the
// fault is.
type PathError struct {
	Pos int
	Msg string
}

func (e *PathError) Error() string { return fmt.Sprintf("%s at character %d", e.Msg, e.Pos) }

// modifiers are gjson's built-in modifiers (https://github.com/tidwall/gjson/blob/master/
// SYNTAX.md#modifiers); idbridge registers none of its own.
var modifiers = []string{"pretty", "ugly", "reverse", "this", "flatten", "join", "valid",
	"keys", "values", "tostr", "fromstr", "group", "dig"}

// CheckPath validates a gjson path's syntax (gjson's SYNTAX.md): balanced (), [] and {},
// terminated strings in queries, no empty component (a.b. or a..b), known @modifiers, and
// no JSONPath-style "$." start. It returns nil or a *PathError.
func CheckPath(p string) error {
	if strings.TrimSpace(p) == "" {
		return &PathError{Pos: 1, Msg: "empty path"}
	}
	if p[0] == '$' {
		return &PathError{Pos: 1, Msg: fmt.Sprintf("gjson paths do not start with \"$\" (that is JSONPath): write %q", strings.TrimPrefix(strings.TrimPrefix(p, "$"), "."))}
	}
	type open struct {
		c   byte
		pos int
	}
	var stack []open
	compStart := true // at the start of a path component
	for i := 0; i < len(p); i++ {
		c := p[i]
		inQuery := false
		for _, o := range stack {
			if o.c == '(' {
				inQuery = true
			}
		}
		if compStart && !inQuery {
			compStart = false
			switch c {
			case '.', '|':
				return &PathError{Pos: i + 1, Msg: fmt.Sprintf("empty path component before %q", c)}
			case '@':
				j := i + 1
				for j < len(p) && (isAlnum(p[j]) || p[j] == '_') {
					j++
				}
				name := p[i+1 : j]
				if !gjson.ModifierExists(name, nil) {
					return &PathError{Pos: i + 1, Msg: fmt.Sprintf("unknown modifier %q (known: @%s)", "@"+name, strings.Join(modifiers, ", @"))}
				}
				i = j - 1
				continue
			}
		}
		switch c {
		case '\\':
			if i+1 == len(p) {
				return &PathError{Pos: i + 1, Msg: "a backslash at the end escapes nothing"}
			}
			i++
		case '"':
			j := i + 1
			for j < len(p) && p[j] != '"' {
				if p[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(p) {
				return &PathError{Pos: i + 1, Msg: "unterminated string"}
			}
			i = j
		case '(', '[', '{':
			stack = append(stack, open{c, i + 1})
			if c != '(' {
				compStart = true
			}
		case ')', ']', '}':
			want := map[byte]byte{')': '(', ']': '[', '}': '{'}[c]
			if len(stack) == 0 || stack[len(stack)-1].c != want {
				return &PathError{Pos: i + 1, Msg: fmt.Sprintf("unbalanced %q", c)}
			}
			stack = stack[:len(stack)-1]
		case '.', '|', ',':
			if inQuery {
				continue
			}
			if c == ',' && len(stack) == 0 {
				continue
			}
			if i+1 == len(p) {
				return &PathError{Pos: i + 1, Msg: fmt.Sprintf("empty path component after %q", c)}
			}
			compStart = true
		}
	}
	if len(stack) > 0 {
		o := stack[len(stack)-1]
		closer := map[byte]byte{'(': ')', '[': ']', '{': '}'}[o.c]
		return &PathError{Pos: o.pos, Msg: fmt.Sprintf("unbalanced %q: no %q closes it", o.c, closer)}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// ClaimURIHint returns the path with the dots of a claim URI escaped, when p looks like
// an AD FS or SAML-style claim URI (http://schemas.xmlsoap.org/…/upn) written with bare
// dots, which gjson reads as nested keys; "" otherwise.
func ClaimURIHint(p string) string {
	i := strings.Index(p, "://")
	if i < 0 {
		return ""
	}
	start := i
	for start > 0 && isAlnum(p[start-1]) {
		start--
	}
	var b strings.Builder
	b.WriteString(p[:start])
	changed := false
	for j := start; j < len(p); j++ {
		switch p[j] {
		case '\\':
			b.WriteByte(p[j])
			if j+1 < len(p) {
				j++
				b.WriteByte(p[j])
			}
			continue
		case '.':
			b.WriteString(`\.`)
			changed = true
			continue
		}
		b.WriteByte(p[j])
	}
	if !changed {
		return ""
	}
	return b.String()
}
