package server

import (
	"crypto/tls"
	"sync/atomic"
)

// certReloader serves the main listener's certificate and swaps it on reload, so that a
// renewed certificate needs no restart.
type certReloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the files again; on error the previous certificate keeps serving.
func (r *certReloader) Reload() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	r.cert.Store(&c)
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// ReloadTLS re-reads the main listener's certificate and key (on SIGHUP).
func (s *Server) ReloadTLS() error {
	c := s.certs.Load()
	if c == nil {
		return nil
	}
	return c.Reload()
}
