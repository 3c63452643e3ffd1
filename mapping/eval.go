package mapping

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// reason is why a candidate did not win: a fixed phrase, safe for errors and logs
// because it never carries a value from the document.
type reason uint8

const (
	won reason = iota
	whenFalse
	absent
	notString
	emptyValue
	noStringInArray
	placeholderMissing
	emptyAfterTransforms
	notBareAddress
	tooLongAfterRewrite
	domainNotAllowed
	notASCII
	badCharacter
)

func (r reason) String() string {
	switch r {
	case won:
		return "won"
	case whenFalse:
		return "when is false"
	case absent:
		return "absent"
	case notString:
		return "not a string"
	case emptyValue:
		return "empty"
	case noStringInArray:
		return "no non-empty string in the array"
	case placeholderMissing:
		return "a placeholder is absent, empty or not a scalar"
	case emptyAfterTransforms:
		return "empty after transforms"
	case notBareAddress:
		return "not a bare address"
	case tooLongAfterRewrite:
		return "too long after the domain rewrite"
	case domainNotAllowed:
		return "domain not allowed"
	case notASCII:
		return "not printable ASCII (mapping.allow_unicode is off)"
	case badCharacter:
		return "a control, format, bidi, invisible, space or compatibility character"
	default:
		return "reason " + strconv.Itoa(int(r))
	}
}

// Email returns the email that the rules find in doc, or an error wrapping ErrNoEmail or
// ErrDomainNotAllowed. It is the hot path: it writes no trace, and on success it
// allocates only the returned string (plus what a transform that changes the value needs).
func (r *Rules) Email(doc []byte) (string, error) {
	email, i, rs := r.eval(bytesView(doc), nil)
	switch rs {
	case won:
		return email, nil
	case domainNotAllowed:
		return "", &DomainError{Candidate: i, Email: email}
	}
	// The failure path runs again with a trace, to say why each candidate was rejected;
	// so the success path never builds that list.
	_, _, err := r.Trace(doc)
	return "", err
}

// Trace returns the same result as Email, and a trace of every candidate tried.
func (r *Rules) Trace(doc []byte) (string, *Trace, error) {
	tr := &Trace{}
	email, i, rs := r.eval(bytesView(doc), tr)
	switch rs {
	case won:
		return email, tr, nil
	case domainNotAllowed:
		return "", tr, &DomainError{Candidate: i, Email: email}
	}
	var b strings.Builder
	for _, s := range tr.Steps {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(s.Index))
		b.WriteString(": ")
		b.WriteString(s.Rejected)
	}
	return "", tr, fmt.Errorf("mapping: %w (%s)", ErrNoEmail, b.String())
}

// eval tries the candidates in order. It returns the email and the winning index, or the
// reason of the last candidate tried (domainNotAllowed with its index stops the search).
// When tr is not nil, it records every step, cloning what it keeps out of doc.
func (r *Rules) eval(doc string, tr *Trace) (string, int, reason) {
	last := absent
	for i := range r.cands {
		c := &r.cands[i]
		var st *Step
		if tr != nil {
			tr.Steps = append(tr.Steps, Step{Index: i, Path: c.path, Template: c.tmplText})
			st = &tr.Steps[len(tr.Steps)-1]
		}
		email, rs := r.try(c, doc, st)
		if st != nil {
			st.Rejected = rs.String()
			switch rs {
			case won:
				st.Rejected, st.Won = "", true
			case domainNotAllowed:
				// The trace is for the integrator (never a log line): name the domain
				// and the list it is not in.
				st.Rejected = fmt.Sprintf("domain %q not allowed (allowed_domains: %s)",
					email[strings.IndexByte(email, '@')+1:], r.allowedList())
			}
		}
		switch rs {
		case won:
			// The email may point into doc, which belongs to the caller.
			return strings.Clone(email), i, won
		case domainNotAllowed:
			// The first valid email is the user's identity. Falling through to a later
			// candidate when its domain is refused would let a user who controls an
			// earlier claim (a secondary address, a self-service profile field) choose
			// which identity they get; an identity outside the allowed domains is refused.
			// The refused address is returned for the operator's log (DomainError).
			return strings.Clone(email), i, domainNotAllowed
		}
		last = rs
	}
	return "", -1, last
}

// try evaluates one candidate; st, when not nil, records what happens.
func (r *Rules) try(c *candidate, doc string, st *Step) (string, reason) {
	if c.when != nil {
		ok, found, elem := c.when.eval(doc)
		if st != nil {
			st.When = c.when.text + ": " + strconv.FormatBool(ok) + " (found " + rawOrAbsent(found)
			if elem >= 0 {
				st.When += ", element " + strconv.Itoa(elem) + " matched"
			}
			st.When += ")"
		}
		if !ok {
			return "", whenFalse
		}
	}
	var v string
	if c.tmpl != nil {
		var ok bool
		v, ok = c.tmpl.render(doc, nil)
		if st != nil {
			st.Found = "absent"
			if ok {
				st.Found = strconv.Quote(v)
			}
		}
		if !ok {
			return "", placeholderMissing
		}
	} else {
		res := gjson.Get(doc, c.path)
		if st != nil {
			st.Found = rawOrAbsent(res)
		}
		var rs reason
		if v, rs = pick(res); rs != won {
			return "", rs
		}
	}
	for i := range c.transforms {
		t := &c.transforms[i]
		v = t.apply(v)
		if st != nil {
			st.Values = append(st.Values, StepValue{Transform: t.String(), Value: strings.Clone(v)})
		}
	}
	if v == "" {
		return "", emptyAfterTransforms
	}
	var rs reason
	if v, rs = r.characters(v); rs != won {
		return "", rs
	}
	if !bareAddress(v) {
		return "", notBareAddress
	}
	before := v
	v = r.rewrite(v)
	if st != nil {
		st.Email = strings.Clone(v)
		if len(v) != len(before) || v != before {
			st.Rewrite = before[strings.IndexByte(before, '@')+1:] + " -> " + v[strings.IndexByte(v, '@')+1:]
		}
	}
	if len(v) > maxAddress {
		return "", tooLongAfterRewrite
	}
	if !r.domainAllowed(v) {
		return v, domainNotAllowed
	}
	return v, won
}

// pick turns a path's result into the candidate's value: a non-empty string, or the first
// non-empty string of an array (so that `emails` and LDAP attributes work). A number or a
// boolean is never taken for an email.
func pick(res gjson.Result) (string, reason) {
	switch {
	case !res.Exists():
		return "", absent
	case res.Type == gjson.String:
		if res.Str == "" {
			return "", emptyValue
		}
		return res.Str, won
	case res.IsArray():
		var v string
		res.ForEach(func(_, e gjson.Result) bool {
			if e.Type == gjson.String && e.Str != "" {
				v = e.Str
				return false
			}
			return true
		})
		if v == "" {
			return "", noStringInArray
		}
		return v, won
	default:
		return "", notString
	}
}

// rewrite replaces the domain of a valid address (exactly one "@") when rewrite_domains
// names it.
func (r *Rules) rewrite(email string) string {
	if len(r.rewrites) == 0 {
		return email
	}
	at := strings.IndexByte(email, '@')
	domain := email[at+1:]
	for _, rw := range r.rewrites {
		if asciiEqualFold(domain, rw.from) {
			return email[:at+1] + rw.to
		}
	}
	return email
}

// domainAllowed checks a valid address's domain against allowed_domains: an exact entry
// matches case-insensitively; a wildcard entry (stored as ".example.com") matches a
// domain that ends with it and is longer, so that example.com itself is not admitted and
// badexample.com never is.
func (r *Rules) domainAllowed(email string) bool {
	if len(r.allowed) == 0 {
		return true
	}
	domain := email[strings.IndexByte(email, '@')+1:]
	for _, a := range r.allowed {
		if a[0] == '.' {
			if len(domain) > len(a) && asciiEqualFold(domain[len(domain)-len(a):], a) {
				return true
			}
		} else if asciiEqualFold(domain, a) {
			return true
		}
	}
	return false
}

func rawOrAbsent(r gjson.Result) string {
	if !r.Exists() {
		return "absent"
	}
	return strings.Clone(r.Raw)
}

// allowedList prints allowed_domains as configured (wildcards as "*.example.com").
func (r *Rules) allowedList() string {
	out := make([]string, len(r.allowed))
	for i, a := range r.allowed {
		if a[0] == '.' {
			a = "*" + a
		}
		out[i] = a
	}
	return strings.Join(out, ", ")
}

// DomainError is a refusal by allowed_domains: the winning candidate mapped to Email,
// whose domain is not allowed. It wraps ErrDomainNotAllowed. Its message names the
// domain, not the address, so that a log that must not show addresses can use it;
// Email is there for a log that may (see log.redact_emails).
type DomainError struct {
	Candidate int
	Email     string
}

func (e *DomainError) Error() string {
	return fmt.Sprintf("mapping: candidate %d: %v (domain %q)", e.Candidate, ErrDomainNotAllowed, e.Email[strings.IndexByte(e.Email, '@')+1:])
}

func (e *DomainError) Unwrap() error { return ErrDomainNotAllowed }
