package mapping

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// asciiSpace is what trim removes: the ASCII blanks only. strings.TrimSpace would also
// remove U+00A0, U+2028 and the other Unicode spaces, so that "\u00a0kate@…" became
// kate's address.
const asciiSpace = " \t\r\n\v\f"

// asciiLower lower-cases the ASCII letters of s and leaves every other byte alone: no
// Unicode folding ever maps a non-ASCII letter (U+212A KELVIN SIGN, U+0130, U+017F) onto
// an ASCII one. It allocates only when s has an upper-case ASCII letter.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// asciiEqualFold reports whether a and b are equal after asciiLower: strings.EqualFold
// would match "ſ" with "s" and "K" (U+212A) with "k".
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// characters checks a candidate's value character by character, before the address
// syntax, and returns it as it will be mapped.
//
// By default every byte must be printable ASCII: RFC 5321 without the SMTPUTF8
// extension, and no room for a look-alike. With allow_unicode, the value must be UTF-8,
// every non-ASCII character must be graphic and neither a space, a format character
// (U+200B, U+202E and the other bidi controls), a default-ignorable one, a private-use
// one, nor a compatibility character (one that NFKC changes: the fullwidth "＠", "ſ",
// ligatures; IDNA2008 disallows them for the same reason), nor one whose canonical form
// is ASCII (U+212A KELVIN SIGN is "K"). The value is then put in NFC, so that two
// encodings of one address map to one email.
func (r *Rules) characters(v string) (string, reason) {
	ascii := true
	for i := 0; i < len(v); i++ {
		if c := v[i]; c >= utf8.RuneSelf {
			ascii = false
		} else if c <= ' ' || c == 0x7f {
			return "", notBareAddress
		}
	}
	if ascii {
		return v, won
	}
	if !r.unicode {
		return "", notASCII
	}
	if !utf8.ValidString(v) {
		return "", badCharacter
	}
	for _, c := range v {
		if c < utf8.RuneSelf {
			continue
		}
		if !allowedRune(c) {
			return "", badCharacter
		}
	}
	return norm.NFC.String(v), won
}

// allowedRune reports whether a non-ASCII rune may appear in an internationalised email.
func allowedRune(c rune) bool {
	if !unicode.IsGraphic(c) || unicode.In(c, unicode.Zs, unicode.Cf, unicode.Co,
		unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector,
		unicode.Bidi_Control, unicode.Join_Control, unicode.Noncharacter_Code_Point) {
		return false
	}
	var buf [utf8.UTFMax]byte
	one := buf[:utf8.EncodeRune(buf[:], c)]
	nfc := norm.NFC.Bytes(one)
	if len(nfc) == 1 && nfc[0] < utf8.RuneSelf {
		return false // a singleton whose canonical form is ASCII (U+212A → K)
	}
	return string(norm.NFKC.Bytes(one)) == string(nfc)
}
