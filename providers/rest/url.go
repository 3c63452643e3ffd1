package rest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/idbridge/idbridge/mapping"
)

// place is where a placeholder stands in the URL, which decides how its value is escaped.
type place uint8

const (
	inPath        place = iota // a path segment: url.PathEscape ("/" too, so a value is one segment)
	inQuery                    // a query value: url.QueryEscape
	inQueryString              // inside "…" in the query (a SCIM filter's string): JSON-escaped, then QueryEscape
)

// urlTemplate is the step's url: literal parts as written (their characters that a URL
// may not carry percent-encoded once, at compile time) and placeholders, each a
// one-placeholder mapping.Template rendered with the escape of its place.
type urlTemplate struct {
	parts []urlPart
}

type urlPart struct {
	lit   string
	tmpl  *mapping.Template // nil for a literal part
	place place
}

// compileURL parses raw: an absolute http(s) URL whose {{gjson path}} placeholders stand
// in the path or the query (never in the scheme, the host or a fragment).
func compileURL(raw string) (*urlTemplate, error) {
	if _, err := mapping.CompileTemplate(raw); err != nil {
		return nil, err
	}
	t := &urlTemplate{}
	rest := raw
	query := false
	for rest != "" {
		open := strings.Index(rest, "{{")
		lit := rest
		if open >= 0 {
			lit = rest[:open]
		}
		if lit != "" {
			if strings.ContainsRune(lit, '#') {
				return nil, errors.New("must not have a fragment (#)")
			}
			if i := strings.IndexByte(lit, '?'); i >= 0 && !query {
				t.parts = append(t.parts, urlPart{lit: escapeLiteral(lit[:i], false) + "?" + escapeLiteral(lit[i+1:], true)})
				query = true
			} else {
				t.parts = append(t.parts, urlPart{lit: escapeLiteral(lit, query)})
			}
		}
		if open < 0 {
			break
		}
		end := strings.Index(rest[open:], "}}") + open
		tmpl, err := mapping.CompileTemplate(rest[open : end+2])
		if err != nil {
			return nil, err
		}
		p := inPath
		if query {
			p = inQuery
			if strings.HasSuffix(lit, `"`) && strings.HasPrefix(rest[end+2:], `"`) {
				p = inQueryString
			}
		}
		t.parts = append(t.parts, urlPart{tmpl: tmpl, place: p})
		rest = rest[end+2:]
	}
	// The literal prefix up to the first placeholder must already name the service.
	prefix := ""
	for _, p := range t.parts {
		if p.tmpl != nil {
			break
		}
		prefix += p.lit
	}
	u, err := url.Parse(prefix)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.Contains(u.Host, "{") {
		return nil, errors.New("must be an absolute http(s) URL whose host is written out (placeholders go in the path or the query)")
	}
	if u.User != nil {
		return nil, errors.New("must not carry credentials (put them under auth:)")
	}
	return t, nil
}

// render builds the URL for doc; false when a placeholder has no value (absent, null,
// empty, an array or an object): the user is then not found, and no call is made with an
// empty segment.
func (t *urlTemplate) render(doc []byte) (string, bool) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.tmpl == nil {
			b.WriteString(p.lit)
			continue
		}
		v, ok := p.tmpl.Render(doc, escapeFor(p.place))
		if !ok {
			return "", false
		}
		b.WriteString(v)
	}
	return b.String(), true
}

func escapeFor(p place) func(string) string {
	switch p {
	case inQuery:
		return url.QueryEscape
	case inQueryString:
		// RFC 7644 §3.4.2.2: a filter's string literal is a JSON string; a quote or a
		// backslash in the value must not end it (a filter injection).
		return func(v string) string {
			j, _ := json.Marshal(v)
			return url.QueryEscape(string(j[1 : len(j)-1]))
		}
	default:
		// RFC 3986 §3.3: a value is one segment; "." and ".." would move up the path.
		return func(v string) string {
			if v == "." || v == ".." {
				return strings.ReplaceAll(v, ".", "%2E")
			}
			return url.PathEscape(v)
		}
	}
}

// escapeLiteral percent-encodes the characters a URL may not carry as written (a space,
// a quote in a SCIM filter), leaving the delimiters the operator wrote (/ ? & = + %) alone.
func escapeLiteral(s string, query bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if allowedInURL(c, query) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// allowedInURL: RFC 3986 unreserved, sub-delims, ":" "@" "/" "%" (an escape the operator
// wrote), and "?" in the query.
func allowedInURL(c byte, query bool) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case strings.IndexByte("-._~!$&'()*+,;=:@/%", c) >= 0:
		return true
	case c == '?':
		return query
	}
	return false
}
