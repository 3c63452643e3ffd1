package providers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// MergeInto sets key in the JSON object doc to the JSON value v, replacing any value the
// key had: how an enrichment step (lookup, userinfo, rest) adds its answer to the
// identity document. The other members are kept byte for byte; their order is not. HTML
// characters are not escaped: the document is data, never markup.
func MergeInto(doc []byte, key string, v []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, fmt.Errorf("identity document: %w", err)
	}
	if m == nil {
		return nil, errors.New("identity document is not a JSON object")
	}
	if !json.Valid(v) {
		return nil, errors.New("merged value is not JSON")
	}
	m[key] = json.RawMessage(v)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
