package outbound

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/idbridge/idbridge/configs"
)

func TestRedirectsAreRefused(t *testing.T) {
	var followed bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed = true }))
	defer target.Close()
	for _, status := range []int{301, 302, 303, 307, 308} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/jwks?code=SECRET", status)
		}))
		c, err := New(configs.Outbound{})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Get(srv.URL)
		srv.Close()
		var re *RedirectError
		if resp != nil || !errors.As(err, &re) || re.Status != status || re.Host != "127.0.0.1" {
			t.Fatalf("%d: resp %v, err %v", status, resp, err)
		}
		if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "/jwks") {
			t.Errorf("%d: the error shows the Location's path or query: %v", status, err)
		}
	}
	if followed {
		t.Error("a redirect was followed")
	}
	// A client handed in by a caller gets the same policy.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer srv.Close()
	var re *RedirectError
	if _, err := NoRedirects(srv.Client()).Get(srv.URL); !errors.As(err, &re) || re.Host != "" {
		t.Errorf("relative redirect: %v", err)
	}
	if _, err := NoRedirects(nil).Get(srv.URL); !errors.As(err, &re) {
		t.Errorf("nil client: %v", err)
	}
}

func TestNotModifiedIsAnAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotModified) }))
	defer srv.Close()
	resp, err := NoRedirects(nil).Get(srv.URL)
	if err != nil || resp.StatusCode != http.StatusNotModified {
		t.Fatalf("304: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestNewErrors(t *testing.T) {
	if _, err := New(configs.Outbound{CAFile: "/nonexistent/ca.pem"}); err == nil || !strings.Contains(err.Error(), "outbound.ca_file") {
		t.Errorf("missing CA file: %v", err)
	}
	if _, err := New(configs.Outbound{ClientCertFile: "/nonexistent/c.pem", ClientKeyFile: "/nonexistent/k.pem"}); err == nil || !strings.Contains(err.Error(), "outbound.client_cert_file") {
		t.Errorf("missing client certificate: %v", err)
	}
}
