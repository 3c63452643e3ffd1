package ldaptest

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// TestServer checks the harness itself: the service bind over ldap://, StartTLS and
// ldaps:// with the test CA, the connection counter, and Kill/Restart on the same port.
func TestServer(t *testing.T) {
	s := Start(t)
	pem, err := os.ReadFile(s.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tc := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
	dialer := ldap.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second})

	bind := func(name string, c *ldap.Conn) {
		t.Helper()
		c.SetTimeout(2 * time.Second)
		if err := c.Bind(s.BindDN(), s.BindPassword()); err != nil {
			t.Fatalf("%s: bind: %v", name, err)
		}
	}
	c, err := ldap.DialURL(s.URL(), dialer)
	if err != nil {
		t.Fatal(err)
	}
	bind("ldap", c)
	if n, err := s.Connections(); err != nil || n != 1 {
		t.Errorf("Connections() = %d, %v; want 1", n, err)
	}
	if err := c.StartTLS(tc); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	bind("starttls", c)
	c.Close()

	c, err = ldap.DialURL(s.LDAPSURL(), dialer, ldap.DialWithTLSConfig(tc))
	if err != nil {
		t.Fatalf("ldaps: %v", err)
	}
	bind("ldaps", c)
	c.Close()

	s.Kill()
	if _, err := ldap.DialURL(s.URL(), dialer); err == nil {
		t.Fatal("dial after Kill succeeded")
	}
	s.Restart()
	c, err = ldap.DialURL(s.URL(), dialer)
	if err != nil {
		t.Fatalf("dial after Restart: %v", err)
	}
	bind("restarted", c)
	c.Close()
}
