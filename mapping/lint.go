package mapping

import (
	"fmt"
	"strings"
)

// Lint returns the warnings about rules that compile but probably do not do what is
// meant, for `idbridge check`: a claim URI whose dots gjson reads as nested keys, and an
// `email` claim taken without checking that its issuer verified it. The errors use the
// same Index and Field as Compile's.
func Lint(s Spec) []*CompileError {
	var out []*CompileError
	warn := func(i int, field, format string, args ...any) {
		out = append(out, &CompileError{Index: i, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	for i, c := range s.Candidates {
		paths := []struct{ field, path string }{{"path", c.Path}}
		if c.When != nil {
			paths = append(paths, struct{ field, path string }{"when.path", c.When.Path})
		}
		if t, err := CompileTemplate(c.Template); c.Template != "" && err == nil {
			for _, p := range t.Paths() {
				paths = append(paths, struct{ field, path string }{"template", p})
			}
		}
		for _, p := range paths {
			if h := ClaimURIHint(p.path); h != "" {
				warn(i, p.field, "%q looks like a claim URI, but gjson reads each \".\" as a nested key: escape the dots: %s", p.path, h)
			}
		}
		if isEmailClaim(c.Path) && (c.When == nil || !strings.HasSuffix(c.When.Path, "email_verified")) {
			warn(i, "path", "%s is taken without checking that the issuer verified it: many IdPs let users set it themselves; add when: {path: %s, equals: true}",
				c.Path, strings.TrimSuffix(c.Path, "email")+"email_verified")
		}
	}
	return out
}

// isEmailClaim reports a path to an OIDC `email` claim (top level or under a userinfo
// step's key), the claim OIDC pairs with email_verified (OpenID Connect Core §5.1).
func isEmailClaim(p string) bool {
	return p == "email" || strings.HasSuffix(p, ".email")
}
