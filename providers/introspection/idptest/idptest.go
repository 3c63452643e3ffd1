// Package idptest provides stand-ins for an IdP's introspection and userinfo endpoints in
// tests: httptest servers that count the requests they receive (so caching tests can
// count upstream hits through the chain), canned answers, the faults every client must
// survive, and a helper that builds a provider section from YAML text.
package idptest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/idbridge/idbridge/configs"
)

// Server is an httptest server that counts its requests and keeps the last one's form
// and headers for assertions.
type Server struct {
	*httptest.Server
	hits atomic.Int64

	mu      sync.Mutex
	handler http.Handler
	last    *http.Request
	form    map[string][]string
}

// New starts a server answering with h; it is closed when t ends.
func New(t testing.TB, h http.Handler) *Server {
	t.Helper()
	s := &Server{handler: h}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	_ = r.ParseForm()
	s.mu.Lock()
	s.last = r.Clone(r.Context())
	s.form = r.PostForm
	h := s.handler
	s.mu.Unlock()
	h.ServeHTTP(w, r)
}

// Hits is how many requests the server has received.
func (s *Server) Hits() int64 { return s.hits.Load() }

// SetHandler changes the answer (for instance: active, then revoked).
func (s *Server) SetHandler(h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler = h
}

// LastHeader returns a header of the last request.
func (s *Server) LastHeader(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		return ""
	}
	return s.last.Header.Get(name)
}

// LastForm returns a form (body) value of the last request.
func (s *Server) LastForm(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.form == nil {
		return ""
	}
	if v := s.form[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// JSON answers 200 with v encoded as application/json.
func JSON(v any) http.Handler {
	body, err := json.Marshal(v)
	if err != nil {
		panic(err) // a test's own literal
	}
	return Raw(http.StatusOK, "application/json", body)
}

// Raw answers status with exactly body and contentType.
func Raw(status int, contentType string, body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	})
}

// Active answers an active introspection response with claims (active is set) and an
// exp an hour ahead unless claims has one.
func Active(claims map[string]any) http.Handler {
	doc := map[string]any{"active": true, "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		doc[k] = v
	}
	return JSON(doc)
}

// Inactive answers {"active": false}.
func Inactive() http.Handler { return JSON(map[string]any{"active": false}) }

// Fault is an answer no client may take for acceptance.
type Fault struct {
	Name    string
	Handler http.Handler
	// IntrospectionOnly marks a fault only in an introspection answer ("active" as a
	// string is a fine userinfo claim).
	IntrospectionOnly bool
}

// HugeBytes is the size of the HugeBody fault: far past any answer limit.
const HugeBytes = 10 << 20

// Faults are the broken answers of an endpoint: a 500, a hang past any timeout, malformed
// JSON, a 10 MB body, "active" as the string "true", a wrong content type, an empty 200,
// a redirect. Each must end as "unavailable".
func Faults() []Fault {
	return []Fault{
		{"status 500", Raw(http.StatusInternalServerError, "application/json", []byte(`{"error":"server_error"}`)), false},
		{"status 503", Raw(http.StatusServiceUnavailable, "text/plain", []byte("down")), false},
		{"timeout", Hang(), false},
		{"malformed JSON", Raw(http.StatusOK, "application/json", []byte(`{"active":true,"sub":`)), false},
		{"not an object", Raw(http.StatusOK, "application/json", []byte(`[{"active":true}]`)), false},
		{"10 MB body", HugeBody(), false},
		{"active as a string", Raw(http.StatusOK, "application/json", []byte(`{"active":"true","sub":"u","email":"e@example.com"}`)), true},
		{"active missing", Raw(http.StatusOK, "application/json", []byte(`{"sub":"u","email":"e@example.com"}`)), true},
		{"wrong content type", Raw(http.StatusOK, "text/html", []byte(`{"active":true,"sub":"u","email":"e@example.com"}`)), false},
		{"empty 200", Raw(http.StatusOK, "application/json", nil), false},
		{"redirect", http.RedirectHandler("http://127.0.0.1:1/elsewhere", http.StatusTemporaryRedirect), false},
	}
}

// Hang answers only when the client gives up (or after a minute).
func Hang() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	})
}

// HugeBody streams a HugeBytes JSON body that would be an active answer if read whole.
func HugeBody() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"active":true,"email":"e@example.com","pad":"`))
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for n := 0; n < HugeBytes; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return // the client stopped reading, as it should
			}
		}
		_, _ = w.Write([]byte(`"}`))
	})
}

// Section builds a provider section from the YAML text of its own keys (without name and
// type), as the config loader hands it to a factory. File is "test.yaml", Path
// "providers[0]".
func Section(t testing.TB, name, typ, text string) *configs.ProviderSection {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(strings.TrimSpace(text)+"\n"), &doc); err != nil {
		t.Fatalf("idptest: section YAML: %v", err)
	}
	node := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: 1}
	if len(doc.Content) == 1 {
		node = doc.Content[0]
	}
	return &configs.ProviderSection{
		Name: name, Type: typ, File: "test.yaml", Path: "providers[0]", Line: 1,
		Node: node, Fingerprint: "test",
	}
}
