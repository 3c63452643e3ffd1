package ldap

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/idbridge/idbridge/mapping"
	"github.com/idbridge/idbridge/providers"
)

// Errors of a search that reached the directory. Callers wrap them with the verdict they
// mean (providers.ErrInvalidToken for a token, providers.ErrAccessDenied for a lookup).
var (
	ErrNotFound  = errors.New("no directory entry matches")
	ErrAmbiguous = errors.New("more than one directory entry matches")
)

// filter is a compiled search filter template: {{path}} placeholders into a JSON
// document, each substituted value escaped per RFC 4515.
type filter struct {
	text string
	tmpl *mapping.Template
}

// compileFilter compiles a filter template and checks that it is a valid RFC 4515 filter
// once its placeholders are filled, and that every placeholder stands in an assertion
// value (after "="), where escaping makes any value literal. A placeholder in an
// attribute's name could not be made safe by escaping.
func compileFilter(s string) (*filter, error) {
	tmpl, err := mapping.CompileTemplate(s)
	if err != nil {
		return nil, err
	}
	var dummy strings.Builder
	inValue := false
	for rest := s; rest != ""; {
		if strings.HasPrefix(rest, "{{") {
			end := strings.Index(rest, "}}") // CompileTemplate checked the braces balance
			if !inValue {
				return nil, fmt.Errorf("placeholder %s must stand in an assertion value, after \"=\"", rest[:end+2])
			}
			dummy.WriteString("x")
			rest = rest[end+2:]
			continue
		}
		switch rest[0] {
		case '=':
			inValue = true
		case '(', ')':
			inValue = false
		}
		dummy.WriteByte(rest[0])
		rest = rest[1:]
	}
	if _, err := ldap.CompileFilter(dummy.String()); err != nil {
		return nil, fmt.Errorf("not a valid LDAP filter (RFC 4515): %w", err)
	}
	return &filter{text: s, tmpl: tmpl}, nil
}

// build fills the placeholders from doc, escaping each value with ldap.EscapeFilter. It
// returns false when a placeholder has no usable value in doc (see mapping.Template.Render).
func (f *filter) build(doc []byte) (string, bool) {
	return f.tmpl.Render(doc, ldap.EscapeFilter)
}

// paths are the placeholders' gjson paths.
func (f *filter) paths() []string { return f.tmpl.Paths() }

// search is one configured search on a directory: the attributes to return and how
// their names are spelled in the document.
type search struct {
	dir   *Directory
	attrs []string // nil: every user attribute
	// names maps a lower-cased attribute name to its spelling in attributes:, so that the
	// document's keys (gjson paths are case-sensitive) do not depend on how the server
	// spells them.
	names map[string]string
}

func newSearch(dir *Directory, attrs []string) *search {
	s := &search{dir: dir, names: make(map[string]string, len(attrs))}
	if len(attrs) > 0 {
		s.attrs = append([]string(nil), attrs...)
	}
	for _, a := range attrs {
		s.names[strings.ToLower(a)] = a
	}
	return s
}

// findOne runs the search with filter and returns the only entry it matches. It returns
// ErrNotFound, ErrAmbiguous (with the DNs it saw, for the log), or an error wrapping
// providers.ErrUnavailable when the directory did not answer.
func (s *search) findOne(ctx context.Context, filter string) (*ldap.Entry, []string, error) {
	d := s.dir
	req := ldap.NewSearchRequest(d.baseDN, d.scope, ldap.NeverDerefAliases, d.sizeLimit, d.timeLimit,
		false, filter, s.attrs, nil)
	var res *ldap.SearchResult
	err := d.withConn(ctx, func(c *ldap.Conn) error {
		var err error
		res, err = c.Search(req)
		return err
	})
	truncated := false
	switch {
	case err == nil:
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) && res != nil:
		// The server stopped at size_limit: more entries match than a lookup may use.
		truncated = true
	case isConnFailure(err):
		return nil, nil, err // already wraps providers.ErrUnavailable
	default:
		// The server answered with an error (a missing base_dn, a refused read, a
		// time limit): a fault of the directory or its configuration, not a verdict
		// on the user, so never a 401 or 403.
		return nil, nil, fmt.Errorf("ldap: directory %s: search: %w: %w", d.name, providers.ErrUnavailable, err)
	}
	switch n := len(res.Entries); {
	case n == 1 && !truncated:
		return res.Entries[0], nil, nil
	case n == 0 && !truncated:
		return nil, nil, ErrNotFound
	default:
		dns := make([]string, len(res.Entries))
		for i, e := range res.Entries {
			dns[i] = e.DN
		}
		return nil, dns, ErrAmbiguous
	}
}

// document renders an entry as {"dn": "…", "<attribute>": ["…", …]}: every attribute an
// array, binary values base64 (standard encoding, padded). Password attributes are left
// out; so is any value equal to hide (case-insensitively), so that the hash a token
// was found by is not carried around in the identity document.
func (s *search) document(e *ldap.Entry, hide string) []byte {
	m := make(map[string]any, len(e.Attributes)+1)
	for _, a := range e.Attributes {
		name := a.Name
		if n, ok := s.names[strings.ToLower(name)]; ok {
			name = n
		}
		if strings.EqualFold(name, "dn") || secretAttribute(name) {
			continue
		}
		binary := binaryAttribute(name)
		for _, v := range a.ByteValues {
			if !utf8.Valid(v) {
				binary = true
			}
		}
		vals := make([]string, 0, len(a.ByteValues))
		for _, v := range a.ByteValues {
			if hide != "" && strings.EqualFold(string(v), hide) {
				continue
			}
			if binary {
				vals = append(vals, base64.StdEncoding.EncodeToString(v))
			} else {
				vals = append(vals, string(v))
			}
		}
		if len(vals) > 0 {
			m[name] = vals
		}
	}
	m["dn"] = e.DN
	return marshal(m)
}

// marshal encodes v without HTML escaping (an identity document is data, not markup).
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Maps of strings and raw JSON always encode.
		panic("ldap: encoding an identity document: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// binaryAttribute names the attributes whose values are bytes, whatever they look like:
// a GUID may happen to be valid UTF-8, and it must not change shape when it does.
func binaryAttribute(name string) bool {
	base, opts, _ := strings.Cut(strings.ToLower(name), ";")
	if strings.Contains(";"+opts+";", ";binary;") {
		return true // RFC 4522 transfer option
	}
	switch base {
	case "objectguid", "objectsid", "sidhistory", "jpegphoto", "thumbnailphoto", "photo", "audio",
		"usercertificate", "cacertificate", "usersmimecertificate", "userpkcs12",
		"msexchmailboxguid", "ms-ds-consistencyguid", "mssfu30objectguid":
		return true
	}
	return false
}

// secretAttribute names attributes never placed into a document, even when a directory
// lets the service account read them and attributes: is left empty (every attribute).
func secretAttribute(name string) bool {
	base, _, _ := strings.Cut(strings.ToLower(name), ";")
	switch base {
	case "userpassword", "unicodepwd", "ntpwdhistory", "lmpwdhistory", "dbcspwd", "supplementalcredentials":
		return true
	}
	return false
}
