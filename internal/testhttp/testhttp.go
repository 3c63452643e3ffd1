// Package testhttp lets a test reach its httptest servers without sockets, so that the
// code under test can run inside a testing/synctest bubble: there, a goroutine waiting
// on a socket is not durably blocked and would keep the bubble's clock from moving.
package testhttp

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
)

// InProcess is an http.RoundTripper that answers each request with the handler of the
// server its URL's host names; a host it does not know is an error.
type InProcess map[string]http.Handler

// Serve adds srv's handler under srv's host and returns m.
func (m InProcess) Serve(srv *httptest.Server) InProcess {
	u, err := url.Parse(srv.URL)
	if err != nil {
		panic(err)
	}
	m[u.Host] = srv.Config.Handler
	return m
}

// RoundTrip serves r and records the answer. Like a real transport, it gives up when
// r's context ends, leaving the handler to finish on its own.
func (m InProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	h, ok := m[r.URL.Host]
	if !ok {
		return nil, fmt.Errorf("testhttp: no server at %s", r.URL.Host)
	}
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(rec, r)
	}()
	select {
	case <-done:
		return rec.Result(), nil
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
}

// Client is an http.Client over InProcess{} serving each of servers.
func Client(servers ...*httptest.Server) *http.Client {
	m := InProcess{}
	for _, s := range servers {
		m.Serve(s)
	}
	return &http.Client{Transport: m}
}
