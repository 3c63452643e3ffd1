package mapping

import (
	"errors"
	"strings"
	"testing"
)

func compile(t testing.TB, s Spec) *Rules {
	t.Helper()
	r, errs := Compile(s)
	if len(errs) > 0 {
		t.Fatalf("Compile: %v", errs)
	}
	return r
}

func ptr[T any](v T) *T { return &v }

func paths(p ...string) []Candidate {
	cs := make([]Candidate, len(p))
	for i := range p {
		cs[i] = Candidate{Path: p[i]}
	}
	return cs
}

func TestEmail(t *testing.T) {
	long := strings.Repeat("a", 250) + "@b.co" // 255 octets
	tests := []struct {
		name    string
		spec    Spec
		doc     string
		want    string
		wantErr error
	}{
		// A path and what it yields.
		{name: "string", spec: Spec{Candidates: paths("email")}, doc: `{"email":"alice@example.com"}`, want: "alice@example.com"},
		{name: "nested path", spec: Spec{Candidates: paths("user.mail")}, doc: `{"user":{"mail":"a@example.com"}}`, want: "a@example.com"},
		{name: "escaped JSON string", spec: Spec{Candidates: paths("email")}, doc: `{"email":"al\u0069ce@example.com"}`, want: "alice@example.com"},
		{name: "absent", spec: Spec{Candidates: paths("email")}, doc: `{"sub":"alice@example.com"}`, wantErr: ErrNoEmail},
		{name: "never falls back to sub", spec: Spec{Candidates: paths("email", "upn")}, doc: `{"sub":"alice@example.com"}`, wantErr: ErrNoEmail},
		{name: "number is not an email", spec: Spec{Candidates: paths("email")}, doc: `{"email":42}`, wantErr: ErrNoEmail},
		{name: "bool is not an email", spec: Spec{Candidates: paths("email")}, doc: `{"email":true}`, wantErr: ErrNoEmail},
		{name: "null is not an email", spec: Spec{Candidates: paths("email")}, doc: `{"email":null}`, wantErr: ErrNoEmail},
		{name: "object is not an email", spec: Spec{Candidates: paths("email")}, doc: `{"email":{"a":"b@example.com"}}`, wantErr: ErrNoEmail},
		{name: "empty string", spec: Spec{Candidates: paths("email")}, doc: `{"email":""}`, wantErr: ErrNoEmail},
		{name: "invalid JSON", spec: Spec{Candidates: paths("email")}, doc: `{"email":`, wantErr: ErrNoEmail},
		{name: "empty document", spec: Spec{Candidates: paths("email")}, doc: ``, wantErr: ErrNoEmail},
		{name: "second candidate when first absent", spec: Spec{Candidates: paths("email", "upn")}, doc: `{"upn":"bob@example.com"}`, want: "bob@example.com"},
		{name: "second candidate when first invalid", spec: Spec{Candidates: paths("email", "upn")}, doc: `{"email":"bob","upn":"bob@example.com"}`, want: "bob@example.com"},

		// Arrays: the first non-empty string.
		{name: "array first", spec: Spec{Candidates: paths("emails")}, doc: `{"emails":["a@example.com","b@example.com"]}`, want: "a@example.com"},
		{name: "array skips empty and non-strings", spec: Spec{Candidates: paths("emails")}, doc: `{"emails":["",null,3,true,{"x":"y"},["n@example.com"],"c@example.com"]}`, want: "c@example.com"},
		{name: "array without strings", spec: Spec{Candidates: paths("emails")}, doc: `{"emails":[1,"",false]}`, wantErr: ErrNoEmail},
		{name: "empty array", spec: Spec{Candidates: paths("emails")}, doc: `{"emails":[]}`, wantErr: ErrNoEmail},
		{name: "array first string invalid, not retried", spec: Spec{Candidates: paths("emails")}, doc: `{"emails":["nope","b@example.com"]}`, wantErr: ErrNoEmail},
		{name: "gjson query yielding an array", spec: Spec{Candidates: paths(`list.#(t=="work")#.v`)}, doc: `{"list":[{"t":"home","v":"h@example.com"},{"t":"work","v":"w@example.com"}]}`, want: "w@example.com"},

		// Transforms.
		{name: "trim", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "trim"}}}}}, doc: `{"e":"  a@example.com\t\n"}`, want: "a@example.com"},
		{name: "untrimmed is refused", spec: Spec{Candidates: paths("e")}, doc: `{"e":" a@example.com"}`, wantErr: ErrNoEmail},
		{name: "lower", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "lower"}}}}}, doc: `{"e":"Alice@Example.COM"}`, want: "alice@example.com"},
		{name: "trim_prefix", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "trim_prefix", Arg: "mailto:"}}}}}, doc: `{"e":"mailto:a@example.com"}`, want: "a@example.com"},
		{name: "trim_prefix absent prefix", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "trim_prefix", Arg: "mailto:"}}}}}, doc: `{"e":"a@example.com"}`, want: "a@example.com"},
		{name: "trim_suffix", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "trim_suffix", Arg: ".invalid"}}}}}, doc: `{"e":"a@example.com.invalid"}`, want: "a@example.com"},
		{name: "replace with group", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "replace", Arg: `^([^@]+)@corp\.local$`, With: "${1}@example.com"}}}}}, doc: `{"e":"bob@corp.local"}`, want: "bob@example.com"},
		{name: "replace no match", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "replace", Arg: `q+`, With: "y"}}}}}, doc: `{"e":"a@example.com"}`, want: "a@example.com"},
		{name: "transforms in order", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "trim"}, {Name: "trim_prefix", Arg: "SMTP:"}, {Name: "lower"}}}}}, doc: `{"e":" SMTP:A@Example.com "}`, want: "a@example.com"},
		{name: "order matters", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "lower"}, {Name: "trim_prefix", Arg: "SMTP:"}}}}}, doc: `{"e":"SMTP:a@example.com"}`, wantErr: ErrNoEmail},
		{name: "empty after transforms", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "trim"}}}}}, doc: `{"e":"   "}`, wantErr: ErrNoEmail},

		// when.
		{name: "equals on an array: any element", spec: Spec{Candidates: []Candidate{{Path: "mail", When: &When{Path: "employeeType", Equals: "Employee", HasEquals: true}}}}, doc: `{"mail":["a@example.com"],"employeeType":["Contractor","Employee"]}`, want: "a@example.com"},
		{name: "equals on an array: no element", spec: Spec{Candidates: []Candidate{{Path: "mail", When: &When{Path: "employeeType", Equals: "Employee", HasEquals: true}}}}, doc: `{"mail":["a@example.com"],"employeeType":["Contractor"]}`, wantErr: ErrNoEmail},
		{name: "equals on an array is type-strict", spec: Spec{Candidates: []Candidate{{Path: "mail", When: &When{Path: "n", Equals: 7, HasEquals: true}}}}, doc: `{"mail":"a@example.com","n":["7"]}`, wantErr: ErrNoEmail},
		{name: "matches on an array: any element", spec: Spec{Candidates: []Candidate{{Path: "mail", When: &When{Path: "roles", Matches: "^travel-"}}}}, doc: `{"mail":"a@example.com","roles":["staff","travel-user"]}`, want: "a@example.com"},
		{name: "exists: an empty array does not", spec: Spec{Candidates: []Candidate{{Path: "mail", When: &When{Path: "employeeType", Exists: ptr(true)}}}}, doc: `{"mail":"a@example.com","employeeType":[]}`, wantErr: ErrNoEmail},
		{name: "exists: a non-empty array does", spec: Spec{Candidates: []Candidate{{Path: "mail", When: &When{Path: "employeeType", Exists: ptr(true)}}}}, doc: `{"mail":"a@example.com","employeeType":["x"]}`, want: "a@example.com"},
		{name: "exists false: an empty array", spec: Spec{Candidates: []Candidate{{Path: "mail", When: &When{Path: "employeeType", Exists: ptr(false)}}}}, doc: `{"mail":"a@example.com","employeeType":[]}`, want: "a@example.com"},
		{name: "equals true matches true", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "v", Equals: true, HasEquals: true}}}}, doc: `{"email":"a@example.com","v":true}`, want: "a@example.com"},
		{name: "equals true refuses false", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "v", Equals: true, HasEquals: true}}}}, doc: `{"email":"a@example.com","v":false}`, wantErr: ErrNoEmail},
		{name: "equals true refuses string true", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "v", Equals: true, HasEquals: true}}}}, doc: `{"email":"a@example.com","v":"true"}`, wantErr: ErrNoEmail},
		{name: "equals true refuses absent", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "v", Equals: true, HasEquals: true}}}}, doc: `{"email":"a@example.com"}`, wantErr: ErrNoEmail},
		{name: "equals false matches false", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "v", Equals: false, HasEquals: true}}}}, doc: `{"email":"a@example.com","v":false}`, want: "a@example.com"},
		{name: "equals false refuses absent", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "v", Equals: false, HasEquals: true}}}}, doc: `{"email":"a@example.com"}`, wantErr: ErrNoEmail},
		{name: "equals string", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "iss", Equals: "https://adfs.example.com"}}}}, doc: `{"email":"a@example.com","iss":"https://adfs.example.com"}`, want: "a@example.com"},
		{name: "equals string is case-sensitive", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "iss", Equals: "https://adfs.example.com"}}}}, doc: `{"email":"a@example.com","iss":"https://ADFS.example.com"}`, wantErr: ErrNoEmail},
		{name: "equals string true refuses bool true", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "v", Equals: "true"}}}}, doc: `{"email":"a@example.com","v":true}`, wantErr: ErrNoEmail},
		{name: "equals int", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "v", Equals: 42}}}}, doc: `{"email":"a@example.com","v":42}`, want: "a@example.com"},
		{name: "equals int matches 42.0", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "v", Equals: 42}}}}, doc: `{"email":"a@example.com","v":42.0}`, want: "a@example.com"},
		{name: "equals int refuses string 42", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "v", Equals: 42}}}}, doc: `{"email":"a@example.com","v":"42"}`, wantErr: ErrNoEmail},
		{name: "equals large int exact", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "v", Equals: int64(9007199254740993)}}}}, doc: `{"email":"a@example.com","v":9007199254740992}`, wantErr: ErrNoEmail},
		{name: "equals float", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "v", Equals: 1.5}}}}, doc: `{"email":"a@example.com","v":1.5}`, want: "a@example.com"},
		{name: "equals null matches null", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "v", HasEquals: true}}}}, doc: `{"email":"a@example.com","v":null}`, want: "a@example.com"},
		{name: "equals null refuses absent", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "v", HasEquals: true}}}}, doc: `{"email":"a@example.com"}`, wantErr: ErrNoEmail},
		{name: "matches", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "tid", Matches: `^[0-9a-f-]{36}$`}}}}, doc: `{"email":"a@example.com","tid":"0b6f3f0e-1111-2222-3333-444455556666"}`, want: "a@example.com"},
		{name: "matches refuses", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "tid", Matches: `^[0-9a-f-]{36}$`}}}}, doc: `{"email":"a@example.com","tid":"other"}`, wantErr: ErrNoEmail},
		{name: "matches only strings", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "n", Matches: `^4`}}}}, doc: `{"email":"a@example.com","n":42}`, wantErr: ErrNoEmail},
		{name: "exists true", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "amr", Exists: ptr(true)}}}}, doc: `{"email":"a@example.com","amr":["pwd"]}`, want: "a@example.com"},
		{name: "exists true refuses absent", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "amr", Exists: ptr(true)}}}}, doc: `{"email":"a@example.com"}`, wantErr: ErrNoEmail},
		{name: "exists false", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "idp", Exists: ptr(false)}}}}, doc: `{"email":"a@example.com"}`, want: "a@example.com"},
		{name: "exists false refuses present", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "idp", Exists: ptr(false)}}}}, doc: `{"email":"a@example.com","idp":"google"}`, wantErr: ErrNoEmail},
		{name: "when false moves on", spec: Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "v", Equals: true}}, {Path: "upn"}}}, doc: `{"email":"a@example.com","v":false,"upn":"u@example.com"}`, want: "u@example.com"},

		// Templates.
		{name: "template", spec: Spec{Candidates: []Candidate{{Template: "{{preferred_username}}@example.com"}}}, doc: `{"preferred_username":"alice"}`, want: "alice@example.com"},
		{name: "template two placeholders", spec: Spec{Candidates: []Candidate{{Template: "{{given}}.{{ family }}@example.com"}}}, doc: `{"given":"ann","family":"lee"}`, want: "ann.lee@example.com"},
		{name: "template number", spec: Spec{Candidates: []Candidate{{Template: "u{{id}}@example.com"}}}, doc: `{"id":1234}`, want: "u1234@example.com"},
		{name: "template missing placeholder moves on", spec: Spec{Candidates: []Candidate{{Template: "{{preferred_username}}@example.com"}, {Path: "email"}}}, doc: `{"email":"e@example.com"}`, want: "e@example.com"},
		{name: "template empty value", spec: Spec{Candidates: []Candidate{{Template: "{{u}}@example.com"}}}, doc: `{"u":""}`, wantErr: ErrNoEmail},
		{name: "template array value", spec: Spec{Candidates: []Candidate{{Template: "{{u}}@example.com"}}}, doc: `{"u":["a"]}`, wantErr: ErrNoEmail},
		{name: "template array element", spec: Spec{Candidates: []Candidate{{Template: "{{u.0}}@example.com"}}}, doc: `{"u":["a"]}`, want: "a@example.com"},
		{name: "template injection refused", spec: Spec{Candidates: []Candidate{{Template: "{{u}}@example.com"}}}, doc: `{"u":"x@evil.com (y)"}`, wantErr: ErrNoEmail},
		{name: "template injected @ refused", spec: Spec{Candidates: []Candidate{{Template: "{{u}}@example.com"}}}, doc: `{"u":"x@evil.com"}`, wantErr: ErrNoEmail},
		{name: "template with when", spec: Spec{Candidates: []Candidate{{Template: "{{preferred_username}}@example.com", When: &When{Path: "iss", Equals: "https://adfs.example.com"}, Transforms: []Transform{{Name: "lower"}}}}}, doc: `{"iss":"https://adfs.example.com","preferred_username":"Alice"}`, want: "alice@example.com"},

		// Bare addresses only.
		{name: "display name refused", spec: Spec{Candidates: paths("e")}, doc: `{"e":"Alice <alice@example.com>"}`, wantErr: ErrNoEmail},
		{name: "angle brackets refused", spec: Spec{Candidates: paths("e")}, doc: `{"e":"<alice@example.com>"}`, wantErr: ErrNoEmail},
		{name: "comment refused", spec: Spec{Candidates: paths("e")}, doc: `{"e":"alice@example.com(Alice)"}`, wantErr: ErrNoEmail},
		{name: "inner space refused", spec: Spec{Candidates: paths("e")}, doc: `{"e":"al ice@example.com"}`, wantErr: ErrNoEmail},
		{name: "two @ refused", spec: Spec{Candidates: paths("e")}, doc: `{"e":"a@b@example.com"}`, wantErr: ErrNoEmail},
		{name: "no @ refused", spec: Spec{Candidates: paths("e")}, doc: `{"e":"alice"}`, wantErr: ErrNoEmail},
		{name: "empty local refused", spec: Spec{Candidates: paths("e")}, doc: `{"e":"@example.com"}`, wantErr: ErrNoEmail},
		{name: "empty domain refused", spec: Spec{Candidates: paths("e")}, doc: `{"e":"alice@"}`, wantErr: ErrNoEmail},
		{name: "list refused", spec: Spec{Candidates: paths("e")}, doc: `{"e":"a@example.com,b@example.com"}`, wantErr: ErrNoEmail},
		{name: "too long refused", spec: Spec{Candidates: paths("e")}, doc: `{"e":"` + long + `"}`, wantErr: ErrNoEmail},
		{name: "254 octets accepted", spec: Spec{Candidates: paths("e")}, doc: `{"e":"` + long[1:] + `"}`, want: long[1:]},
		{name: "UTF-8 refused by default", spec: Spec{Candidates: paths("e")}, doc: `{"e":"josé@example.com"}`, wantErr: ErrNoEmail},
		{name: "UTF-8 local part with allow_unicode", spec: Spec{Candidates: paths("e"), AllowUnicode: true}, doc: `{"e":"josé@example.com"}`, want: "josé@example.com"},
		{name: "allow_unicode puts the address in NFC", spec: Spec{Candidates: paths("e"), AllowUnicode: true}, doc: `{"e":"jose\u0301@example.com"}`, want: "jos\u00e9@example.com"},

		// Look-alikes of ASCII addresses (issue 14): none reaches an ASCII identity.
		{name: "kelvin sign refused", spec: Spec{Candidates: paths("e")}, doc: `{"e":"\u212Aate@example.com"}`, wantErr: ErrNoEmail},
		{name: "kelvin sign not lowered onto k", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "lower"}}}}}, doc: `{"e":"\u212Aate@example.com"}`, wantErr: ErrNoEmail},
		{name: "kelvin sign refused with allow_unicode", spec: Spec{Candidates: paths("e"), AllowUnicode: true}, doc: `{"e":"\u212Aate@example.com"}`, wantErr: ErrNoEmail},
		{name: "dotted capital I not lowered onto i", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "lower"}}}}, AllowUnicode: true}, doc: `{"e":"\u0130vy@example.com"}`, want: "\u0130vy@example.com"},
		{name: "long s refused with allow_unicode", spec: Spec{Candidates: paths("e"), AllowUnicode: true}, doc: `{"e":"\u017Fam@example.com"}`, wantErr: ErrNoEmail},
		{name: "zero width space refused", spec: Spec{Candidates: paths("e"), AllowUnicode: true}, doc: `{"e":"ka\u200Bte@example.com"}`, wantErr: ErrNoEmail},
		{name: "right-to-left override refused", spec: Spec{Candidates: paths("e"), AllowUnicode: true}, doc: `{"e":"kate\u202E@example.com"}`, wantErr: ErrNoEmail},
		{name: "no-break space refused", spec: Spec{Candidates: paths("e"), AllowUnicode: true}, doc: `{"e":"kate\u00A0@example.com"}`, wantErr: ErrNoEmail},
		{name: "no-break space not trimmed", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "trim"}}}}}, doc: `{"e":"\u00A0kate@example.com"}`, wantErr: ErrNoEmail},
		{name: "line separator refused", spec: Spec{Candidates: paths("e"), AllowUnicode: true}, doc: `{"e":"kate\u2028@example.com"}`, wantErr: ErrNoEmail},
		{name: "fullwidth at refused", spec: Spec{Candidates: paths("e"), AllowUnicode: true}, doc: `{"e":"kate\uFF20x@example.com"}`, wantErr: ErrNoEmail},
		{name: "allowed domain folds ASCII only", spec: Spec{Candidates: paths("e"), AllowUnicode: true, AllowedDomains: []string{"kexample.com"}}, doc: `{"e":"a@\u212Aexample.com"}`, wantErr: ErrNoEmail},
		{name: "rewrite folds ASCII only", spec: Spec{Candidates: paths("e"), AllowUnicode: true, RewriteDomains: map[string]string{"sexample.com": "example.com"}}, doc: `{"e":"a@\u00DFexample.com"}`, want: "a@\u00DFexample.com"},
		{name: "quoted local part unchanged", spec: Spec{Candidates: paths("e")}, doc: `{"e":"\"a.b\"@example.com"}`, wantErr: ErrNoEmail},

		// Domain rewrite, then the allowlist.
		{name: "rewrite", spec: Spec{Candidates: paths("e"), RewriteDomains: map[string]string{"example.local": "example.com"}}, doc: `{"e":"a@example.local"}`, want: "a@example.com"},
		{name: "rewrite case-insensitive key", spec: Spec{Candidates: paths("e"), RewriteDomains: map[string]string{"Example.Local": "example.com"}}, doc: `{"e":"a@EXAMPLE.local"}`, want: "a@example.com"},
		{name: "rewrite other domain untouched", spec: Spec{Candidates: paths("e"), RewriteDomains: map[string]string{"example.local": "example.com"}}, doc: `{"e":"a@sub.example.local"}`, want: "a@sub.example.local"},
		{name: "rewrite then allow", spec: Spec{Candidates: paths("e"), RewriteDomains: map[string]string{"example.local": "example.com"}, AllowedDomains: []string{"example.com"}}, doc: `{"e":"a@example.local"}`, want: "a@example.com"},
		{name: "allow exact", spec: Spec{Candidates: paths("e"), AllowedDomains: []string{"example.com"}}, doc: `{"e":"a@example.com"}`, want: "a@example.com"},
		{name: "allow case-insensitive", spec: Spec{Candidates: paths("e"), AllowedDomains: []string{"Example.COM"}}, doc: `{"e":"a@EXAMPLE.com"}`, want: "a@EXAMPLE.com"},
		{name: "allow exact refuses subdomain", spec: Spec{Candidates: paths("e"), AllowedDomains: []string{"example.com"}}, doc: `{"e":"a@eu.example.com"}`, wantErr: ErrDomainNotAllowed},
		{name: "allow wildcard subdomain", spec: Spec{Candidates: paths("e"), AllowedDomains: []string{"*.example.com"}}, doc: `{"e":"a@eu.example.com"}`, want: "a@eu.example.com"},
		{name: "allow wildcard deep subdomain", spec: Spec{Candidates: paths("e"), AllowedDomains: []string{"*.example.com"}}, doc: `{"e":"a@x.y.EXAMPLE.com"}`, want: "a@x.y.EXAMPLE.com"},
		{name: "allow wildcard refuses apex", spec: Spec{Candidates: paths("e"), AllowedDomains: []string{"*.example.com"}}, doc: `{"e":"a@example.com"}`, wantErr: ErrDomainNotAllowed},
		{name: "allow wildcard refuses lookalike", spec: Spec{Candidates: paths("e"), AllowedDomains: []string{"*.example.com"}}, doc: `{"e":"a@badexample.com"}`, wantErr: ErrDomainNotAllowed},
		{name: "allow apex and wildcard", spec: Spec{Candidates: paths("e"), AllowedDomains: []string{"example.com", "*.example.com"}}, doc: `{"e":"a@example.com"}`, want: "a@example.com"},
		{name: "refused domain does not fall through", spec: Spec{Candidates: paths("email", "upn"), AllowedDomains: []string{"example.com"}}, doc: `{"email":"me@gmail.com","upn":"me@example.com"}`, wantErr: ErrDomainNotAllowed},
		{name: "invalid candidate then allowed", spec: Spec{Candidates: paths("email", "upn"), AllowedDomains: []string{"example.com"}}, doc: `{"email":"me","upn":"me@example.com"}`, want: "me@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := compile(t, tt.spec)
			got, err := r.Email([]byte(tt.doc))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Email = %q, %v; want error %v", got, err, tt.wantErr)
				}
				if got != "" {
					t.Errorf("Email = %q with an error", got)
				}
			} else if err != nil || got != tt.want {
				t.Fatalf("Email = %q, %v; want %q", got, err, tt.want)
			}
			// Trace must agree with Email, always.
			got2, tr, err2 := r.Trace([]byte(tt.doc))
			if got2 != got || (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
				t.Errorf("Trace = %q, %v; Email = %q, %v", got2, err2, got, err)
			}
			if tr == nil || len(tr.Steps) == 0 {
				t.Errorf("Trace has no step")
			}
		})
	}
}

// TestProviderShapes runs the contract's example mapping on documents shaped like those
// of the identity providers idbridge meets.
func TestProviderShapes(t *testing.T) {
	contract := Spec{Candidates: []Candidate{
		{Path: "email", When: &When{Path: "email_verified", Equals: true, HasEquals: true}},
		{Path: "directory.mail"},
		{Path: "upn", Transforms: []Transform{{Name: "trim"}, {Name: "lower"}}},
		{Path: `directory.proxyAddresses.#(%"SMTP:*")`, Transforms: []Transform{{Name: "trim_prefix", Arg: "SMTP:"}, {Name: "lower"}}},
		{Template: "{{preferred_username}}@example.com", When: &When{Path: "iss", Equals: "https://adfs.example.com", HasEquals: true}},
	}}
	entra := Spec{Candidates: []Candidate{
		{Path: "upn", Transforms: []Transform{{Name: "lower"}}},
		{Path: "preferred_username", Transforms: []Transform{{Name: "lower"}}},
	}}
	tests := []struct {
		name    string
		spec    Spec
		doc     string
		want    string
		wantErr error
	}{
		{name: "Okta verified email", spec: contract, doc: `{"iss":"https://corp.okta.com/oauth2/default","sub":"00u1abcd","email":"alice@example.com","email_verified":true,"cid":"0oa1"}`, want: "alice@example.com"},
		{name: "Okta unverified email not used", spec: contract, doc: `{"iss":"https://corp.okta.com/oauth2/default","sub":"00u1abcd","email":"alice@example.com","email_verified":false}`, wantErr: ErrNoEmail},
		{name: "Okta email_verified as string not used", spec: contract, doc: `{"sub":"00u1abcd","email":"alice@example.com","email_verified":"true"}`, wantErr: ErrNoEmail},
		{name: "Okta unverified falls to upn", spec: contract, doc: `{"sub":"00u1abcd","email":"other@example.com","email_verified":false,"upn":"Alice@Example.com"}`, want: "alice@example.com"},
		{name: "Entra ID v1 upn lowercased", spec: entra, doc: `{"aud":"api://idbridge","iss":"https://sts.windows.net/tid/","upn":"Alice.Smith@Contoso.COM","unique_name":"Alice.Smith@Contoso.COM","oid":"x"}`, want: "alice.smith@contoso.com"},
		{name: "Entra ID v2 preferred_username", spec: entra, doc: `{"aud":"x","iss":"https://login.microsoftonline.com/tid/v2.0","preferred_username":"Bob@Contoso.com","oid":"y"}`, want: "bob@contoso.com"},
		// A guest's preferred_username is a valid address in the tenant's onmicrosoft.com
		// domain; only the allowlist keeps it out.
		{name: "Entra ID guest refused by allowlist", spec: Spec{Candidates: entra.Candidates, AllowedDomains: []string{"contoso.com"}}, doc: `{"preferred_username":"guest_gmail.com#EXT#@contoso.onmicrosoft.com"}`, wantErr: ErrDomainNotAllowed},
		{name: "Azure AD B2C emails array", spec: Spec{Candidates: paths("email", "emails")}, doc: `{"iss":"https://contoso.b2clogin.com/tid/v2.0/","sub":"s","emails":["carol@example.com"],"tfp":"B2C_1_signin"}`, want: "carol@example.com"},
		{name: "Active Directory primary SMTP", spec: contract, doc: `{"sub":"alice","directory":{"dn":"cn=alice,ou=people,dc=corp,dc=example,dc=com","proxyAddresses":["smtp:old@corp.example.com","SMTP:Alice.Primary@corp.example.com","X500:/o=corp"]}}`, want: "alice.primary@corp.example.com"},
		{name: "Active Directory only secondaries", spec: contract, doc: `{"sub":"alice","directory":{"proxyAddresses":["smtp:old@corp.example.com"]}}`, wantErr: ErrNoEmail},
		{name: "LDAP mail array", spec: contract, doc: `{"sub":"alice","directory":{"dn":"uid=alice,ou=people,dc=example,dc=com","mail":["alice@example.com","alias@example.com"],"uid":["alice"]}}`, want: "alice@example.com"},
		{name: "LDAP provider document", spec: Spec{Candidates: paths("mail")}, doc: `{"dn":"uid=svc,ou=people,dc=example,dc=com","mail":["svc@example.com"],"uid":["svc"]}`, want: "svc@example.com"},
		{name: "ADFS template", spec: contract, doc: `{"iss":"https://adfs.example.com","preferred_username":"dave"}`, want: "dave@example.com"},
		{name: "ADFS template other issuer", spec: contract, doc: `{"iss":"https://evil.example.com","preferred_username":"dave"}`, wantErr: ErrNoEmail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := compile(t, tt.spec).Email([]byte(tt.doc))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Email = %q, %v; want error %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Email = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	secret := "s3cr3t-claim-value"
	tests := []struct {
		name  string
		spec  Spec
		doc   string
		want  string
		isErr error
	}{
		{
			name:  "no email",
			spec:  Spec{Candidates: []Candidate{{Path: "email", When: &When{Path: "v", Equals: true}}, {Path: "upn"}, {Path: "n"}, {Path: "x"}}},
			doc:   `{"email":"a@example.com","v":false,"upn":"` + secret + `","n":3,"s":"` + secret + `"}`,
			want:  "mapping: no candidate yielded a valid email (0: when is false, 1: not a bare address, 2: not a string, 3: absent)",
			isErr: ErrNoEmail,
		},
		{
			name:  "domain not allowed",
			spec:  Spec{Candidates: paths("x", "email"), AllowedDomains: []string{"example.com"}},
			doc:   `{"email":"` + secret + `@gmail.com"}`,
			want:  `mapping: candidate 1: email domain not allowed (domain "gmail.com")`,
			isErr: ErrDomainNotAllowed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compile(t, tt.spec).Email([]byte(tt.doc))
			if !errors.Is(err, tt.isErr) {
				t.Fatalf("err = %v; want %v", err, tt.isErr)
			}
			if err.Error() != tt.want {
				t.Errorf("err = %q\nwant  %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error text carries a document value: %q", err)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want []string
	}{
		{name: "no candidate", spec: Spec{}, want: []string{"email: at least one candidate is needed"}},
		{name: "neither path nor template", spec: Spec{Candidates: []Candidate{{}}}, want: []string{"email[0]: a path or a template is needed"}},
		{name: "both path and template", spec: Spec{Candidates: []Candidate{{Path: "a", Template: "{{a}}"}}}, want: []string{"email[0]: give either path or template, not both"}},
		{name: "blank path", spec: Spec{Candidates: []Candidate{{Path: "  "}}}, want: []string{"email[0].path: empty path"}},
		{name: "unclosed brace", spec: Spec{Candidates: []Candidate{{Template: "{{a@example.com"}}}, want: []string{`email[0].template: unbalanced braces: "{{" without "}}"`}},
		{name: "stray closing brace", spec: Spec{Candidates: []Candidate{{Template: "a}}@{{b}}"}}}, want: []string{`email[0].template: unbalanced braces: "}}" without "{{"`}},
		{name: "nested brace", spec: Spec{Candidates: []Candidate{{Template: "{{a{{b}}}}"}}}, want: []string{`email[0].template: unbalanced braces: "{{" inside a placeholder`}},
		{name: "empty placeholder", spec: Spec{Candidates: []Candidate{{Template: "{{ }}@example.com"}}}, want: []string{"email[0].template: empty {{ }} placeholder"}},
		{name: "no placeholder", spec: Spec{Candidates: []Candidate{{Template: "admin@example.com"}}}, want: []string{"email[0].template: no {{path}} placeholder"}},
		{name: "when without path", spec: Spec{Candidates: []Candidate{{Path: "e", When: &When{Exists: ptr(true)}}}}, want: []string{"email[0].when.path: empty path"}},
		{name: "when without condition", spec: Spec{Candidates: []Candidate{{Path: "e", When: &When{Path: "v"}}}}, want: []string{"email[0].when: exactly one of equals, matches, exists is needed"}},
		{name: "when with two conditions", spec: Spec{Candidates: []Candidate{{Path: "e", When: &When{Path: "v", Equals: "x", Matches: "x"}}}}, want: []string{"email[0].when: exactly one of equals, matches, exists is needed"}},
		{name: "when equals a list", spec: Spec{Candidates: []Candidate{{Path: "e", When: &When{Path: "v", Equals: []any{"x"}}}}}, want: []string{"email[0].when.equals: a []interface {} cannot be compared: give a string, number, bool or null"}},
		{name: "when bad regex", spec: Spec{Candidates: []Candidate{{Path: "e", When: &When{Path: "v", Matches: "("}}}}, want: []string{"email[0].when.matches: error parsing regexp: missing closing ): `(`"}},
		{name: "unknown transform", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "trim"}, {Name: "upper"}}}}}, want: []string{`email[0].transforms[1]: unknown transform "upper" (trim, lower, trim_prefix, trim_suffix, replace)`}},
		{name: "transform with stray argument", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "lower", Arg: "x"}}}}}, want: []string{"email[0].transforms[0]: lower takes no argument"}},
		{name: "trim_prefix without argument", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "trim_prefix"}}}}}, want: []string{"email[0].transforms[0].arg: trim_prefix needs a non-empty argument"}},
		{name: "replace bad regex", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "lower"}, {Name: "replace", Arg: "[a-", With: "x"}}}}}, want: []string{"email[0].transforms[1].regex: error parsing regexp: missing closing ]: `[a-`"}},
		{name: "replace empty regex", spec: Spec{Candidates: []Candidate{{Path: "e", Transforms: []Transform{{Name: "replace", With: "x"}}}}}, want: []string{"email[0].transforms[0].regex: empty regex"}},
		{name: "bad allowed domains", spec: Spec{Candidates: paths("e"), AllowedDomains: []string{"example.com", "", "*", "*.", "a.*.com", "@example.com", "exa mple.com", "-x.com", "x..com", "*.*.x.com"}}, want: []string{
			`allowed_domains[1]: "" is not a domain or *.domain`,
			`allowed_domains[2]: "*" is not a domain or *.domain`,
			`allowed_domains[3]: "*." is not a domain or *.domain`,
			`allowed_domains[4]: "a.*.com" is not a domain or *.domain`,
			`allowed_domains[5]: "@example.com" is not a domain or *.domain`,
			`allowed_domains[6]: "exa mple.com" is not a domain or *.domain`,
			`allowed_domains[7]: "-x.com" is not a domain or *.domain`,
			`allowed_domains[8]: "x..com" is not a domain or *.domain`,
			`allowed_domains[9]: "*.*.x.com" is not a domain or *.domain`,
		}},
		{name: "bad rewrite domains", spec: Spec{Candidates: paths("e"), RewriteDomains: map[string]string{"b.local": "b com", "a.local": "a.com", "A.LOCAL": "a.com"}}, want: []string{
			`rewrite_domains[a.local]: "a.local" is given twice (keys are case-insensitive)`,
			`rewrite_domains[b.local]: "b com" is not a domain`,
		}},
		{name: "every error at once", spec: Spec{
			Candidates: []Candidate{
				{Path: "ok"},
				{Template: "{{x"},
				{Path: "e", When: &When{Path: "v", Matches: "("}, Transforms: []Transform{{Name: "nope"}}},
			},
			AllowedDomains: []string{"*"},
		}, want: []string{
			`email[1].template: unbalanced braces: "{{" without "}}"`,
			"email[2].when.matches: error parsing regexp: missing closing ): `(`",
			`email[2].transforms[0]: unknown transform "nope" (trim, lower, trim_prefix, trim_suffix, replace)`,
			`allowed_domains[0]: "*" is not a domain or *.domain`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, errs := Compile(tt.spec)
			if r != nil {
				t.Errorf("Compile returned rules with errors")
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestCompileErrorFields(t *testing.T) {
	_, errs := Compile(Spec{Candidates: []Candidate{{Path: "e"}, {Path: "e", Transforms: []Transform{{Name: "trim"}, {Name: "replace", Arg: "("}}}}})
	if len(errs) != 1 {
		t.Fatalf("errs = %v", errs)
	}
	if e := errs[0]; e.Index != 1 || e.Field != "transforms[1].regex" {
		t.Errorf("Index, Field = %d, %q; want 1, transforms[1].regex", e.Index, e.Field)
	}
}

func TestTrace(t *testing.T) {
	spec := Spec{
		Candidates: []Candidate{
			{Path: "email", When: &When{Path: "email_verified", Equals: true, HasEquals: true}},
			{Path: "emails"},
			{Path: "n"},
			{Template: "{{missing}}@example.com"},
			{Path: "dn"},
			{Path: "upn", Transforms: []Transform{{Name: "trim"}, {Name: "trim_prefix", Arg: "SMTP:"}, {Name: "lower"}}},
		},
		RewriteDomains: map[string]string{"example.local": "example.com"},
	}
	doc := `{"email":"a@example.com","email_verified":"true","emails":["",1],"n":7,"dn":"Alice <a@example.com>","upn":" SMTP:Alice@Example.LOCAL "}`
	email, tr, err := compile(t, spec).Trace([]byte(doc))
	if err != nil || email != "alice@example.com" {
		t.Fatalf("Trace = %q, %v", email, err)
	}
	want := `candidate 0: path email
  when email_verified equals true: false (found "true")
  rejected: when is false
candidate 1: path emails
  found ["",1]
  rejected: no non-empty string in the array
candidate 2: path n
  found 7
  rejected: not a string
candidate 3: template {{missing}}@example.com
  found absent
  rejected: a placeholder is absent, empty or not a scalar
candidate 4: path dn
  found "Alice <a@example.com>"
  rejected: not a bare address
candidate 5: path upn
  found " SMTP:Alice@Example.LOCAL "
  trim: "SMTP:Alice@Example.LOCAL"
  trim_prefix("SMTP:"): "Alice@Example.LOCAL"
  lower: "alice@example.local"
  rewrite_domains: example.local -> example.com
  email alice@example.com
  won
`
	if got := tr.String(); got != want {
		t.Errorf("trace:\n%s\nwant:\n%s", got, want)
	}
	if s := tr.Steps[5]; !s.Won || s.Rejected != "" || len(s.Values) != 3 {
		t.Errorf("step 5 = %+v", s)
	}

	t.Run("domain not allowed", func(t *testing.T) {
		r := compile(t, Spec{Candidates: paths("email", "upn"), AllowedDomains: []string{"*.example.com"}})
		_, tr, err := r.Trace([]byte(`{"email":"me@example.com","upn":"me@eu.example.com"}`))
		if !errors.Is(err, ErrDomainNotAllowed) {
			t.Fatalf("err = %v", err)
		}
		want := "candidate 0: path email\n  found \"me@example.com\"\n  email me@example.com\n  rejected: domain \"example.com\" not allowed (allowed_domains: *.example.com)\n"
		if got := tr.String(); got != want {
			t.Errorf("trace:\n%s\nwant:\n%s", got, want)
		}
	})
	t.Run("long value shortened", func(t *testing.T) {
		r := compile(t, Spec{Candidates: paths("o")})
		_, tr, _ := r.Trace([]byte(`{"o":{"k":"` + strings.Repeat("é", 300) + `"}}`))
		line := strings.Split(tr.String(), "\n")[1]
		if len(line) > maxShown+20 || !strings.HasSuffix(line, "…") {
			t.Errorf("line not shortened: %d bytes", len(line))
		}
	})
}

// TestEmailDoesNotAliasDoc checks that the returned email survives the caller reusing
// its buffer, since evaluation reads the document without copying it.
func TestEmailDoesNotAliasDoc(t *testing.T) {
	r := compile(t, Spec{Candidates: paths("email")})
	doc := []byte(`{"email":"alice@example.com"}`)
	got, err := r.Email(doc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range doc {
		doc[i] = 'x'
	}
	if got != "alice@example.com" {
		t.Errorf("email changed with the document: %q", got)
	}
}

func TestBareAddress(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"a@example.com", true},
		{"first.last+tag@sub.example.co.uk", true},
		{"o'brien@example.com", true},
		{"a@b", true},
		{"josé@example.com", true},
		{"a@[192.0.2.1]", true},
		{"", false},
		{"a", false},
		{"@b.com", false},
		{"a@", false},
		{"a@@b.com", false},
		{"a@b@c.com", false},
		{"a b@c.com", false},
		{"a@b.com ", false},
		{"a\t@b.com", false},
		{"Alice <a@b.com>", false},
		{"<a@b.com>", false},
		{"a@b.com(x)", false},
		{"(x)a@b.com", false},
		{`"a b"@c.com`, false},
		{`"ab"@c.com`, false},
		{".a@b.com", false},
		{"a.@b.com", false},
		{"a..b@c.com", false},
		{"a@b..com", false},
		{"a@b.com.", false},
		{"a@b.com,c@d.com", false},
		{"a@b.com;", false},
		{"a\x00@b.com", false},
		{"a\x7f@b.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := bareAddress(tt.in); got != tt.want {
				t.Errorf("bareAddress(%q) = %t; want %t", tt.in, got, tt.want)
			}
		})
	}
}

// TestWhenEqualsNumberTypes covers every numeric type a YAML decoder may hand over.
func TestWhenEqualsNumberTypes(t *testing.T) {
	tests := []struct {
		name   string
		equals any
		doc    string
		want   bool
	}{
		{"int", int(42), `42`, true},
		{"int8", int8(42), `42`, true},
		{"int16", int16(42), `42`, true},
		{"int32", int32(-42), `-42`, true},
		{"int64", int64(42), `42`, true},
		{"uint", uint(42), `42`, true},
		{"uint8", uint8(42), `42`, true},
		{"uint16", uint16(42), `42`, true},
		{"uint32", uint32(42), `42`, true},
		{"uint64", uint64(42), `42`, true},
		{"uint64 beyond int64", uint64(1 << 63), `9223372036854775808`, true},
		{"float32", float32(0.5), `0.5`, true},
		{"float64", 42.0, `42`, true},
		{"int against float", 42, `42.5`, false},
		{"int against exponent", 100, `1e2`, true},
		{"number against bool", 1, `true`, false},
		{"number against string", 1, `"1"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := compile(t, Spec{Candidates: []Candidate{{Path: "e", When: &When{Path: "v", Equals: tt.equals, HasEquals: true}}}})
			_, err := r.Email([]byte(`{"e":"a@example.com","v":` + tt.doc + `}`))
			if got := err == nil; got != tt.want {
				t.Errorf("matched = %t; want %t (err %v)", got, tt.want, err)
			}
		})
	}
}

func TestTooLongAfterRewrite(t *testing.T) {
	local := strings.Repeat("a", 240)
	r := compile(t, Spec{Candidates: paths("e"), RewriteDomains: map[string]string{"x.io": "a-much-longer-domain.example.com"}})
	_, tr, err := r.Trace([]byte(`{"e":"` + local + `@x.io"}`))
	if !errors.Is(err, ErrNoEmail) || tr.Steps[0].Rejected != "too long after the domain rewrite" {
		t.Errorf("err = %v, step = %+v", err, tr.Steps[0])
	}
}
