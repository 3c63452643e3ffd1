package mapping

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// MaxInput bounds an identity document or token given to ParseInput: a real one is a few
// kilobytes, and the playground takes it from a browser.
const MaxInput = 256 << 10

// Input is a document to map, as ParseInput understood it.
type Input struct {
	// Document is the JSON object the rules run on: the document itself, or a JWT's
	// payload.
	Document []byte
	// FromJWT reports that Document is a JWT's payload, decoded WITHOUT verifying the
	// signature: it shows what a token claims, never that the claims are true.
	FromJWT bool
	// Header is the JWT's protected header (alg, kid, typ), when FromJWT.
	Header []byte
}

// Errors of ParseInput.
var (
	ErrInputTooLarge = errors.New("input too large")
	ErrNotDocument   = errors.New("not a JSON document nor a JWT")
)

// ParseInput accepts a JSON document, or a compact JWS (RFC 7515 §7.1, header.payload.
// signature) whose payload is a JSON object: the payload is decoded, not verified. An
// encrypted token (JWE, five parts) cannot be read without the key and is refused. The
// error never carries the input, which may be a live token.
func ParseInput(in []byte) (Input, error) {
	if len(in) > MaxInput {
		return Input{}, ErrInputTooLarge
	}
	in = bytes.TrimSpace(in)
	if json.Valid(in) {
		return Input{Document: in}, nil
	}
	s := string(in)
	// A bearer header pasted as a whole.
	if len(s) > 7 && strings.EqualFold(s[:7], "bearer ") {
		s = strings.TrimSpace(s[7:])
	}
	parts := strings.Split(s, ".")
	switch len(parts) {
	case 3:
	case 5:
		return Input{}, errors.New("an encrypted token (JWE) cannot be decoded without its key")
	default:
		if len(in) > 0 && (in[0] == '{' || in[0] == '[') {
			return Input{}, errors.New("not valid JSON")
		}
		return Input{}, ErrNotDocument
	}
	header, err := decodeSegment(parts[0])
	if err != nil {
		return Input{}, errors.New("a JWT whose header is not base64url JSON")
	}
	payload, err := decodeSegment(parts[1])
	if err != nil {
		return Input{}, errors.New("a JWT whose payload is not base64url JSON")
	}
	if bytes.TrimSpace(payload)[0] != '{' {
		return Input{}, errors.New("a JWT whose payload is not a JSON object")
	}
	return Input{Document: payload, FromJWT: true, Header: header}, nil
}

// decodeSegment decodes one base64url segment (padding tolerated) holding JSON.
func decodeSegment(seg string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || !json.Valid(b) {
		return nil, ErrNotDocument
	}
	return b, nil
}
