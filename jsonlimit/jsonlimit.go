// Package jsonlimit bounds JSON from outside before any recursive parser reads it.
//
// gjson's validator and encoding/json both recurse once per nesting level: a body of a
// few hundred KiB of "[" costs a deep goroutine stack (about 128 MB for 1 MiB of "[" in
// gjson) on every request that reads it. CheckDepth walks the bytes once, iteratively,
// with constant memory, and refuses a document nested deeper than a limit; every place
// where JSON enters idbridge (introspection, userinfo, discovery and JWKS answers,
// Spotnana's answers, JWT headers and payloads) calls it first.
package jsonlimit

import (
	"errors"
	"strconv"
)

// MaxDepth is the nesting limit idbridge applies to every JSON document from outside.
// Real identity documents nest three or four levels (Keycloak's realm_access.roles,
// a JWKS's keys[].x5c); 32 leaves a wide margin and stays cheap for every parser.
const MaxDepth = 32

// ErrTooDeep is returned (wrapped in a *DepthError) by CheckDepth for a document nested
// deeper than its limit.
var ErrTooDeep = errors.New("json nested too deeply")

// DepthError says how deep a document went before CheckDepth stopped reading it.
type DepthError struct {
	Max    int // the limit
	Offset int // byte offset of the bracket that went past it
}

func (e *DepthError) Error() string {
	return "json nested deeper than " + strconv.Itoa(e.Max) + " levels (at byte " + strconv.Itoa(e.Offset) + ")"
}

// Is makes errors.Is(err, ErrTooDeep) true.
func (e *DepthError) Is(target error) bool { return target == ErrTooDeep }

// CheckDepth reports an error wrapping ErrTooDeep when b opens more than max arrays or
// objects inside one another ("[]" is depth 1, "[[]]" depth 2). It is not a validator:
// malformed JSON that stays within the limit passes, and the parser that follows refuses
// it. Brackets inside strings (with their backslash escapes) do not count. It runs in
// O(len(b)) time with no allocation on success.
func CheckDepth(b []byte, max int) error { return checkDepth(b, max) }

func checkDepth[T string | []byte](b T, max int) error {
	depth := 0
	inString, escaped := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth > max {
				return &DepthError{Max: max, Offset: i}
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return nil
}

// Check is CheckDepth with MaxDepth.
func Check(b []byte) error { return CheckDepth(b, MaxDepth) }

// CheckString is Check for a string, without copying it.
func CheckString(s string) error { return checkDepth(s, MaxDepth) }
