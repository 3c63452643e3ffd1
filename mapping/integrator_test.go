package mapping

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestCheckPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		pos  int // 0: valid
		msg  string
	}{
		{"upn", 0, ""},
		{"directory.mail", 0, ""},
		{`directory.proxyAddresses.#(%"SMTP:*")`, 0, ""},
		{`claims.#(name=="x").value`, 0, ""},
		{`http://schemas\.xmlsoap\.org/ws/2005/05/identity/claims/upn`, 0, ""},
		{"emails|@reverse", 0, ""},
		{"[upn,email]", 0, ""},
		{`claims.#(name=="x"`, 9, `unbalanced '('`},
		{`claims.#(name=="x)`, 16, "unterminated string"},
		{"upn|@lowerr", 5, `unknown modifier "@lowerr"`},
		{"$.upn", 1, `write "upn"`},
		{"a..b", 3, "empty path component"},
		{"a.", 2, "empty path component"},
		{"a)", 2, `unbalanced ')'`},
		{`a\`, 2, "backslash"},
		{"  ", 1, "empty path"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			err := CheckPath(tc.path)
			if tc.pos == 0 {
				if err != nil {
					t.Fatalf("CheckPath(%q) = %v, want nil", tc.path, err)
				}
				return
			}
			pe, ok := err.(*PathError)
			if !ok {
				t.Fatalf("CheckPath(%q) = %v, want a *PathError", tc.path, err)
			}
			if pe.Pos != tc.pos || !strings.Contains(pe.Error(), tc.msg) {
				t.Errorf("CheckPath(%q) = %q (pos %d), want %q at %d", tc.path, pe.Error(), pe.Pos, tc.msg, tc.pos)
			}
		})
	}
}

func TestCompileRefusesMalformedPaths(t *testing.T) {
	_, errs := Compile(Spec{Candidates: []Candidate{
		{Path: "upn|@lowerr"},
		{Path: "email", When: &When{Path: `claims.#(name=="x"`, Exists: new(bool)}},
		{Template: "{{$.upn}}@example.com"},
	}})
	if len(errs) != 3 {
		t.Fatalf("errors: %v, want 3", errs)
	}
	for i, want := range []string{`email[0].path: unknown modifier "@lowerr"`, "email[1].when.path: unbalanced", "email[2].template: placeholder {{$.upn}}"} {
		if !strings.Contains(errs[i].Error(), want) {
			t.Errorf("error %d = %q, want %q", i, errs[i], want)
		}
	}
}

func TestLint(t *testing.T) {
	warns := Lint(Spec{Candidates: []Candidate{
		{Path: "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"},
		{Path: "email"},
		{Path: "email", When: &When{Path: "email_verified", Equals: true}},
		{Path: `http://schemas\.xmlsoap\.org/claims/upn`},
	}})
	if len(warns) != 2 {
		t.Fatalf("warnings: %v, want 2", warns)
	}
	if !strings.Contains(warns[0].Msg, `http://schemas\.xmlsoap\.org/ws/2005/05/identity/claims/upn`) {
		t.Errorf("claim URI hint: %s", warns[0].Msg)
	}
	if warns[1].Index != 1 || !strings.Contains(warns[1].Msg, "email_verified") {
		t.Errorf("unverified email: %v", warns[1])
	}
}

func TestParseInput(t *testing.T) {
	seg := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	jwt := seg(`{"alg":"RS256","kid":"k1"}`) + "." + seg(`{"sub":"bob","email":"bob@example.com"}`) + ".c2ln"
	for _, tc := range []struct {
		name, in string
		jwt      bool
		err      string
	}{
		{"json", `{"upn":"a@example.com"}`, false, ""},
		{"jwt", jwt, true, ""},
		{"jwt with newline", jwt + "\n", true, ""},
		{"bearer header", "Bearer " + jwt, true, ""},
		{"jwe", "a.b.c.d.e", false, "JWE"},
		{"garbage", "hello", false, "not a JSON document nor a JWT"},
		{"broken json", `{"a":`, false, "not valid JSON"},
		{"jwt with bad payload", seg(`{}`) + ".!!!.x", false, "payload"},
		{"jwt with array payload", seg(`{}`) + "." + seg(`[1]`) + ".x", false, "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := ParseInput([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), tc.in) {
					t.Errorf("the error repeats the input")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if in.FromJWT != tc.jwt {
				t.Errorf("FromJWT = %v", in.FromJWT)
			}
		})
	}
	if _, err := ParseInput(make([]byte, MaxInput+1)); err != ErrInputTooLarge {
		t.Errorf("oversized input: %v", err)
	}
}

func TestSuggest(t *testing.T) {
	doc := `{
	  "sub": "bob@example.com",
	  "email": "Bob@Example.com",
	  "email_verified": false,
	  "upn": "bob_contoso.com#EXT#@fabrikam.onmicrosoft.com",
	  "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": "bob@corp.example.com",
	  "directory": {"mail": ["bob@example.com", "robert@example.com"], "proxyAddresses": ["smtp:b@old.example.com", "SMTP:Bob@Example.com"]},
	  "name": "Bob"
	}`
	got := Suggest([]byte(doc))
	byPath := map[string]Suggestion{}
	for _, s := range got {
		byPath[s.Path] = s
		// Every suggested rule must compile and map the document to the suggested email.
		rules, errs := Compile(specFromRule(t, s))
		if errs != nil {
			t.Fatalf("rule for %s does not compile: %v", s.Path, errs)
		}
		if email, err := rules.Email([]byte(doc)); err != nil || email != s.Email {
			if !strings.Contains(strings.Join(s.Traps, " "), "not the array's first") {
				t.Errorf("rule for %s maps to %q, %v; want %q", s.Path, email, err, s.Email)
			}
		}
	}
	for path, trap := range map[string]string{
		"sub":   "identifier",
		"email": "unverified",
		"upn":   "#EXT#",
	} {
		if s, ok := byPath[path]; !ok || !strings.Contains(strings.Join(s.Traps, " "), trap) {
			t.Errorf("%s: %+v, want a trap mentioning %q", path, s, trap)
		}
	}
	for _, path := range []string{`http://schemas\.xmlsoap\.org/ws/2005/05/identity/claims/upn`, "directory.mail", `directory.proxyAddresses.#(%"SMTP:*")`} {
		if s, ok := byPath[path]; !ok || len(s.Traps) != 0 {
			t.Errorf("%s: %+v, want a suggestion without trap (have %v)", path, s, got)
		}
	}
	if got[0].Traps != nil {
		t.Errorf("safe suggestions must come first: %+v", got[0])
	}
}

// specFromRule turns a suggestion back into a Spec the way the YAML would.
func specFromRule(t *testing.T, s Suggestion) Spec {
	t.Helper()
	c := Candidate{Path: s.Path}
	if strings.Contains(s.Rule, "trim,") || strings.Contains(s.Rule, "[trim") {
		c.Transforms = append(c.Transforms, Transform{Name: "trim"})
	}
	if strings.Contains(s.Rule, "trim_prefix") {
		c.Transforms = append(c.Transforms, Transform{Name: "trim_prefix", Arg: "SMTP:"})
	}
	if strings.Contains(s.Rule, "lower") {
		c.Transforms = append(c.Transforms, Transform{Name: "lower"})
	}
	return Spec{Candidates: []Candidate{c}}
}

// FuzzIntegratorInput feeds the playground's inputs (pasted by a browser) to the parsers:
// none may panic, and a path CheckPath accepts must not make gjson panic either.
func FuzzIntegratorInput(f *testing.F) {
	f.Add(`{"email":"a@b.c","x":[{"y":"SMTP:A@B.C"}]}`, `claims.#(name=="x").v`)
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", "upn|@lowerr")
	f.Fuzz(func(t *testing.T, in, path string) {
		if doc, err := ParseInput([]byte(in)); err == nil {
			Suggest(doc.Document)
		}
		if CheckPath(path) == nil {
			_, _ = Compile(Spec{Candidates: []Candidate{{Path: path}}})
		}
		ClaimURIHint(path)
	})
}
