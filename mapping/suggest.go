package mapping

import (
	"sort"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Suggestion is one value of a document that looks like an email, with the gjson path
// that reaches it and a rule that would map it.
type Suggestion struct {
	Path  string   // gjson path to the value (an array's path when the value is in one)
	Value string   // the value as found
	Email string   // what the rule yields (after trimming, lower-casing, a prefix cut)
	Rule  string   // a ready-to-paste YAML candidate for mapping.email
	Traps []string // why this value may not be the user's address; empty when none is known
}

// maxSuggestions bounds the walk over a hostile document.
const maxSuggestions = 50

// Suggest lists every string value of doc that looks like an email, depth first in the
// document's order, with a rule for each and the known traps flagged: an `email` its
// issuer did not verify, an Entra ID guest UPN (#EXT#), `sub`, `preferred_username`.
// Rules that are safe come first.
func Suggest(doc []byte) []Suggestion {
	root := gjson.ParseBytes(doc)
	var out []Suggestion
	seenArray := map[string]bool{}
	var walk func(path string, key string, v gjson.Result, depth int, inArray string)
	walk = func(path, key string, v gjson.Result, depth int, inArray string) {
		if len(out) >= maxSuggestions || depth > 32 {
			return
		}
		switch {
		case v.IsObject():
			v.ForEach(func(k, e gjson.Result) bool {
				walk(joinGJSON(path, escapeKey(k.Str)), k.Str, e, depth+1, "")
				return len(out) < maxSuggestions
			})
		case v.IsArray():
			i := 0
			v.ForEach(func(_, e gjson.Result) bool {
				walk(path+"."+strconv.Itoa(i), key, e, depth+1, path)
				i++
				return len(out) < maxSuggestions
			})
		case v.Type == gjson.String:
			if s, ok := suggestFor(root, path, key, v.Str, inArray, seenArray); ok {
				out = append(out, s)
			}
		}
	}
	walk("", "", root, 0, "")
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].Traps) == 0 && len(out[j].Traps) > 0 })
	return out
}

// suggestFor builds the suggestion for one string value, or reports false when it does
// not look like an email.
func suggestFor(root gjson.Result, path, key, val, inArray string, seenArray map[string]bool) (Suggestion, bool) {
	s := Suggestion{Path: path, Value: val}
	v := strings.TrimSpace(val)
	var transforms []string
	if v != val {
		transforms = append(transforms, "trim")
	}
	if prefix, rest, ok := strings.Cut(v, ":"); ok && strings.EqualFold(prefix, "smtp") {
		// Exchange proxyAddresses: "SMTP:" marks the primary address, "smtp:" the others.
		if prefix != "SMTP" || inArray == "" || seenArray[inArray] {
			return s, false
		}
		seenArray[inArray] = true
		s.Path = inArray + `.#(%"SMTP:*")`
		transforms = append(transforms, `{trim_prefix: "SMTP:"}`)
		v = rest
		inArray = ""
	}
	if !bareAddress(v) {
		return s, false
	}
	if strings.ToLower(v) != v {
		transforms = append(transforms, "lower")
	}
	s.Email = strings.ToLower(v)
	if inArray != "" {
		// A rule on the array takes its first non-empty string; list the array once, at
		// its first address, and point out the others by their index.
		if seenArray[inArray] {
			s.Traps = append(s.Traps, "not the array's first address: a rule on "+inArray+" takes the first")
		} else {
			seenArray[inArray] = true
			s.Path = inArray
		}
	}
	lk := strings.ToLower(key)
	var when string
	switch {
	case lk == "email":
		ver := root.Get(siblingPath(path, inArray, "email_verified"))
		switch {
		case ver.Type == gjson.True:
			when = "{path: " + siblingPath(path, inArray, "email_verified") + ", equals: true}"
		case ver.Exists():
			s.Traps = append(s.Traps, "unverified: email_verified is "+ver.Raw+"; anyone may have typed this address")
		default:
			s.Traps = append(s.Traps, "unverified: no email_verified claim; many IdPs (Entra ID among them) let users set email themselves")
		}
	case lk == "sub":
		s.Traps = append(s.Traps, "sub is an identifier, not an address: it may change form or be reassigned")
	case lk == "preferred_username" || lk == "unique_name":
		s.Traps = append(s.Traps, key+" is a display hint that users or admins may change, not a verified address")
	}
	if strings.Contains(strings.ToUpper(v), "#EXT#") {
		s.Traps = append(s.Traps, "an Entra ID guest UPN (#EXT#): not the user's own address; use email or mail")
	}
	var b strings.Builder
	b.WriteString("- path: ")
	b.WriteString(yamlScalar(s.Path))
	if len(transforms) > 0 {
		b.WriteString("\n  transforms: [")
		b.WriteString(strings.Join(transforms, ", "))
		b.WriteString("]")
	}
	if when != "" {
		b.WriteString("\n  when: ")
		b.WriteString(when)
	}
	s.Rule = b.String()
	return s, true
}

// siblingPath is the path of key next to the value at path (or next to its array).
func siblingPath(path, inArray, key string) string {
	if inArray != "" {
		path = inArray
	}
	if i := lastUnescapedDot(path); i >= 0 {
		return path[:i+1] + key
	}
	return key
}

func lastUnescapedDot(p string) int {
	last := -1
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' {
			i++
			continue
		}
		if p[i] == '.' {
			last = i
		}
	}
	return last
}

func joinGJSON(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// escapeKey escapes the characters gjson gives a meaning to, so that a key such as an AD
// FS claim URI ("http://schemas.xmlsoap.org/…/upn") is one path component. Unlike
// gjson.Escape it leaves "/" alone, so that the path stays readable.
func escapeKey(k string) string {
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		switch k[i] {
		case '.', '|', '#', '@', '*', '?', '\\', '!', '=', '<', '>', '%', '(', ')', '[', ']', '{', '}', ',', '"':
			b.WriteByte('\\')
		}
		b.WriteByte(k[i])
	}
	return b.String()
}

// yamlScalar quotes a path for YAML when it needs it (single quotes keep backslashes).
func yamlScalar(s string) string {
	if s != "" && strings.IndexAny(s, `:#{}[],&*!|>'"%@`+"`\\") < 0 && s[0] != '-' && s[0] != '?' {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
