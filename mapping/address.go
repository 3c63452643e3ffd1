package mapping

import (
	"net/mail"
	"strings"
	"unsafe"
)

// maxAddress is the longest address accepted: RFC 5321 §4.5.3.1.3 limits a path to 256
// octets including the angle brackets, which leaves 254 for the address itself.
const maxAddress = 254

// bareAddress reports whether s is a bare RFC 5322 §3.4.1 addr-spec: no display name, no
// angle brackets, no comment, no blank, exactly one "@", a non-empty local part and
// domain, at most 254 octets.
//
// The common shape, a dot-atom on both sides of the "@" in ASCII, is accepted here without
// net/mail: ParseAddress costs five allocations on every request, and it accepts every such
// address unchanged (FuzzBareAddress checks that this shortcut never accepts what
// ParseAddress would refuse or alter). Anything else (UTF-8, a quoted local part, a domain
// literal) goes to ParseAddress, and counts only when it parses to exactly s with no name.
func bareAddress(s string) bool {
	if len(s) == 0 || len(s) > maxAddress {
		return false
	}
	at := -1
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '@':
			if at >= 0 {
				return false
			}
			at = i
		case c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == ',' || c == ';':
			// blanks, controls, angle brackets and list separators never belong to a
			// bare address; refusing them here keeps ParseAddress off the junk path.
			return false
		}
	}
	if at <= 0 || at == len(s)-1 {
		return false
	}
	if dotAtom(s[:at]) && dotAtom(s[at+1:]) {
		return true
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s
}

// dotAtom reports whether s is an RFC 5322 §3.2.3 dot-atom-text in ASCII: atext runs
// separated by single dots, with no dot at either end.
func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	prevDot := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '.' {
			if prevDot {
				return false
			}
			prevDot = true
			continue
		}
		prevDot = false
		if !isAtext(c) {
			return false
		}
	}
	return true
}

// isAtext reports whether c is an RFC 5322 §3.2.3 atext character in ASCII.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// validDomain reports whether s is a DNS name as configured in allowed_domains or
// rewrite_domains: dot-separated labels of letters, digits and hyphens, each 1 to 63
// octets and not starting or ending with a hyphen, at most 253 octets in all.
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// bytesView returns doc as a string without copying it. gjson.GetBytes copies every
// result it returns; reading through a view instead keeps the hot path free of those
// copies. It is safe because the document is only read during the call, and every string
// that outlives the call (the email, the trace) is cloned before it is returned.
func bytesView(doc []byte) string {
	return unsafe.String(unsafe.SliceData(doc), len(doc))
}
