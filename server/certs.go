package server

import (
	"crypto/tls"
	"errors"
	"sync/atomic"

	"github.com/idbridge/idbridge/configs"
	"github.com/idbridge/idbridge/outbound"
)

// maxCertFileBytes bounds each of the listener's certificate and key files: a chain is a
// few KiB, and a path that names /dev/zero must not be read to the end.
const maxCertFileBytes = 1 << 20

// LoadKeyPair reads the main listener's certificate and key (server.tls) the way serve
// does, at start and on every reload; check asks it too, so that the two agree. A file
// that cannot be read is an *outbound.FileError naming its key ("cert_file" or
// "key_file"); a pair that does not parse or match is a plain error.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	var pems [2][]byte
	var errs []error
	for i, f := range []struct{ key, path string }{{"cert_file", certFile}, {"key_file", keyFile}} {
		data, err := configs.ReadFileLimited(f.path, maxCertFileBytes)
		if err != nil {
			errs = append(errs, &outbound.FileError{Key: f.key, Err: err})
		}
		pems[i] = data
	}
	if len(errs) > 0 {
		return tls.Certificate{}, errors.Join(errs...)
	}
	return tls.X509KeyPair(pems[0], pems[1])
}

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
	c, err := LoadKeyPair(r.certFile, r.keyFile)
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
