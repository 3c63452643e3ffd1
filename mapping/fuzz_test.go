package mapping

import (
	"encoding/json"
	"errors"
	"net/mail"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// fuzzSpec is the contract's example mapping, with a rewrite, used by FuzzEmail.
func fuzzSpec() Spec {
	return Spec{
		Candidates: []Candidate{
			{Path: "email", When: &When{Path: "email_verified", Equals: true, HasEquals: true}},
			{Path: "emails"},
			{Path: "directory.mail"},
			{Path: "upn", Transforms: []Transform{{Name: "trim"}, {Name: "lower"}}},
			{Path: `directory.proxyAddresses.#(%"SMTP:*")`, Transforms: []Transform{{Name: "trim_prefix", Arg: "SMTP:"}, {Name: "lower"}}},
			{Path: "mail", When: &When{Path: "tid", Matches: `^[a-f0-9-]+$`}, Transforms: []Transform{{Name: "replace", Arg: `\.local$`, With: ".com"}, {Name: "trim_suffix", Arg: "."}}},
			{Template: "{{preferred_username}}@example.com", When: &When{Path: "iss", Equals: "https://adfs.example.com"}},
		},
		RewriteDomains: map[string]string{"example.local": "example.com"},
	}
}

func FuzzEmail(f *testing.F) {
	for _, s := range []string{
		``,
		`{}`,
		`null`,
		`[]`,
		`{"email":"alice@example.com","email_verified":true}`,
		`{"email":"alice@example.com","email_verified":"true"}`,
		`{"emails":["","bob@example.com"]}`,
		`{"emails":[1,null,{"a":"b"}]}`,
		`{"directory":{"mail":["c@example.local"]}}`,
		`{"upn":"  Dave@Example.COM "}`,
		`{"upn":"Alice <a@example.com>"}`,
		`{"upn":"a b@example.com"}`,
		`{"upn":"a@b@example.com"}`,
		`{"directory":{"proxyAddresses":["smtp:old@corp.example.com","SMTP:Alice.Primary@corp.example.com"]}}`,
		`{"mail":"x@corp.local","tid":"0b6f"}`,
		`{"iss":"https://adfs.example.com","preferred_username":"eve"}`,
		`{"iss":"https://adfs.example.com","preferred_username":"eve@evil.com"}`,
		`{"upn":"\"quoted\"@example.com"}`,
		`{"upn":"josé@EXAMPLE.local"}`,
		`{"upn":"a@[192.0.2.1]"}`,
		`{"upn":"a@example.com(comment)"}`,
		`{"upn":"` + strings.Repeat("a", 245) + `@example.local"}`,
		`{"email":"\u0000@x","email_verified":true}`,
		`{"upn":`,
	} {
		f.Add([]byte(s))
	}
	r := compile(f, fuzzSpec())
	f.Fuzz(func(t *testing.T, doc []byte) {
		email, err := r.Email(doc)
		if err != nil {
			if !errors.Is(err, ErrNoEmail) && !errors.Is(err, ErrDomainNotAllowed) {
				t.Fatalf("unexpected error %v", err)
			}
			if email != "" {
				t.Fatalf("email %q with error %v", email, err)
			}
		} else {
			checkBare(t, email)
		}
		email2, tr, err2 := r.Trace(doc)
		if email2 != email || (err == nil) != (err2 == nil) {
			t.Fatalf("Trace = %q, %v; Email = %q, %v", email2, err2, email, err)
		}
		_ = tr.String()
	})
}

// checkBare fails unless s is a bare address by the package's definition.
func checkBare(t *testing.T, s string) {
	t.Helper()
	if s == "" || len(s) > maxAddress || strings.Count(s, "@") != 1 || strings.ContainsAny(s, " \t\r\n<>") {
		t.Fatalf("not a bare address: %q", s)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		t.Fatalf("ParseAddress(%q) = %v, %v", s, a, err)
	}
}

// FuzzBareAddress checks the shortcut in bareAddress: whatever it accepts, net/mail
// accepts as exactly the same bare address.
func FuzzBareAddress(f *testing.F) {
	for _, s := range []string{
		"a@example.com", "first.last+tag@sub.example.co.uk", "o'brien@example.com", "a@b",
		"josé@example.com", "a@[192.0.2.1]", "Alice <a@b.com>", "a@b.com(x)", `"a b"@c.com`,
		".a@b.com", "a..b@c.com", "a@b.com.", "{}|~@x", "=?utf-8?q?x?=@example.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if bareAddress(s) {
			checkBare(t, s)
		}
	})
}

func FuzzCompileTemplate(f *testing.F) {
	for _, s := range []string{
		"{{preferred_username}}@example.com",
		"(&(objectClass=person)(uid={{sub}}))",
		"{{ a }}.{{b}}",
		"{{a}}{{b}}",
		"{a}{{b}}}",
		"{{", "}}", "{{}}", "{{ }}", "{{a", "a}}", "{{a{{b}}}}", "", "plain",
		"{{#(x==\"}}\")}}",
		"{{@reverse}}",
	} {
		f.Add(s)
	}
	doc := []byte(`{"a":"x","b":2,"sub":"alice","preferred_username":"bob","arr":["y"]}`)
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := CompileTemplate(s)
		if err != nil {
			if tm != nil {
				t.Fatalf("template and error %v", err)
			}
			return
		}
		ps := tm.Paths()
		if len(ps) == 0 {
			t.Fatalf("compiled %q without a placeholder", s)
		}
		for _, p := range ps {
			if strings.TrimSpace(p) != p || p == "" || strings.Contains(p, "{{") || strings.Contains(p, "}}") {
				t.Fatalf("bad path %q in %q", p, s)
			}
		}
		// The literal text survives rendering: with every value escaped to "", the output
		// is the template with its placeholders removed.
		if out, ok := tm.Render(doc, func(string) string { return "" }); ok {
			var lit strings.Builder
			for _, p := range tm.parts {
				lit.WriteString(p.lit)
			}
			if out != lit.String() {
				t.Fatalf("Render(%q) = %q; want the literals %q", s, out, lit.String())
			}
		}
	})
}

// FuzzEmailIdentity checks the property that keeps one user out of another's identity:
// two different accepted values that map to one email are equal after ASCII trimming
// and lower-casing (and, with allow_unicode, NFC). It also checks that by default an
// accepted email is printable ASCII, and that with allow_unicode it carries no format,
// space or control character.
func FuzzEmailIdentity(f *testing.F) {
	for _, s := range [][2]string{
		{"kate@example.com", "\u212Aate@example.com"},
		{"KATE@example.com", "kate@example.com"},
		{"ivy@example.com", "\u0130vy@example.com"},
		{"sam@example.com", "\u017Fam@example.com"},
		{"kate@example.com", "ka\u200Bte@example.com"},
		{"kate@example.com", "\u00A0kate@example.com"},
		{"kate@example.com", "kate\uFF20example.com"},
		{"jos\u00e9@example.com", "jose\u0301@example.com"},
		{" a@b.com", "a@b.com\t"},
		{"a@EXAMPLE.local", "a@example.com"},
	} {
		f.Add(s[0], s[1], false)
		f.Add(s[0], s[1], true)
	}
	specs := map[bool]*Rules{}
	for _, unicode := range []bool{false, true} {
		specs[unicode] = compile(f, Spec{
			Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "trim"}, {Name: "lower"}}}},
			// A rewrite to an existing domain is a merge the operator asked for; it is
			// applied to the key as well below.
			RewriteDomains: map[string]string{"example.local": "example.com"},
			AllowUnicode:   unicode,
		})
	}
	canon := func(s string, unicode bool) string {
		s = asciiLower(strings.Trim(s, asciiSpace))
		if unicode {
			s = norm.NFC.String(s)
		}
		if at := strings.LastIndexByte(s, '@'); at >= 0 && s[at+1:] == "example.local" {
			s = s[:at+1] + "example.com"
		}
		return s
	}
	f.Fuzz(func(t *testing.T, a, b string, unicode bool) {
		r := specs[unicode]
		ea, errA := r.Email(docOf(t, a))
		eb, errB := r.Email(docOf(t, b))
		for _, e := range []string{ea, eb} {
			if e == "" {
				continue
			}
			for _, c := range e {
				if !unicode && (c <= ' ' || c >= 0x7f) {
					t.Fatalf("email %q has %U without allow_unicode", e, c)
				}
				if c <= ' ' || c == 0x7f || (c >= 0x80 && !allowedRune(c)) {
					t.Fatalf("email %q has %U", e, c)
				}
			}
			if unicode && !norm.NFC.IsNormalString(e) {
				t.Fatalf("email %q is not in NFC", e)
			}
		}
		if errA != nil || errB != nil || ea != eb || a == b {
			return
		}
		if canon(a, unicode) != canon(b, unicode) {
			t.Fatalf("%q and %q both map to %q", a, b, ea)
		}
	})
}

// docOf is {"e": s} as JSON.
func docOf(t *testing.T, s string) []byte {
	b, err := json.Marshal(map[string]string{"e": s})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
