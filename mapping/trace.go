package mapping

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Trace explains an evaluation: one Step per candidate tried, in order. It holds values
// from the document, so it is for `idbridge map` and debugging, never for logs.
type Trace struct {
	Steps []Step
}

// Step is what happened to one candidate.
type Step struct {
	Index    int
	Path     string // the candidate's gjson path, or ""
	Template string // the candidate's template, or ""
	When     string // the condition, its outcome and the value it saw; "" without when
	Found    string // the JSON text found at Path, the rendered Template (quoted), or "absent"; "" when when was false
	Values   []StepValue
	Rewrite  string // the rewrite_domains step, e.g. "example.local -> example.com"; "" when none applied
	Email    string // the valid address, after the domain rewrite
	Rejected string // why the candidate did not win; "" when it won
	Won      bool
}

// StepValue is the value after one transform.
type StepValue struct {
	Transform string // e.g. "lower", `trim_prefix("SMTP:")`
	Value     string
}

// maxShown bounds a value printed by String, so that a whole nested object found at a
// path does not flood the terminal.
const maxShown = 200

// String prints the trace as readable lines, for example:
//
//	candidate 0: path email
//	  when email_verified equals true: false (found false)
//	  rejected: when is false
//	candidate 1: path upn
//	  found "Alice@Example.COM"
//	  lower: "alice@example.com"
//	  email alice@example.com
//	  won
func (t *Trace) String() string {
	var b strings.Builder
	for _, s := range t.Steps {
		b.WriteString("candidate ")
		b.WriteString(strconv.Itoa(s.Index))
		if s.Template != "" {
			b.WriteString(": template ")
			b.WriteString(s.Template)
		} else {
			b.WriteString(": path ")
			b.WriteString(s.Path)
		}
		b.WriteByte('\n')
		if s.When != "" {
			b.WriteString("  when ")
			b.WriteString(shorten(s.When))
			b.WriteByte('\n')
		}
		if s.Found != "" {
			b.WriteString("  found ")
			b.WriteString(shorten(s.Found))
			b.WriteByte('\n')
		}
		for _, v := range s.Values {
			b.WriteString("  ")
			b.WriteString(v.Transform)
			b.WriteString(": ")
			b.WriteString(shorten(strconv.Quote(v.Value)))
			b.WriteByte('\n')
		}
		if s.Rewrite != "" {
			b.WriteString("  rewrite_domains: ")
			b.WriteString(s.Rewrite)
			b.WriteByte('\n')
		}
		if s.Email != "" {
			b.WriteString("  email ")
			b.WriteString(s.Email)
			b.WriteByte('\n')
		}
		if s.Won {
			b.WriteString("  won\n")
		} else {
			b.WriteString("  rejected: ")
			b.WriteString(s.Rejected)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func shorten(s string) string {
	if len(s) <= maxShown {
		return s
	}
	// Cut on a rune boundary, so that the output stays valid UTF-8.
	i := maxShown
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
