// Package outbound builds the one HTTP client every outbound call of idbridge goes
// through (identity providers, key sets, discovery, enrichment services, Spotnana), and
// holds its one redirect policy: a redirect is never followed.
//
// Why never: the requests carry a user's token, a client secret or a signed assertion,
// and an upstream (or whoever answers in its name) that redirects would send them, or
// our trust in the answer, to another host; a JWKS or discovery redirect could also
// point at idbridge's own admin listener. A redirect is therefore an outage of that
// upstream (callers answer 503 or keep the last good keys), reported with the target's
// host only: a Location may carry a token or a code in its query.
package outbound

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/idbridge/idbridge/configs"
)

// RedirectError is returned by a client of this package for any 3xx answer (but 304,
// which answers a conditional request and moves nothing). It names the Location's host,
// never its path or query.
type RedirectError struct {
	Status int    // the HTTP status, 301…308
	Host   string // the Location's host; "" when it has none (a relative Location)
}

func (e *RedirectError) Error() string {
	host := e.Host
	if host == "" {
		host = "the same host"
	}
	return fmt.Sprintf("redirect (%d) to %s refused: upstream redirects are never followed", e.Status, host)
}

// New builds the outbound client from the outbound section: system roots plus an extra
// CA, an optional client certificate, proxies from the environment, and no redirects.
// Deadlines are set per call by whoever makes it; Timeout is only a last-resort bound.
func New(cfg configs.Outbound) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	tlsCfg, err := TLSConfig(cfg.CAFile, cfg.ClientCertFile, cfg.ClientKeyFile)
	if err != nil {
		return nil, fmt.Errorf("outbound.%w", err)
	}
	tr.TLSClientConfig = tlsCfg
	tr.Proxy = http.ProxyFromEnvironment
	return NoRedirects(&http.Client{Transport: tr, Timeout: time.Minute}), nil
}

// NoRedirects returns a copy of c (nil: a default client) that never follows a
// redirect: a 3xx answer (but 304) becomes a *RedirectError from Do, with the
// body drained and closed. Every provider applies it to the client it is given, so that
// the policy holds whatever client a caller or a test passes.
func NoRedirects(c *http.Client) *http.Client {
	var cp http.Client
	if c != nil {
		cp = *c
	}
	if _, ok := cp.Transport.(refuseRedirects); !ok {
		next := cp.Transport
		if next == nil {
			next = http.DefaultTransport
		}
		cp.Transport = refuseRedirects{next}
	}
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cp
}

// refuseRedirects turns a redirect answer into an error at the transport, so that no
// caller can mistake it for an answer.
type refuseRedirects struct{ next http.RoundTripper }

func (t refuseRedirects) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.StatusCode < 300 || resp.StatusCode > 399 || resp.StatusCode == http.StatusNotModified {
		return resp, err
	}
	host := ""
	if u, perr := url.Parse(resp.Header.Get("Location")); perr == nil {
		host = u.Hostname()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return nil, &RedirectError{Status: resp.StatusCode, Host: host}
}

// CloseIdleConnections closes the idle connections of c's transport, through the
// redirect guard.
func (t refuseRedirects) CloseIdleConnections() {
	if ci, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// maxPEMBytes bounds each PEM file read here (CA bundles, client certificates and keys):
// a system CA bundle is about 200 KiB; /dev/zero named by mistake must not be read to
// the end.
const maxPEMBytes = 4 << 20

// FileError says which key's file could not be used: "ca_file", "client_cert_file" or
// "client_key_file" here, "cert_file" or "key_file" for the listener's (server.
// LoadKeyPair). Err never carries a key's content.
type FileError struct {
	Key string
	Err error
}

func (e *FileError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// TLSConfig builds a client TLS configuration (TLS 1.2 or later): the system roots plus
// the PEM certificates of caFile ("" adds none), and the client certificate of certFile
// ("" presents none), whose key is a path or, when a ${file:} reference put it there,
// the PEM itself. Errors are *FileError, naming the key they are about. Redis (cache.redis) uses it too.
func TLSConfig(caFile, certFile, key string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := configs.ReadFileLimited(caFile, maxPEMBytes)
		if err != nil {
			return nil, &FileError{"ca_file", err}
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &FileError{"ca_file", fmt.Errorf("no PEM certificate in %s", caFile)}
		}
		c.RootCAs = pool
	}
	if certFile != "" {
		certPEM, err := configs.ReadFileLimited(certFile, maxPEMBytes)
		if err != nil {
			return nil, &FileError{"client_cert_file", err}
		}
		keyPEM := []byte(key)
		if !strings.Contains(key, "-----BEGIN") {
			if keyPEM, err = configs.ReadFileLimited(key, maxPEMBytes); err != nil {
				return nil, &FileError{"client_key_file", errors.New("cannot read the file")}
			}
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, &FileError{"client_cert_file", errors.New("the certificate and client_key_file do not form a key pair")}
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
