package ldap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"

	"github.com/go-ldap/ldap/v3"

	"github.com/idbridge/idbridge/configs"
)

// Probe is one `idbridge directory test`: a directory's configuration, a filter
// template and the sample identity document its placeholders are filled from.
type Probe struct {
	Name      string           // the directory's name under directories:
	File      string           // the config file, for positioned errors
	Directory *DirectoryConfig // see DecodeDirectory for a config file's section
	// Filter is a filter template ({{path}} placeholders, RFC 4515-escaped when filled).
	Filter string
	// Attributes to return; nil: every user attribute.
	Attributes []string
	// Document fills the placeholders: sample claims, or a token's unverified payload.
	Document []byte
	// TokenSHA256, when not "", defines {{token_sha256}} (a `type: ldap` provider's filter).
	TokenSHA256 string
}

// ProbeStep is one thing the probe learnt, reported as soon as it is known so that a
// failure still shows everything before it.
type ProbeStep struct {
	Label string // "connect", "tls", "certificate", "bind", "filter", "entry", …
	Value string
}

// ProbeError is a failed step, with Explain's plain words when there are some.
type ProbeError struct {
	Step string
	Err  error
	Hint string
}

func (e *ProbeError) Error() string {
	if e.Hint == "" {
		return fmt.Sprintf("%s: %v", e.Step, e.Err)
	}
	return fmt.Sprintf("%s: %v\n  -> %s", e.Step, e.Err, e.Hint)
}

func (e *ProbeError) Unwrap() error { return e.Err }

// Run connects with the directory's own settings (URL, StartTLS, CA, timeout), binds as
// the service account, builds the filter from the document and runs the search, calling
// report for each step. It returns the entry as an identity document ({"dn": …,
// attributes as arrays, binary values base64, passwords left out}), or a *ProbeError. It
// never uses a pool and never reports the bind password.
func (p Probe) Run(ctx context.Context, report func(ProbeStep)) ([]byte, error) {
	errf := func(key, format string, args ...any) *configs.Error {
		return &configs.Error{File: p.File, Path: "directories." + p.Name + "." + key, Msg: fmt.Sprintf(format, args...)}
	}
	d, errs := newDirectory(p.Name, p.Directory, errf, slog.New(slog.DiscardHandler))
	if len(errs.Fatal()) > 0 {
		return nil, errs.Fatal()
	}
	report(ProbeStep{"connect", d.url})
	c, err := d.dial(ctx)
	if err != nil {
		step := "bind"
		var be *bindError
		if !errors.As(err, &be) {
			step = "connect"
		}
		return nil, &ProbeError{Step: step, Err: err, Hint: Explain(err)}
	}
	defer c.close()
	report(ProbeStep{"tls", tlsSummary(d, c.c)})
	if st, ok := c.c.TLSConnectionState(); ok && len(st.PeerCertificates) > 0 {
		cert := st.PeerCertificates[0]
		report(ProbeStep{"certificate", fmt.Sprintf("subject %q, issuer %q, valid until %s", cert.Subject.String(), cert.Issuer.String(), cert.NotAfter.UTC().Format("2006-01-02"))})
	}
	if d.bindDN == "" {
		report(ProbeStep{"bind", "anonymous (no bind_dn)"})
	} else {
		report(ProbeStep{"bind", "ok as " + d.bindDN})
	}

	f, err := compileFilter(p.Filter)
	if err != nil {
		return nil, &ProbeError{Step: "filter", Err: err}
	}
	doc := p.Document
	if p.TokenSHA256 != "" {
		if doc, err = mergeInto(doc, tokenPlaceholder, marshal(p.TokenSHA256)); err != nil {
			return nil, &ProbeError{Step: "filter", Err: err}
		}
	}
	flt, ok := f.build(doc)
	if !ok {
		return nil, &ProbeError{Step: "filter", Err: fmt.Errorf("a placeholder has no value in the sample claims (placeholders: %v)", f.paths()),
			Hint: "give claims that contain every placeholder's path (--claims FILE or --token FILE)"}
	}
	report(ProbeStep{"filter", flt})
	report(ProbeStep{"search", fmt.Sprintf("base %q, scope %s, size_limit %d", d.baseDN, scopeName(d.scope), d.sizeLimit)})

	s := newSearch(d, p.Attributes)
	req := ldap.NewSearchRequest(d.baseDN, d.scope, ldap.NeverDerefAliases, d.sizeLimit, d.timeLimit,
		false, flt, s.attrs, nil)
	var res *ldap.SearchResult
	err = d.do(ctx, c, func() error {
		var err error
		res, err = c.c.Search(req)
		return err
	})
	switch {
	case err != nil && ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) && res != nil:
		return nil, &ProbeError{Step: "search", Err: fmt.Errorf("%w (%d entries returned, first %s)", ErrAmbiguous, len(res.Entries), firstDN(res)), Hint: Explain(err)}
	case err != nil:
		return nil, &ProbeError{Step: "search", Err: err, Hint: Explain(err)}
	case len(res.Entries) == 0:
		return nil, &ProbeError{Step: "search", Err: ErrNotFound, Hint: "check the filter's attribute and value, base_dn and scope; a lookup with required: true answers 403 here"}
	case len(res.Entries) > 1:
		return nil, &ProbeError{Step: "search", Err: fmt.Errorf("%w (%d entries, first %s)", ErrAmbiguous, len(res.Entries), firstDN(res)), Hint: "a lookup refuses an ambiguous match: make the filter match one entry"}
	}
	report(ProbeStep{"entry", res.Entries[0].DN})
	return s.document(res.Entries[0], p.TokenSHA256), nil
}

func firstDN(res *ldap.SearchResult) string {
	if len(res.Entries) == 0 {
		return "none"
	}
	return fmt.Sprintf("%q", res.Entries[0].DN)
}

func scopeName(scope int) string {
	switch scope {
	case ldap.ScopeBaseObject:
		return "base"
	case ldap.ScopeSingleLevel:
		return "one"
	}
	return "sub"
}

// tlsSummary says how the connection is protected.
func tlsSummary(d *Directory, c *ldap.Conn) string {
	st, ok := c.TLSConnectionState()
	if !ok {
		return "none: plain ldap:// without start_tls; the bind password and entries travel in clear"
	}
	how := "ldaps://"
	if d.startTLS {
		how = "StartTLS"
	}
	s := fmt.Sprintf("%s, %s, %s", how, tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
	if d.insecure {
		s += " (insecure_skip_verify: the certificate is NOT verified)"
	}
	return s
}
