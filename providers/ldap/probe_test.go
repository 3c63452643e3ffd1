package ldap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/tidwall/gjson"

	"github.com/idbridge/idbridge/providers/ldap/ldaptest"
)

func TestProbe(t *testing.T) {
	srv := ldaptest.Start(t)
	base := func() *DirectoryConfig {
		return &DirectoryConfig{URL: srv.LDAPSURL(), CAFile: srv.CAFile(), BindDN: srv.BindDN(),
			BindPassword: srv.BindPassword(), BaseDN: ldaptest.PeopleDN, Timeout: 5 * time.Second}
	}
	run := func(t *testing.T, dir *DirectoryConfig, filter, doc string) ([]ProbeStep, []byte, error) {
		t.Helper()
		var steps []ProbeStep
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := Probe{Name: "corp", File: "test.yaml", Directory: dir, Filter: filter, Document: []byte(doc)}.Run(ctx, func(s ProbeStep) { steps = append(steps, s) })
		return steps, out, err
	}
	step := func(steps []ProbeStep, label string) string {
		for _, s := range steps {
			if s.Label == label {
				return s.Value
			}
		}
		return ""
	}

	t.Run("ldaps entry with escaped filter", func(t *testing.T) {
		steps, doc, err := run(t, base(), "(&(objectClass=person)(uid={{sub}}))", `{"sub":"al*"}`)
		if err != nil {
			t.Fatal(err)
		}
		if got := step(steps, "filter"); got != `(&(objectClass=person)(uid=al\2a))` {
			t.Errorf("filter = %q: the * must be escaped", got)
		}
		if got := step(steps, "tls"); !strings.Contains(got, "ldaps://, TLS 1.") {
			t.Errorf("tls = %q", got)
		}
		if got := step(steps, "certificate"); !strings.Contains(got, "subject") {
			t.Errorf("certificate = %q", got)
		}
		if gjson.GetBytes(doc, "mail.0").Str != "star@example.com" {
			t.Errorf("entry = %s", doc)
		}
	})
	t.Run("starttls, binary attribute in base64, no password", func(t *testing.T) {
		d := base()
		d.URL, d.StartTLS = srv.URL(), true
		steps, doc, err := run(t, d, "(uid={{sub}})", `{"sub":"alice"}`)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(step(steps, "tls"), "StartTLS, TLS 1.") {
			t.Errorf("tls = %q", step(steps, "tls"))
		}
		if gjson.GetBytes(doc, "objectGUID.0").Str != "ABEiM0RVZneImaq7zN3u/w==" {
			t.Errorf("objectGUID not base64: %s", doc)
		}
		if strings.Contains(strings.ToLower(string(doc)), "userpassword") {
			t.Errorf("a password attribute in %s", doc)
		}
	})
	t.Run("plain ldap is called out", func(t *testing.T) {
		d := base()
		d.URL, d.CAFile = srv.URL(), ""
		steps, _, err := run(t, d, "(uid={{sub}})", `{"sub":"bob"}`)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(step(steps, "tls"), "in clear") {
			t.Errorf("tls = %q", step(steps, "tls"))
		}
	})
	for _, tc := range []struct {
		name   string
		edit   func(*DirectoryConfig)
		filter string
		doc    string
		step   string
		hint   string
	}{
		{"wrong password", func(d *DirectoryConfig) { d.BindPassword = "nope" }, "(uid={{sub}})", `{"sub":"bob"}`, "bind", "invalid credentials"},
		{"untrusted certificate", func(d *DirectoryConfig) { d.CAFile = ldaptest.UntrustedCAFile(t) }, "(uid={{sub}})", `{"sub":"bob"}`, "connect", "set ca_file"},
		{"wrong base_dn", func(d *DirectoryConfig) { d.BaseDN = "ou=nobody,dc=example,dc=com" }, "(uid={{sub}})", `{"sub":"bob"}`, "search", `closest existing entry is "dc=example,dc=com"`},
		{"no entry", nil, "(uid={{sub}})", `{"sub":"nobody"}`, "search", "check the filter"},
		{"star is literal", nil, "(uid={{sub}})", `{"sub":"twin*"}`, "search", "check the filter"},
		{"ambiguous", nil, "(sAMAccountName={{sub}})", `{"sub":"twin"}`, "search", "make the filter match one entry"},
		{"size limit", nil, "(|(uid={{sub}})(objectClass=person))", `{"sub":"bob"}`, "search", "size_limit"},
		{"missing claim", nil, "(uid={{sub}})", `{"upn":"bob"}`, "filter", "--claims"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := base()
			if tc.edit != nil {
				tc.edit(d)
			}
			_, _, err := run(t, d, tc.filter, tc.doc)
			var pe *ProbeError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ProbeError", err)
			}
			if pe.Step != tc.step || !strings.Contains(pe.Hint, tc.hint) {
				t.Errorf("got step %q hint %q (%v); want step %q hint %q", pe.Step, pe.Hint, pe.Err, tc.step, tc.hint)
			}
			if strings.Contains(err.Error(), srv.BindPassword()) {
				t.Errorf("the error shows the bind password")
			}
		})
	}
}

func TestExplain(t *testing.T) {
	ad := func(code uint16, diag string) error { return ldap.NewError(code, errors.New(diag)) }
	for _, tc := range []struct {
		err  error
		want string
	}{
		{ad(ldap.LDAPResultStrongAuthRequired, "00002028: LdapErr: DSID-0C090259, comment: The server requires binds to turn on integrity checking"), "use ldaps:// or start_tls: true"},
		{ad(ldap.LDAPResultInvalidCredentials, "80090308: LdapErr: DSID-0C090447, comment: AcceptSecurityContext error, data 52e, v3839"), "wrong password"},
		{ad(ldap.LDAPResultInvalidCredentials, "80090308: LdapErr: DSID-0C090447, comment: AcceptSecurityContext error, data 775, v3839"), "locked out"},
		{ad(ldap.LDAPResultInvalidCredentials, "80090308: LdapErr: DSID-0C090447, comment: AcceptSecurityContext error, data 532, v3839"), "password has expired"},
		{ad(ldap.LDAPResultReferral, "0000202B: RefErr: DSID-0310084A, data 0, 1 access points"), "referral"},
		{ad(ldap.LDAPResultSizeLimitExceeded, ""), "size_limit"},
		{ad(ldap.LDAPResultNoSuchObject, "0000208D: NameErr: DSID-03100241, problem 2001 (NO_OBJECT)"), "base_dn does not exist"},
		{fmt.Errorf("dial: %w", errors.New("dial tcp 127.0.0.1:1: connect: connection refused")), "nothing listens"},
		{errors.New("something else"), ""},
	} {
		if got := Explain(tc.err); (tc.want == "" && got != "") || !strings.Contains(got, tc.want) {
			t.Errorf("Explain(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
