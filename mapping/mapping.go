// Package mapping finds a user's email in an identity document.
//
// Every provider yields one JSON document (verified JWT claims, an introspection or
// userinfo response, a directory entry, possibly merged with a lookup). The `mapping:`
// section names, in order, the candidate places where the email may be found: gjson paths
// or {{path}} templates, each optionally gated by a condition and followed by transforms.
// The first candidate that yields a bare RFC 5322 address wins; its domain is rewritten
// and checked against the allowlist. Nothing else is ever used: there is no silent fall
// back to `sub` or to any claim the rules do not name.
//
// Rules are compiled once, when the configuration is loaded, so that a bad regex or an
// unbalanced template is refused before the server listens and so that no request pays for
// parsing them. Evaluation runs on every request, also on cached documents, and is built
// to allocate as little as possible; Trace evaluates the same way and explains each step,
// for `idbridge map`.
package mapping

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// ErrNoEmail means that no candidate yielded a valid email. The server answers 403.
var ErrNoEmail = errors.New("no candidate yielded a valid email")

// ErrDomainNotAllowed means that the winning candidate yielded a valid email whose domain
// is not in allowed_domains. The server answers 403.
var ErrDomainNotAllowed = errors.New("email domain not allowed")

// Spec is the `mapping:` section as configured.
type Spec struct {
	// Candidates are tried in order; the first that yields a valid email wins.
	Candidates []Candidate
	// AllowedDomains admits only these email domains (exact, case-insensitive);
	// "*.example.com" admits every subdomain of example.com but not example.com itself.
	// Empty: any domain.
	AllowedDomains []string
	// RewriteDomains replaces an email's domain (the key, case-insensitive) with the
	// value, before the allowlist is checked; e.g. {example.local: example.com}.
	RewriteDomains map[string]string
	// AllowUnicode admits internationalised addresses (RFC 6531's SMTPUTF8): the email
	// is then put in Unicode NFC, and format, bidi, invisible, space and compatibility
	// characters are still refused. False (the default): printable ASCII only (RFC 5321
	// without SMTPUTF8), which keeps every look-alike of an ASCII address out.
	AllowUnicode bool
}

// Candidate is one place where the email may be found.
type Candidate struct {
	Path       string // a gjson path; exactly one of Path and Template
	Template   string // e.g. "{{preferred_username}}@example.com"
	When       *When  // optional condition; nil: always tried
	Transforms []Transform
}

// When gates a candidate on one condition: exactly one of Equals, Matches, Exists. When
// Path holds an array (every LDAP attribute is one, and so are groups and roles claims),
// Equals and Matches hold when any element does, and Exists holds for a non-empty array.
type When struct {
	Path string // required; a gjson path
	// Equals is compared type-strictly with the value at Path: a string only with a JSON
	// string, a bool only with a JSON boolean (true does not match "true"), a number
	// (int or float, as YAML decodes it) only with a JSON number, nil only with null.
	Equals    any
	HasEquals bool   // Equals was given, so that `equals: null` is expressible
	Matches   string // a regex (unanchored, as in Go) that a JSON string value must match
	Exists    *bool  // the path exists (a null counts as existing) or not
}

// Transform is one step applied to a candidate's value: trim (ASCII blanks at both
// ends), lower (ASCII letters only), trim_prefix (Arg), trim_suffix (Arg), or replace
// (Arg is the regex, With the replacement, expanded as by regexp.ReplaceAllString, so
// "$1" names a group). trim and lower never touch a non-ASCII character: Unicode case
// folding and space trimming map look-alikes (U+212A KELVIN SIGN, U+00A0) onto another
// user's ASCII address.
type Transform struct{ Name, Arg, With string }

// CompileError is one refused rule. Index is the candidate's position in Candidates, or
// -1 for the section's own keys (allowed_domains, rewrite_domains, email itself).
type CompileError struct {
	Index int
	Field string // e.g. "template", "when.matches", "transforms[1].regex", "allowed_domains[0]"; "" for the candidate itself
	Msg   string
}

func (e *CompileError) Error() string {
	switch {
	case e.Index < 0:
		return e.Field + ": " + e.Msg
	case e.Field == "":
		return "email[" + strconv.Itoa(e.Index) + "]: " + e.Msg
	default:
		return "email[" + strconv.Itoa(e.Index) + "]." + e.Field + ": " + e.Msg
	}
}

// Rules are compiled mapping rules. They are immutable and safe for concurrent use.
type Rules struct {
	cands    []candidate
	allowed  []string // lower-case; a leading "." marks a wildcard suffix
	rewrites []rewrite
	unicode  bool // Spec.AllowUnicode
}

type rewrite struct{ from, to string }

type candidate struct {
	path       string
	tmpl       *Template
	tmplText   string
	when       *when
	transforms []transform
}

type whenKind uint8

const (
	whenEquals whenKind = iota
	whenMatches
	whenExists
)

type when struct {
	path string
	kind whenKind
	// equals: exactly one of these is meant, by eqType.
	eqType gjson.Type // String, Number, True, False or Null
	eqStr  string
	eqNum  float64
	eqInt  int64
	isInt  bool
	re     *regexp.Regexp
	exists bool
	text   string // the condition as configured, for the trace
}

type transformKind uint8

const (
	tTrim transformKind = iota
	tLower
	tTrimPrefix
	tTrimSuffix
	tReplace
)

type transform struct {
	kind transformKind
	arg  string
	with string
	re   *regexp.Regexp
}

// Compile checks every rule and returns every error at once, so that `idbridge check`
// can print them all; Rules is nil when there is any error.
func Compile(s Spec) (*Rules, []*CompileError) {
	var errs []*CompileError
	fail := func(i int, field, format string, args ...any) {
		errs = append(errs, &CompileError{Index: i, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	r := &Rules{unicode: s.AllowUnicode}
	if len(s.Candidates) == 0 {
		fail(-1, "email", "at least one candidate is needed")
	}
	for i, c := range s.Candidates {
		cc := candidate{path: c.Path, tmplText: c.Template}
		switch {
		case c.Path != "" && c.Template != "":
			fail(i, "", "give either path or template, not both")
		case c.Path == "" && c.Template == "":
			fail(i, "", "a path or a template is needed")
		case c.Path != "" && strings.TrimSpace(c.Path) == "":
			fail(i, "path", "empty path")
		case c.Path != "":
			if err := CheckPath(c.Path); err != nil {
				fail(i, "path", "%v", err)
			}
		case c.Template != "":
			t, err := CompileTemplate(c.Template)
			if err != nil {
				fail(i, "template", "%v", err)
			}
			cc.tmpl = t
		}
		if c.When != nil {
			w, field, msg := compileWhen(c.When)
			if msg != "" {
				fail(i, field, "%s", msg)
			}
			cc.when = w
		}
		for j, t := range c.Transforms {
			ct, field, msg := compileTransform(t)
			if msg != "" {
				fail(i, "transforms["+strconv.Itoa(j)+"]"+field, "%s", msg)
			}
			cc.transforms = append(cc.transforms, ct)
		}
		r.cands = append(r.cands, cc)
	}
	for i, d := range s.AllowedDomains {
		base, wild := strings.CutPrefix(d, "*.")
		if !validDomain(base) {
			fail(-1, "allowed_domains["+strconv.Itoa(i)+"]", "%q is not a domain or *.domain", d)
			continue
		}
		base = asciiLower(base)
		if wild {
			base = "." + base
		}
		r.allowed = append(r.allowed, base)
	}
	// Sorted, so that the same config always gives the same errors in the same order.
	for _, from := range slices.Sorted(maps.Keys(s.RewriteDomains)) {
		to := s.RewriteDomains[from]
		field := "rewrite_domains[" + from + "]"
		if !validDomain(from) {
			fail(-1, field, "%q is not a domain", from)
		}
		if !validDomain(to) {
			fail(-1, field, "%q is not a domain", to)
		}
		for _, rw := range r.rewrites {
			if asciiEqualFold(rw.from, from) {
				fail(-1, field, "%q is given twice (keys are case-insensitive)", from)
			}
		}
		r.rewrites = append(r.rewrites, rewrite{from: from, to: to})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return r, nil
}

func compileWhen(w *When) (cw *when, field, msg string) {
	hasEquals := w.HasEquals || w.Equals != nil
	n := 0
	for _, given := range []bool{hasEquals, w.Matches != "", w.Exists != nil} {
		if given {
			n++
		}
	}
	cw = &when{path: w.Path}
	if strings.TrimSpace(w.Path) == "" {
		return cw, "when.path", "empty path"
	}
	if err := CheckPath(w.Path); err != nil {
		return cw, "when.path", err.Error()
	}
	if n != 1 {
		return cw, "when", "exactly one of equals, matches, exists is needed"
	}
	switch {
	case hasEquals:
		cw.kind = whenEquals
		switch v := w.Equals.(type) {
		case nil:
			cw.eqType = gjson.Null
		case string:
			cw.eqType, cw.eqStr = gjson.String, v
		case bool:
			cw.eqType = gjson.False
			if v {
				cw.eqType = gjson.True
			}
		case int:
			cw.setInt(int64(v))
		case int8:
			cw.setInt(int64(v))
		case int16:
			cw.setInt(int64(v))
		case int32:
			cw.setInt(int64(v))
		case int64:
			cw.setInt(v)
		case uint:
			cw.setUint(uint64(v))
		case uint8:
			cw.setUint(uint64(v))
		case uint16:
			cw.setUint(uint64(v))
		case uint32:
			cw.setUint(uint64(v))
		case uint64:
			cw.setUint(v)
		case float32:
			cw.eqType, cw.eqNum = gjson.Number, float64(v)
		case float64:
			cw.eqType, cw.eqNum = gjson.Number, v
		default:
			return cw, "when.equals", fmt.Sprintf("a %T cannot be compared: give a string, number, bool or null", v)
		}
		cw.text = fmt.Sprintf("%s equals %s", w.Path, jsonish(w.Equals))
	case w.Matches != "":
		re, err := regexp.Compile(w.Matches)
		if err != nil {
			return cw, "when.matches", err.Error()
		}
		cw.kind, cw.re = whenMatches, re
		cw.text = fmt.Sprintf("%s matches /%s/", w.Path, w.Matches)
	default:
		cw.kind, cw.exists = whenExists, *w.Exists
		cw.text = fmt.Sprintf("%s exists: %t", w.Path, cw.exists)
	}
	return cw, "", ""
}

func (w *when) setInt(v int64) {
	w.eqType, w.eqInt, w.isInt, w.eqNum = gjson.Number, v, true, float64(v)
}

func (w *when) setUint(v uint64) {
	if v > 1<<63-1 {
		w.eqType, w.eqNum = gjson.Number, float64(v)
		return
	}
	w.setInt(int64(v))
}

// jsonish prints a YAML-decoded value the way it would look in JSON, so that the trace
// shows equals "true" and equals true differently.
func jsonish(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(v)
	default:
		return fmt.Sprint(v)
	}
}

// eval tests the condition on doc. On an array (every LDAP attribute is one), equals and
// matches hold when any element does, and exists holds for a non-empty array. It returns
// what it found and, for an array, the index of the element that matched (-1 otherwise).
func (w *when) eval(doc string) (ok bool, found gjson.Result, elem int) {
	r := gjson.Get(doc, w.path)
	if w.kind == whenExists {
		present := r.Exists() && !(r.IsArray() && isEmptyArray(r))
		return present == w.exists, r, -1
	}
	if !r.IsArray() {
		return w.test(r), r, -1
	}
	elem, i := -1, 0
	r.ForEach(func(_, e gjson.Result) bool {
		if w.test(e) {
			elem = i
			return false
		}
		i++
		return true
	})
	return elem >= 0, r, elem
}

func isEmptyArray(r gjson.Result) bool {
	empty := true
	r.ForEach(func(_, _ gjson.Result) bool {
		empty = false
		return false
	})
	return empty
}

// test compares one scalar value with the condition.
func (w *when) test(r gjson.Result) bool {
	if w.kind == whenMatches {
		return r.Type == gjson.String && w.re.MatchString(r.Str)
	}
	switch w.eqType {
	case gjson.Null:
		// A missing path is not null: equals null asks for an explicit null.
		return r.Type == gjson.Null && r.Exists()
	case gjson.String:
		return r.Type == gjson.String && r.Str == w.eqStr
	case gjson.True, gjson.False:
		return r.Type == w.eqType
	default:
		if r.Type != gjson.Number {
			return false
		}
		if w.isInt {
			// Compare integers exactly when the JSON text is an integer, so that large
			// IDs beyond float64's 53 bits do not compare equal by rounding.
			if n, err := strconv.ParseInt(r.Raw, 10, 64); err == nil {
				return n == w.eqInt
			}
		}
		return r.Num == w.eqNum
	}
}

func compileTransform(t Transform) (ct transform, field, msg string) {
	switch t.Name {
	case "trim", "lower":
		ct.kind = tTrim
		if t.Name == "lower" {
			ct.kind = tLower
		}
		if t.Arg != "" || t.With != "" {
			return ct, "", t.Name + " takes no argument"
		}
	case "trim_prefix", "trim_suffix":
		ct.kind, ct.arg = tTrimPrefix, t.Arg
		if t.Name == "trim_suffix" {
			ct.kind = tTrimSuffix
		}
		if t.Arg == "" {
			return ct, ".arg", t.Name + " needs a non-empty argument"
		}
		if t.With != "" {
			return ct, ".with", t.Name + " takes no with"
		}
	case "replace":
		ct.kind, ct.arg, ct.with = tReplace, t.Arg, t.With
		if t.Arg == "" {
			// An empty regex matches between every two characters: never what is meant.
			return ct, ".regex", "empty regex"
		}
		re, err := regexp.Compile(t.Arg)
		if err != nil {
			return ct, ".regex", err.Error()
		}
		ct.re = re
	default:
		return ct, "", fmt.Sprintf("unknown transform %q (trim, lower, trim_prefix, trim_suffix, replace)", t.Name)
	}
	return ct, "", ""
}

func (t *transform) apply(s string) string {
	switch t.kind {
	case tTrim:
		return strings.Trim(s, asciiSpace)
	case tLower:
		return asciiLower(s)
	case tTrimPrefix:
		return strings.TrimPrefix(s, t.arg)
	case tTrimSuffix:
		return strings.TrimSuffix(s, t.arg)
	default:
		return t.re.ReplaceAllString(s, t.with)
	}
}

func (t *transform) String() string {
	switch t.kind {
	case tTrim:
		return "trim"
	case tLower:
		return "lower"
	case tTrimPrefix:
		return "trim_prefix(" + strconv.Quote(t.arg) + ")"
	case tTrimSuffix:
		return "trim_suffix(" + strconv.Quote(t.arg) + ")"
	default:
		return "replace(/" + t.arg + "/ with " + strconv.Quote(t.with) + ")"
	}
}
