package test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestRequestTimeoutBoundsSlowBackends: an introspection endpoint that never answers
// (within its own 30 s timeout) must not hold the caller: server.request_timeout (1 s)
// ends the request with 503. A client that gave up after 10 s would fail the test, so
// no tight timing is asserted.
func TestRequestTimeoutBoundsSlowBackends(t *testing.T) {
	release := make(chan struct{})
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		case <-time.After(20 * time.Second):
		}
	}))
	t.Cleanup(idp.Close)
	t.Cleanup(func() { close(release) })
	br := startBridge(t, fmt.Sprintf(`
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  request_timeout: 1s
providers:
  - name: slow
    type: introspection
    endpoint: %s
    client_id: idbridge
    client_secret: s
    client_ids: [app]
    timeout: 30s
mapping:
  email: [{path: email}]
`, idp.URL))
	client := &http.Client{Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", br.URL+"/v1/user-detail", nil)
	req.Header.Set("Authorization", "Bearer opaque-token")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("request_timeout did not end the request: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d, want 503 with Retry-After", resp.StatusCode)
	}
}
