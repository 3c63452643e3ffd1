// Package ldaptest starts a throwaway OpenLDAP slapd for tests and benchmarks: a temporary
// directory, a generated slapd.conf with back_mdb and the monitor backend, free loopback
// ports for ldap:// and ldaps://, a test CA and server certificate for 127.0.0.1, and the
// entries of test/testdata/ldap/*.ldif loaded with slapadd.
//
// It is a regular package (not a _test file) so that end-to-end tests and benchmarks
// elsewhere in the module can use the same server. Where slapd is not installed, Start
// skips the test, unless IDBRIDGE_REQUIRE_SERVERS=1 (set by CI), which makes it fail.
package ldaptest

import (
	"github.com/idbridge/idbridge/internal/testenv"

	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// The directory's fixed names, matching test/testdata/ldap/directory.ldif.
const (
	BaseDN       = "dc=example,dc=com"
	PeopleDN     = "ou=people,dc=example,dc=com"
	BindDN       = "cn=idbridge,ou=services,dc=example,dc=com"
	BindPassword = "idbridge-secret"

	rootDN = "cn=admin,dc=example,dc=com"
	rootPW = "admin-secret"
)

// RequireEnv names the variable that turns a missing slapd from a skip into a failure.
const RequireEnv = testenv.RequireEnv

// startTimeout bounds how long slapd may take to accept connections; it normally takes
// a few tens of milliseconds.
const startTimeout = 10 * time.Second

// Server is one running slapd.
type Server struct {
	t       testing.TB
	slapd   string
	dir     string
	conf    string
	port    int
	tlsPort int
	caFile  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited

	// monMu guards mon, the one connection Connections counts with: a connection per
	// call would leave the previous one, closed but not yet reaped by slapd, in the count.
	monMu sync.Mutex
	mon   *ldap.Conn
}

// Start starts a slapd loaded with test/testdata/ldap/*.ldif and stops it when the test
// ends. It skips the test when slapd is not installed (fails under IDBRIDGE_REQUIRE_SERVERS=1).
func Start(t testing.TB) *Server {
	t.Helper()
	bins, err := findTools()
	if err != nil {
		testenv.SkipOrFail(t, "ldaptest: %v; install slapd and ldap-utils to run this test", err)
	}
	data, err := testdataDir()
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	ldifs, err := filepath.Glob(filepath.Join(data, "*.ldif"))
	if err != nil || len(ldifs) == 0 {
		t.Fatalf("ldaptest: no LDIF files in %s", data)
	}

	s := &Server{t: t, slapd: bins.slapd, dir: t.TempDir()}
	if err := os.Mkdir(filepath.Join(s.dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	s.caFile = filepath.Join(s.dir, "ca.pem")
	certFile, keyFile := filepath.Join(s.dir, "server.pem"), filepath.Join(s.dir, "server.key")
	if err := writeCerts(s.caFile, certFile, keyFile); err != nil {
		t.Fatalf("ldaptest: certificates: %v", err)
	}
	s.port, s.tlsPort = freePort(t), freePort(t)

	s.conf = filepath.Join(s.dir, "slapd.conf")
	conf := slapdConf(s.dir, bins.modulePath, filepath.Join(data, "idbridge-test.schema"), s.caFile, certFile, keyFile)
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range ldifs {
		out, err := exec.Command(bins.slapadd, "-q", "-f", s.conf, "-b", BaseDN, "-l", f).CombinedOutput()
		if err != nil {
			t.Fatalf("ldaptest: slapadd %s: %v\n%s", filepath.Base(f), err, out)
		}
	}
	if err := s.start(); err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// URL is the plain ldap:// address (StartTLS is available on it).
func (s *Server) URL() string { return "ldap://127.0.0.1:" + strconv.Itoa(s.port) }

// LDAPSURL is the ldaps:// address.
func (s *Server) LDAPSURL() string { return "ldaps://127.0.0.1:" + strconv.Itoa(s.tlsPort) }

// CAFile is the PEM file of the CA that signed the server's certificate (for 127.0.0.1).
func (s *Server) CAFile() string { return s.caFile }

// BindDN and BindPassword are the service account's credentials.
func (s *Server) BindDN() string       { return BindDN }
func (s *Server) BindPassword() string { return BindPassword }

// Stop terminates slapd gracefully and waits for it. Stopping twice is harmless.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill ends slapd abruptly (SIGKILL), as a crash would: clients see their connections
// reset and new ones refused until Restart.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Restart starts slapd again on the same ports with the same data, stopping it first if
// it is running. It returns once the server accepts connections.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("ldaptest: restart: %v", err)
	}
}

// Connections counts the client connections slapd has open right now, not counting the
// one used to ask: the monitor backend's cn=Current,cn=Connections,cn=Monitor.
func (s *Server) Connections() (int, error) {
	s.monMu.Lock()
	defer s.monMu.Unlock()
	for attempt := 0; ; attempt++ {
		n, err := s.countConnections()
		if err == nil || attempt == 1 {
			return n, err
		}
		// The monitor connection died (a restart): dial it once more.
		if s.mon != nil {
			s.mon.Close()
			s.mon = nil
		}
	}
}

func (s *Server) countConnections() (int, error) {
	if s.mon == nil {
		c, err := ldap.DialURL(s.URL(), ldap.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}))
		if err != nil {
			return 0, err
		}
		c.SetTimeout(2 * time.Second)
		s.mon = c
	}
	res, err := s.mon.Search(ldap.NewSearchRequest("cn=Current,cn=Connections,cn=Monitor",
		ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 2, false,
		"(objectClass=*)", []string{"monitorCounter"}, nil))
	if err != nil {
		return 0, err
	}
	if len(res.Entries) != 1 {
		return 0, errors.New("ldaptest: no monitor entry")
	}
	n, err := strconv.Atoi(res.Entries[0].GetAttributeValue("monitorCounter"))
	if err != nil {
		return 0, fmt.Errorf("ldaptest: monitorCounter: %w", err)
	}
	return n - 1, nil // not counting the monitor connection itself
}

// UntrustedCAFile writes a fresh CA certificate that signed nothing the server presents,
// for tests that a wrong CA is refused.
func UntrustedCAFile(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	ca := filepath.Join(dir, "other-ca.pem")
	if err := writeCerts(ca, filepath.Join(dir, "unused.pem"), filepath.Join(dir, "unused.key")); err != nil {
		t.Fatal(err)
	}
	return ca
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	urls := s.URL() + "/ " + s.LDAPSURL() + "/"
	// -d 0 keeps slapd in the foreground, so that it is our child and dies with us.
	cmd := exec.Command(s.slapd, "-d", "0", "-f", s.conf, "-h", urls)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start slapd: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(startTimeout)
	for _, port := range []int{s.port, s.tlsPort} {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		for {
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-done:
				return fmt.Errorf("slapd exited at start:\n%s", out.String())
			default:
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				<-done
				return fmt.Errorf("slapd did not listen on %s within %v:\n%s", addr, startTimeout, out.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

func (s *Server) signal(sig syscall.Signal) {
	s.monMu.Lock()
	if s.mon != nil {
		s.mon.Close()
		s.mon = nil
	}
	s.monMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(sig)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	s.cmd = nil
}

type tools struct{ slapd, slapadd, modulePath string }

func findTools() (tools, error) {
	var b tools
	var err error
	if b.slapd, err = findBin("slapd"); err != nil {
		return b, err
	}
	if b.slapadd, err = findBin("slapadd"); err != nil {
		return b, err
	}
	for _, dir := range []string{"/usr/lib/ldap", "/usr/lib/openldap", "/usr/lib64/openldap", "/usr/libexec/openldap"} {
		if _, err := os.Stat(filepath.Join(dir, "back_mdb.so")); err == nil {
			b.modulePath = dir
			break
		}
	}
	// An empty modulePath means back_mdb is built in, or missing: slapd will tell.
	for _, f := range []string{"core", "cosine", "inetorgperson", "nis"} {
		if _, err := os.Stat(filepath.Join(schemaDir, f+".schema")); err != nil {
			return b, fmt.Errorf("schema %s.schema not found in %s", f, schemaDir)
		}
	}
	return b, nil
}

const schemaDir = "/etc/ldap/schema"

func findBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/libexec"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH or in /usr/sbin", name)
}

// testdataDir finds test/testdata/ldap from the working directory of the test, which is
// its package's folder somewhere below the module root.
func testdataDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "test", "testdata", "ldap"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("module root (go.mod) not found above the working directory")
		}
		dir = parent
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("ldaptest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func slapdConf(dir, modulePath, testSchema, caFile, certFile, keyFile string) string {
	var b strings.Builder
	for _, f := range []string{"core", "cosine", "inetorgperson", "nis"} {
		fmt.Fprintf(&b, "include %s\n", filepath.Join(schemaDir, f+".schema"))
	}
	fmt.Fprintf(&b, "include %s\n", testSchema)
	fmt.Fprintf(&b, "pidfile %s\nargsfile %s\n", filepath.Join(dir, "slapd.pid"), filepath.Join(dir, "slapd.args"))
	if modulePath != "" {
		fmt.Fprintf(&b, "modulepath %s\nmoduleload back_mdb\n", modulePath)
	}
	fmt.Fprintf(&b, "TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n", caFile, certFile, keyFile)
	// The service account may read everything but passwords; anonymous users may only bind.
	fmt.Fprintf(&b, `
database mdb
suffix "%s"
rootdn "%s"
rootpw %s
directory %s
maxsize 16777216
access to attrs=userPassword
	by anonymous auth
	by * none
access to *
	by dn.exact="%s" read
	by * none

database monitor
access to dn.subtree="cn=Monitor"
	by * read
`, BaseDN, rootDN, rootPW, filepath.Join(dir, "db"), BindDN)
	return b.String()
}

// writeCerts writes a fresh CA and a server certificate for 127.0.0.1 signed by it.
func writeCerts(caFile, certFile, keyFile string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "idbridge ldaptest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writePEM(caFile, "CERTIFICATE", caDER, 0o644); err != nil {
		return err
	}
	if err := writePEM(certFile, "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return writePEM(keyFile, "PRIVATE KEY", keyDER, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}
