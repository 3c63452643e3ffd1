package mapping

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
)

// Template is a compiled string with {{path}} placeholders, each a gjson path into the
// identity document. Email candidates use it as is; the LDAP filter builder passes an
// escape function so that every substituted value is RFC 4515-escaped while the literal
// parts of the filter are left alone.
type Template struct {
	// parts alternates literal text and placeholders; a literal part may be empty.
	parts []tmplPart
	paths []string
	size  int // total length of the literal parts, to size the output once
}

type tmplPart struct {
	lit  string
	path string // non-empty for a placeholder
}

// CompileTemplate parses s. It refuses a template whose braces do not balance ("{{"
// without "}}", a stray "}}", a "{{" inside a placeholder), an empty placeholder, and a
// template with no placeholder at all: a constant email or filter would map every token to
// the same user, which is never what a rule means. Blanks around a placeholder's path are
// ignored ("{{ sub }}" is "{{sub}}").
func CompileTemplate(s string) (*Template, error) {
	t := &Template{}
	rest := s
	for {
		open := strings.Index(rest, "{{")
		if close := strings.Index(rest, "}}"); close >= 0 && (open < 0 || close < open) {
			return nil, errors.New(`unbalanced braces: "}}" without "{{"`)
		}
		if open < 0 {
			if rest != "" {
				t.parts = append(t.parts, tmplPart{lit: rest})
				t.size += len(rest)
			}
			break
		}
		if open > 0 {
			t.parts = append(t.parts, tmplPart{lit: rest[:open]})
			t.size += open
		}
		rest = rest[open+2:]
		close := strings.Index(rest, "}}")
		if close < 0 {
			return nil, errors.New(`unbalanced braces: "{{" without "}}"`)
		}
		inner := rest[:close]
		if strings.Contains(inner, "{{") {
			return nil, errors.New(`unbalanced braces: "{{" inside a placeholder`)
		}
		path := strings.TrimSpace(inner)
		if path == "" {
			return nil, errors.New("empty {{ }} placeholder")
		}
		if err := CheckPath(path); err != nil {
			return nil, fmt.Errorf("placeholder {{%s}}: %w", path, err)
		}
		t.parts = append(t.parts, tmplPart{path: path})
		t.paths = append(t.paths, path)
		rest = rest[close+2:]
	}
	if len(t.paths) == 0 {
		return nil, errors.New("no {{path}} placeholder")
	}
	return t, nil
}

// Paths returns the placeholders' gjson paths in order of appearance (a copy).
func (t *Template) Paths() []string {
	return append([]string(nil), t.paths...)
}

// Render substitutes every placeholder with the value at its path in doc, passed through
// escape when escape is not nil (the literal parts are never escaped). It returns false
// when a placeholder's value is absent, null, an empty string, an array or an object: a
// template never guesses which element of an array was meant (write "{{mail.0}}"), and an
// empty value would turn "(uid={{uid}})" into a different filter. Numbers and booleans are
// substituted as their JSON text. escape must not keep its argument: it may point into doc.
func (t *Template) Render(doc []byte, escape func(string) string) (string, bool) {
	return t.render(bytesView(doc), escape)
}

// render works on a string view of the document; the result never aliases it, because
// it is always built afresh.
func (t *Template) render(doc string, escape func(string) string) (string, bool) {
	var b strings.Builder
	b.Grow(t.size + 32)
	for _, p := range t.parts {
		if p.path == "" {
			b.WriteString(p.lit)
			continue
		}
		v, ok := scalar(gjson.Get(doc, p.path))
		if !ok {
			return "", false
		}
		if escape != nil {
			v = escape(v)
		}
		b.WriteString(v)
	}
	return b.String(), true
}

// scalar returns the text of a non-empty string, a number or a boolean.
func scalar(r gjson.Result) (string, bool) {
	switch r.Type {
	case gjson.String:
		return r.Str, r.Str != ""
	case gjson.Number, gjson.True, gjson.False:
		return r.String(), true
	default:
		return "", false
	}
}
