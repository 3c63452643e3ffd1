package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/idbridge/idbridge/demoissuer"
)

// introspector is a fake RFC 7662 endpoint that counts the token lookups it answers
// (health probes, which carry no token, are not counted): the count of upstream hits
// is how the tests see caching from outside.
type introspector struct {
	*httptest.Server
	lookups atomic.Int64
}

// newIntrospector answers tokens starting with "good-" as active for alice (with an
// alt_email the reload tests map to), and any other token as inactive.
func newIntrospector(t *testing.T) *introspector {
	t.Helper()
	in := &introspector{}
	in.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		tok := r.PostForm.Get("token")
		w.Header().Set("Content-Type", "application/json")
		if tok == "" {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"invalid_request"}`))
			return
		}
		in.lookups.Add(1)
		if !strings.HasPrefix(tok, "good-") {
			w.Write([]byte(`{"active":false}`))
			return
		}
		json.NewEncoder(w).Encode(map[string]any{
			"active": true, "sub": "alice", "client_id": "app", "email": "alice@example.com",
			"alt_email": "alice.alt@example.com", "exp": time.Now().Add(time.Hour).Unix(),
		})
	}))
	t.Cleanup(in.Close)
	return in
}

// introspectionConfig is a bridge with one introspection provider. emailPath is the
// mapping's one path; providerExtra and top are spliced in the provider and at the top.
func introspectionConfig(endpoint, emailPath, providerExtra, top string) string {
	return fmt.Sprintf(`
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
log: {level: debug, format: json}
providers:
  - name: corp-intro
    type: introspection
    endpoint: %s
    client_id: idbridge
    client_secret: s3cr3t-client-secret
    client_ids: [app]
%s
mapping:
  email:
    - path: %s
%s
`, endpoint, providerExtra, emailPath, top)
}

// scrape fetches and parses the admin listener's /metrics.
func scrape(t *testing.T, br *bridge) map[string]*dto.MetricFamily {
	t.Helper()
	r := do(t, "GET", br.Admin+"/metrics", nil)
	if r.Status != 200 {
		t.Fatalf("/metrics: %d", r.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(r.Body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, r.Body)
	}
	return fams
}

// sample returns the value of the series name{labels} (counter, gauge, or a
// histogram's count), and whether it exists.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if got[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// eventually polls cond until it holds, failing after a generous bound. It bounds a
// wait; it never asserts how long something took.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *bridge) hup() {
	b.t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bridge) rewrite(yaml string) {
	b.t.Helper()
	if err := os.WriteFile(b.Config, []byte(yaml), 0o600); err != nil {
		b.t.Fatal(err)
	}
}

func emailOf(t *testing.T, r response) string {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	var v struct {
		User struct {
			Email string `json:"email"`
		} `json:"user"`
	}
	json.Unmarshal([]byte(r.Body), &v)
	return v.User.Email
}

func TestMetrics(t *testing.T) {
	is := newIssuer(t)
	br := startBridge(t, jwtConfig(is.URL(), ""))
	good := mint(t, is, nil)
	url := br.URL + "/v1/user-detail"
	for i := 0; i < 3; i++ {
		if r := do(t, "GET", url, nil, bearer(good)); r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	}
	if r := do(t, "GET", url, nil, bearer(mint(t, is, map[string]any{"aud": "other"}))); r.Status != 401 {
		t.Fatalf("wrong audience: %d", r.Status)
	}
	br.hup()
	eventually(t, "the reload is counted and the new provider has its keys", func() bool {
		fams := scrape(t, br)
		reloads, _ := sample(fams, "idbridge_config_reloads_total", "result", "ok")
		loads, _ := sample(fams, "idbridge_jwks_refreshes_total", "provider", "corp", "result", "ok")
		return reloads == 1 && loads >= 2
	})

	fams := scrape(t, br)
	for _, tc := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"idbridge_http_requests_total", []string{"route", "user_detail", "code", "200"}, 3},
		{"idbridge_http_requests_total", []string{"route", "user_detail", "code", "401"}, 1},
		{"idbridge_http_request_duration_seconds", []string{"route", "user_detail", "code", "200"}, 3},
		{"idbridge_provider_outcomes_total", []string{"provider", "corp", "outcome", "accepted"}, 3},
		{"idbridge_provider_outcomes_total", []string{"provider", "corp", "outcome", "invalid"}, 1},
		{"idbridge_provider_duration_seconds", []string{"provider", "corp", "outcome", "accepted"}, 1},
		{"idbridge_cache_requests_total", []string{"kind", "identity", "result", "hit"}, 2},
		{"idbridge_cache_requests_total", []string{"kind", "identity", "result", "miss"}, 1},
		{"idbridge_jwks_refreshes_total", []string{"provider", "corp", "result", "ok"}, 2}, // start + reload
		{"idbridge_jwks_refreshes_total", []string{"provider", "corp", "result", "error"}, 0},
		{"idbridge_config_reloads_total", []string{"result", "ok"}, 1},
		{"idbridge_config_reloads_total", []string{"result", "error"}, 0},
		{"idbridge_build_info", []string{"version", binaryVersion(t)}, 1},
		{"go_goroutines", nil, 1},
		{"process_resident_memory_bytes", nil, 1},
	} {
		v, ok := sample(fams, tc.name, tc.labels...)
		if !ok || v < tc.min {
			t.Errorf("%s%v = %v (present %v), want >= %v", tc.name, tc.labels, v, ok, tc.min)
		}
	}
	if _, ok := fams["idbridge_cache_redis_degraded"]; ok {
		t.Error("the memory backend exports a Redis gauge")
	}
}

func TestReadyzAndPurge(t *testing.T) {
	idp := newIntrospector(t)
	br := startBridge(t, introspectionConfig(idp.URL, "email", "", `
spotnana:
  token_url: https://127.0.0.1:1/v2/auth/oauth2-token
  client_id: c
  client_secret: s
`))
	r := do(t, "GET", br.Admin+"/readyz", nil)
	if r.Status != 200 {
		t.Fatalf("/readyz: %d %s", r.Status, r.Body)
	}
	deps := r.JSON(t)["dependencies"].(map[string]any)
	for _, k := range []string{"provider:corp-intro", "cache", "spotnana"} {
		if _, ok := deps[k]; !ok {
			t.Errorf("/readyz lacks %q: %s", k, r.Body)
		}
	}
	if ok := deps["provider:corp-intro"].(map[string]any)["ok"]; ok != true {
		t.Errorf("introspection endpoint reported down: %s", r.Body)
	}

	url := br.URL + "/v1/user-detail"
	get := func(tok string) {
		t.Helper()
		if email := emailOf(t, do(t, "GET", url, nil, bearer(tok))); email != "alice@example.com" {
			t.Fatalf("email %q", email)
		}
	}
	get("good-1")
	get("good-1")
	if n := idp.lookups.Load(); n != 1 {
		t.Fatalf("lookups = %d before purge, want 1 (the second call is a cache hit)", n)
	}
	if r := do(t, "POST", br.Admin+"/admin/cache/purge?provider=nope", nil); r.Status != 404 {
		t.Fatalf("purge of an unknown provider: %d", r.Status)
	}
	r = do(t, "POST", br.Admin+"/admin/cache/purge?provider=corp-intro", nil)
	if r.Status != 200 || r.JSON(t)["purged"].(float64) < 1 {
		t.Fatalf("purge: %d %s", r.Status, r.Body)
	}
	get("good-1")
	if n := idp.lookups.Load(); n != 2 {
		t.Fatalf("lookups = %d after purge, want 2", n)
	}
	if r := do(t, "POST", br.Admin+"/admin/cache/purge", nil); r.Status != 200 {
		t.Fatalf("purge all: %d", r.Status)
	}
	get("good-1")
	if n := idp.lookups.Load(); n != 3 {
		t.Fatalf("lookups = %d after purging all, want 3", n)
	}
	if r := do(t, "POST", br.URL+"/admin/cache/purge", nil); r.Status != 404 {
		t.Fatalf("purge on the public listener: %d", r.Status)
	}
}

func TestReload(t *testing.T) {
	idp := newIntrospector(t)
	br := startBridge(t, introspectionConfig(idp.URL, "email", "", ""))
	url := br.URL + "/v1/user-detail"
	if e := emailOf(t, do(t, "GET", url, nil, bearer("good-a"))); e != "alice@example.com" {
		t.Fatalf("before reload: %q", e)
	}

	// A good config changes the mapping; the provider is unchanged, so its cache survives.
	br.rewrite(introspectionConfig(idp.URL, "alt_email", "", ""))
	br.hup()
	eventually(t, "the new mapping answers", func() bool {
		return emailOf(t, do(t, "GET", url, nil, bearer("good-a"))) == "alice.alt@example.com"
	})
	if n := idp.lookups.Load(); n != 1 {
		t.Errorf("lookups = %d: the reload dropped the cache of an unchanged provider", n)
	}

	// A bad config is refused with every error, and the previous one keeps serving.
	bad := introspectionConfig(idp.URL, `""`, "    bogus_key: 1\n", "unknown_section: {}\n")
	br.rewrite(bad)
	br.hup()
	eventually(t, "the refusal is logged", func() bool {
		return strings.Contains(br.Logs(), "config reload refused")
	})
	logs := br.Logs()
	for _, want := range []string{"unknown_section", "bogus_key", "mapping.email[0]"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the refusal does not name %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "s3cr3t-client-secret") {
		t.Error("the log shows the client secret")
	}
	if e := emailOf(t, do(t, "GET", url, nil, bearer("good-a"))); e != "alice.alt@example.com" {
		t.Fatalf("after a bad reload: %q", e)
	}
	fams := scrape(t, br)
	if v, _ := sample(fams, "idbridge_config_reloads_total", "result", "error"); v != 1 {
		t.Errorf("reload errors = %v, want 1", v)
	}
	if v, _ := sample(fams, "idbridge_config_reloads_total", "result", "ok"); v != 1 {
		t.Errorf("reload successes = %v, want 1", v)
	}
}

// TestReloadUnderLoad reloads repeatedly while clients keep calling, alternating two
// configs whose providers differ (so providers are rebuilt and the old ones closed):
// not one request may fail.
func TestReloadUnderLoad(t *testing.T) {
	idp := newIntrospector(t)
	configs := []string{
		introspectionConfig(idp.URL, "email", "    timeout: 5s\n", ""),
		introspectionConfig(idp.URL, "alt_email", "    timeout: 6s\n", ""),
	}
	br := startBridge(t, configs[0])
	url := br.URL + "/v1/user-detail"

	const reloads, minRequests, workers = 6, 500, 8
	var sent, failed atomic.Int64
	var reloadsDone atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstFailure string
	client := &http.Client{Timeout: 30 * time.Second}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if reloadsDone.Load() && sent.Load() >= minRequests {
					return
				}
				n := sent.Add(1)
				// Every other request carries a new token, so that some requests are in
				// flight at the introspection endpoint while a swap happens.
				tok := "good-shared"
				if n%2 == 0 {
					tok = fmt.Sprintf("good-%d", n)
				}
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				status := 0
				if err == nil {
					status = resp.StatusCode
					resp.Body.Close()
				}
				if status != 200 {
					failed.Add(1)
					mu.Lock()
					if firstFailure == "" {
						firstFailure = fmt.Sprintf("request %d: status %d, error %v", n, status, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 1; i <= reloads; i++ {
		br.rewrite(configs[i%2])
		br.hup()
		eventually(t, fmt.Sprintf("reload %d", i), func() bool {
			v, _ := sample(scrape(t, br), "idbridge_config_reloads_total", "result", "ok")
			return v >= float64(i)
		})
	}
	reloadsDone.Store(true)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed across %d reloads; first: %s", failed.Load(), sent.Load(), reloads, firstFailure)
	}
	t.Logf("%d requests, %d reloads, none failed", sent.Load(), reloads)
}

// selfSigned writes a self-signed ECDSA certificate for 127.0.0.1 and its key under dir,
// and returns the certificate.
func selfSigned(t *testing.T, certFile, keyFile string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "idbridge test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func TestTLS(t *testing.T) {
	is := newIssuer(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := selfSigned(t, certFile, keyFile, 1)
	cfg := strings.Replace(jwtConfig(is.URL(), ""), "  realm: corp\n",
		fmt.Sprintf("  realm: corp\n  tls: {cert_file: %s, key_file: %s}\n", certFile, keyFile), 1)
	br := startBridge(t, cfg)
	url := strings.Replace(br.URL, "http://", "https://", 1) + "/v1/user-detail"

	client := func(root *x509.Certificate, maxVersion uint16) *http.Client {
		pool := x509.NewCertPool()
		pool.AddCert(root)
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{RootCAs: pool, MaxVersion: maxVersion},
		}}
	}
	get := func(c *http.Client) (*http.Response, error) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+mint(t, is, nil))
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	resp, err := get(client(first, 0))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HTTPS request: %v %v", resp, err)
	}
	if resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("TLS version %x", resp.TLS.Version)
	}
	if _, err := get(client(first, tls.VersionTLS11)); err == nil {
		t.Fatal("a TLS 1.1 client was served")
	}
	if r, err := http.Get(br.URL + "/v1/user-detail"); err == nil && r.StatusCode == 200 {
		t.Fatal("plain HTTP was served")
	}

	// A renewed certificate is served after SIGHUP, without a restart.
	second := selfSigned(t, certFile, keyFile, 2)
	br.hup()
	eventually(t, "the renewed certificate is served", func() bool {
		resp, err := get(client(second, 0))
		return err == nil && resp.TLS.PeerCertificates[0].SerialNumber.Int64() == 2
	})

	// A renewal caught halfway (a key of another certificate): the reload is refused and
	// the previous certificate keeps serving.
	selfSigned(t, filepath.Join(dir, "other.crt"), keyFile, 3)
	br.hup()
	waitLog(t, br, "private key does not match public key")
	if !strings.Contains(br.Logs(), "config reload refused") {
		t.Fatal("a mismatched certificate and key did not refuse the reload")
	}
	if resp, err := get(client(second, 0)); err != nil || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 2 {
		t.Fatalf("after a refused reload: %v %v", resp, err)
	}
}

func TestLimitsThroughBinary(t *testing.T) {
	is := newIssuer(t)
	tok := mint(t, is, nil)

	t.Run("allowed_clients", func(t *testing.T) {
		br := startBridge(t, strings.Replace(jwtConfig(is.URL(), ""), "  realm: corp\n", "  realm: corp\n  allowed_clients: [10.0.0.0/8]\n", 1))
		r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(tok))
		if r.Status != 403 || strings.TrimSpace(r.Body) != `{"error":"access_denied"}` {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		// Without trusted proxies the caller cannot claim an allowed address.
		if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(tok), "X-Forwarded-For: 10.1.2.3"); r.Status != 403 {
			t.Fatalf("X-Forwarded-For honoured from an untrusted peer: %d", r.Status)
		}
	})
	t.Run("trusted_proxies", func(t *testing.T) {
		br := startBridge(t, strings.Replace(jwtConfig(is.URL(), ""), "  realm: corp\n",
			"  realm: corp\n  allowed_clients: [10.0.0.0/8]\n  trusted_proxies: [127.0.0.1]\n", 1))
		if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(tok), "X-Forwarded-For: 10.1.2.3"); r.Status != 200 {
			t.Fatalf("forwarded allowed client: %d %s", r.Status, r.Body)
		}
		if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(tok), "X-Forwarded-For: 192.0.2.9"); r.Status != 403 {
			t.Fatalf("forwarded outsider: %d", r.Status)
		}
	})
	t.Run("rate_limit", func(t *testing.T) {
		// One token per 1000 s after a burst of 2: the third call is always refused.
		br := startBridge(t, strings.Replace(jwtConfig(is.URL(), ""), "  realm: corp\n", "  realm: corp\n  rate_limit: {rps: 0.001, burst: 2}\n", 1))
		for i := 0; i < 2; i++ {
			if r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(tok)); r.Status != 200 {
				t.Fatalf("call %d: %d", i, r.Status)
			}
		}
		r := do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(tok))
		if r.Status != 429 || r.Header.Get("Retry-After") == "" {
			t.Fatalf("third call: %d Retry-After=%q", r.Status, r.Header.Get("Retry-After"))
		}
		for i := 0; i < 10; i++ {
			for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
				if r := do(t, "GET", br.Admin+p, nil); r.Status != 200 {
					t.Fatalf("admin %s limited: %d", p, r.Status)
				}
			}
		}
	})
}

// TestOutboundCAFile: a JWKS served over HTTPS by a private CA is fetched once
// outbound.ca_file names that CA, and not without it.
func TestOutboundCAFile(t *testing.T) {
	is := newIssuer(t, demoissuer.WithoutServer())
	ts := httptest.NewTLSServer(is.Handler())
	t.Cleanup(ts.Close)
	is.SetURL(ts.URL)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600)

	without := startBridge(t, jwtConfig(is.URL(), ""))
	if r := do(t, "GET", without.Admin+"/readyz", nil); r.Status != 503 {
		t.Fatalf("without ca_file, /readyz = %d %s; want 503 (keys never loaded)", r.Status, r.Body)
	}

	br := startBridge(t, jwtConfig(is.URL(), "")+fmt.Sprintf("outbound:\n  ca_file: %s\n", caFile))
	eventually(t, "keys loaded over HTTPS", func() bool {
		return do(t, "GET", br.Admin+"/readyz", nil).Status == 200
	})
	if e := emailOf(t, do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(mint(t, is, nil)))); e != "alice@example.com" {
		t.Fatalf("email %q", e)
	}
}

// TestReloadReleasesOldProviders: each reload below rebuilds the jwt provider (its
// leeway changes), which starts a key refresher; once a retired runtime serves no
// request its refresher must stop, so the goroutine count comes back down.
func TestReloadReleasesOldProviders(t *testing.T) {
	is := newIssuer(t)
	br := startBridge(t, jwtConfig(is.URL(), "    leeway: 1s\n"))
	tok := mint(t, is, nil)
	emailOf(t, do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(tok)))
	goroutines := func() float64 {
		v, _ := sample(scrape(t, br), "go_goroutines")
		return v
	}
	base := goroutines()
	const reloads = 20
	for i := 1; i <= reloads; i++ {
		br.rewrite(jwtConfig(is.URL(), fmt.Sprintf("    leeway: %ds\n", i+1)))
		br.hup()
		eventually(t, fmt.Sprintf("reload %d", i), func() bool {
			v, _ := sample(scrape(t, br), "idbridge_config_reloads_total", "result", "ok")
			return v >= float64(i)
		})
		emailOf(t, do(t, "GET", br.URL+"/v1/user-detail", nil, bearer(tok)))
	}
	// Some slack for idle HTTP connections; a leak would leave one or more goroutines
	// per reload.
	eventually(t, "the retired providers' goroutines end", func() bool {
		return goroutines() <= base+reloads/2
	})
}

// binaryVersion is the version the binary reports (`idbridge version`'s first word).
func binaryVersion(t *testing.T) string {
	t.Helper()
	_, out, _ := runCLI(t, "", "version")
	f := strings.Fields(out)
	if len(f) < 2 {
		t.Fatalf("idbridge version: %q", out)
	}
	return f[1]
}

// TestTLSFilesCheckedBeforeServing: check --strict refuses the main listener's certificate
// and key when serve could not load them, and serve refuses them before it listens (exit
// 2), where both used to pass them and serve then exited 1 after "idbridge serving". check
// without --strict still excuses files that are only absent where it runs, outbound's
// ca_file included.
func TestTLSFilesCheckedBeforeServing(t *testing.T) {
	is := newIssuer(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	selfSigned(t, certFile, keyFile, 1)
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not PEM at all\n"), 0o600)
	otherKey := filepath.Join(dir, "other.key")
	selfSigned(t, filepath.Join(dir, "other.crt"), otherKey, 2)
	config := func(cert, key, extra string) string {
		return writeConfig(t, extra+strings.Replace(jwtConfig(is.URL(), ""), "  realm: corp\n",
			fmt.Sprintf("  realm: corp\n  tls: {cert_file: %s, key_file: %s}\n", cert, key), 1))
	}
	absent := filepath.Join(dir, "absent.pem")
	for _, c := range []struct {
		name             string
		cfg              string
		check, strict    int
		strictSays, says string
	}{
		{"a usable pair", config(certFile, keyFile, ""), 0, 0, "", ""},
		{"cert_file not PEM", config(junk, keyFile, ""), 2, 2, "server.tls: cert_file and key_file are not a usable certificate and key", ""},
		{"key of another certificate", config(certFile, otherKey, ""), 2, 2, "private key does not match public key", ""},
		{"cert_file absent", config(absent, keyFile, ""), 0, 2, "server.tls.cert_file", "absent"},
		{"outbound ca_file absent", config(certFile, keyFile, "outbound: {ca_file: "+absent+"}\n"), 0, 2, "outbound.ca_file", "absent"},
	} {
		code, out, errOut := runCLIClean(t, nil, "", "check", "--config", c.cfg)
		if code != c.check || !strings.Contains(out+errOut, c.says) {
			t.Errorf("%s: check exit %d, want %d with %q\n%s%s", c.name, code, c.check, c.says, out, errOut)
		}
		code, out, errOut = runCLIClean(t, nil, "", "check", "--strict", "--config", c.cfg)
		if code != c.strict || !strings.Contains(errOut, c.strictSays) {
			t.Errorf("%s: check --strict exit %d, want %d with %q\n%s%s", c.name, code, c.strict, c.strictSays, out, errOut)
		}
		// resolve listens on nothing: the listener's files are not its business.
		if code, out, errOut := runCLI(t, mint(t, is, nil), "resolve", "--config", c.cfg, "--token", "-"); !strings.HasPrefix(c.name, "outbound") && code != 0 {
			t.Errorf("%s: resolve exit %d\n%s%s", c.name, code, out, errOut)
		}
		if c.strict == 2 {
			code, out, errOut = runCLIClean(t, nil, "", "serve", "--config", c.cfg)
			if code != 2 || strings.Contains(out+errOut, "idbridge serving") || !strings.Contains(errOut, c.strictSays) {
				t.Errorf("%s: serve exit %d, want 2 before serving, with %q\n%s%s", c.name, code, c.strictSays, out, errOut)
			}
		}
	}
}

// TestReloadRefusedWhenProvidersWouldNotBeReady: a reload to a config that parses but
// whose provider cannot load its keys (a jwks_uri where nothing answers) is refused, and
// the running config keeps serving, where it used to be swapped in and turn every token
// into a 503. A provider that was not ready before does not block a reload.
func TestReloadRefusedWhenProvidersWouldNotBeReady(t *testing.T) {
	is := newIssuer(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	good := jwtConfig(is.URL(), "")
	br := startBridge(t, good)
	url := br.URL + "/v1/user-detail"
	ok := func(when string) {
		t.Helper()
		if r := do(t, "GET", url, nil, bearer(mint(t, is, nil))); r.Status != 200 {
			t.Fatalf("%s: %d %s", when, r.Status, r.Body)
		}
	}
	ok("before the reload")
	unreachable := jwtConfig(is.URL(), "    jwks_uri: http://"+closed+"/keys\n")
	br.rewrite(unreachable)
	br.hup()
	waitLog(t, br, "these providers could not get ready")
	if logs := br.Logs(); strings.Contains(logs, `"msg":"config reloaded"`) {
		t.Fatalf("the unready config was swapped in:\n%s", grepLines(logs, "reload"))
	}
	ok("after the refused reload")
	if r := do(t, "GET", br.Admin+"/readyz", nil); r.Status != 200 {
		t.Fatalf("readyz after the refused reload: %d %s", r.Status, r.Body)
	}
	// Renamed as well: no provider of the new config matches a running one by name, and
	// none is ready, where the running config is.
	br.rewrite(strings.Replace(unreachable, "- name: corp\n", "- name: corp-v2\n", 1))
	br.hup()
	waitLog(t, br, "no provider of the new config is ready")
	ok("after the refused rename")
	// The same config again, once the provider can get ready: accepted.
	br.rewrite(strings.Replace(good, "realm: corp", "realm: corp2", 1))
	br.hup()
	waitLog(t, br, `"msg":"config reloaded"`)
	ok("after a good reload")
}

// TestReloadDuringIdPOutageKeepsKeys: while the IdP's key endpoint is down, a reload that
// leaves the provider unchanged (here: one more allowed domain) is accepted, and the new
// config keeps the running provider's keys, so tokens are still verified. A fresh
// provider would have had no keys (every token 503), and the readiness guard would have
// refused every reload for as long as the IdP was down.
func TestReloadDuringIdPOutageKeepsKeys(t *testing.T) {
	is := newIssuer(t)
	var down atomic.Bool
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		resp, err := http.Get(is.URL() + demoissuer.JWKSPath)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(keys.Close)
	cfg := jwtConfig(is.URL(), "    jwks_uri: "+keys.URL+"/keys\n")
	br := startBridge(t, cfg)
	url := br.URL + "/v1/user-detail"
	if r := do(t, "GET", url, nil, bearer(mint(t, is, nil))); r.Status != 200 {
		t.Fatalf("before the outage: %d %s", r.Status, r.Body)
	}
	down.Store(true)
	br.rewrite(strings.Replace(cfg, "allowed_domains: [example.com]", "allowed_domains: [example.com, example.org]", 1))
	br.hup()
	waitLog(t, br, `"msg":"config reloaded"`)
	if !strings.Contains(br.Logs(), "keeping the running provider's keys") {
		t.Error("no log line says the running keys were kept")
	}
	if r := do(t, "GET", url, nil, bearer(mint(t, is, map[string]any{"email": "carol@example.org"}))); r.Status != 200 || !strings.Contains(r.Body, "carol@example.org") {
		t.Fatalf("after the reload, IdP still down: %d %s", r.Status, r.Body)
	}
	if r := do(t, "GET", br.Admin+"/readyz", nil); r.Status != 200 || !strings.Contains(r.Body, "key refresh failing") {
		t.Errorf("readyz during the outage: %d %s", r.Status, r.Body)
	}
}
