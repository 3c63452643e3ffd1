package spotnana

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idbridge/idbridge/configs"
)

const (
	testSecret  = "s3cr3t-client-secret-value"
	testSubject = "eyJ-user-subject-token-value"
)

func intp(n int) *int    { return &n }
func boolp(b bool) *bool { return &b }

func testConfig(tokenURL string) *configs.Spotnana {
	return &configs.Spotnana{TokenURL: tokenURL, ClientID: "idb-client", ClientSecret: testSecret}
}

// sleeps records the waits the client asked for, without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// identityJitter makes backoff deterministic: the wait is the ceiling itself.
func identityJitter(d time.Duration) time.Duration { return d }

const okBody = `{"access_token":"spotnana-at","refresh_token":"spotnana-rt","token_type":"Bearer","expires_in":3600,"scope":"openid"}`

// reply is one canned answer of a scripted server.
type reply struct {
	status     int
	retryAfter string
	body       string
}

// scripted answers the replies in order, repeating the last one.
func scripted(t *testing.T, replies ...reply) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		rep := replies[min(i, len(replies)-1)]
		if rep.retryAfter != "" {
			w.Header().Set("Retry-After", rep.retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, rep.body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestExchangeSendsExactForm(t *testing.T) {
	for _, tc := range []struct {
		name     string
		audience string
		stt      string
		want     url.Values
	}{
		{
			name: "documented request",
			want: url.Values{
				"grant_type":         {GrantTokenExchange},
				"client_id":          {"idb-client"},
				"client_secret":      {testSecret},
				"subject_token":      {testSubject},
				"subject_token_type": {TokenTypeAccessToken},
				"scope":              {"openid"},
			},
		},
		{
			name:     "audience and explicit token type",
			audience: "https://apis.spotnana.com/v2",
			stt:      TokenTypeJWT,
			want: url.Values{
				"grant_type":         {GrantTokenExchange},
				"client_id":          {"idb-client"},
				"client_secret":      {testSecret},
				"subject_token":      {testSubject},
				"subject_token_type": {TokenTypeJWT},
				"scope":              {"openid"},
				"audience":           {"https://apis.spotnana.com/v2"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got url.Values
			var ctype, authz, method, query string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctype, authz, method, query = r.Header.Get("Content-Type"), r.Header.Get("Authorization"), r.Method, r.URL.RawQuery
				_ = r.ParseForm()
				got = r.PostForm
				_, _ = io.WriteString(w, okBody)
			}))
			defer srv.Close()
			cfg := testConfig(srv.URL + "/v2/auth/oauth2-token")
			cfg.Audience = tc.audience
			c, err := NewClient(cfg, srv.Client(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exchange(context.Background(), testSubject, tc.stt); err != nil {
				t.Fatal(err)
			}
			if method != http.MethodPost || ctype != "application/x-www-form-urlencoded" || authz != "" || query != "" {
				t.Errorf("method %q content-type %q authorization %q query %q", method, ctype, authz, query)
			}
			if !equalValues(got, tc.want) {
				t.Errorf("form = %v, want %v", got, tc.want)
			}
		})
	}
}

func equalValues(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w := b[k]
		if len(v) != len(w) {
			return false
		}
		for i := range v {
			if v[i] != w[i] {
				return false
			}
		}
	}
	return true
}

func TestExchangeRetries(t *testing.T) {
	const base = 100 * time.Millisecond
	spotnana429 := `{"debugIdentifier":"dbg-1","errorMessages":[{"errorCode":"TOO_MANY_REQUESTS","message":"slow down"}]}`
	for _, tc := range []struct {
		name         string
		replies      []reply
		maxRetries   *int
		wantAttempts int64
		wantWaits    []time.Duration
		wantErr      string // "", "refused", "unavailable"
		wantCode     string
		wantRA       time.Duration
	}{
		{
			name:         "429 twice then success, Retry-After honoured",
			replies:      []reply{{429, "2", spotnana429}, {429, "1", spotnana429}, {200, "", okBody}},
			wantAttempts: 3,
			wantWaits:    []time.Duration{2 * time.Second, time.Second},
		},
		{
			name:         "503 twice then success, exponential backoff",
			replies:      []reply{{503, "", ""}, {503, "", ""}, {200, "", okBody}},
			wantAttempts: 3,
			wantWaits:    []time.Duration{base, 2 * base},
		},
		{
			name:         "400 is not retried",
			replies:      []reply{{400, "", `{"debugIdentifier":"d","errorMessages":[{"errorCode":"API_VALIDATION_FAILED","message":"bad"}]}`}},
			wantAttempts: 1,
			wantErr:      "refused",
			wantCode:     "API_VALIDATION_FAILED",
		},
		{
			name:         "401 is not retried",
			replies:      []reply{{401, "", `{"error":"invalid_client","error_description":"nope"}`}},
			wantAttempts: 1,
			wantErr:      "refused",
			wantCode:     "invalid_client",
		},
		{
			name:         "5xx beyond retries is unavailable",
			replies:      []reply{{500, "", ""}, {502, "", ""}, {503, "", ""}, {504, "", ""}},
			wantAttempts: 4,
			wantWaits:    []time.Duration{base, 2 * base, 4 * base},
			wantErr:      "unavailable",
			wantRA:       DefaultRetryAfter,
		},
		{
			name:         "429 beyond retries carries Retry-After",
			replies:      []reply{{429, "3", spotnana429}},
			maxRetries:   intp(1),
			wantAttempts: 2,
			wantWaits:    []time.Duration{3 * time.Second},
			wantErr:      "unavailable",
			wantRA:       3 * time.Second,
		},
		{
			name:         "max_retries 0 tries once",
			replies:      []reply{{503, "", ""}},
			maxRetries:   intp(0),
			wantAttempts: 1,
			wantErr:      "unavailable",
			wantRA:       DefaultRetryAfter,
		},
		{
			name:         "Retry-After longer than we hold a request ends at once",
			replies:      []reply{{429, "120", spotnana429}},
			wantAttempts: 1,
			wantErr:      "unavailable",
			wantRA:       120 * time.Second,
		},
		{
			name:         "200 without access_token is refused",
			replies:      []reply{{200, "", `{"token_type":"Bearer","expires_in":3600}`}},
			wantAttempts: 1,
			wantErr:      "refused",
			wantCode:     "INVALID_TOKEN_RESPONSE",
		},
		{
			name:         "redirect is an outage, neither followed nor retried",
			replies:      []reply{{307, "", ""}},
			wantAttempts: 1,
			wantErr:      "unavailable",
			wantRA:       DefaultRetryAfter,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, hits := scripted(t, tc.replies...)
			cfg := testConfig(srv.URL)
			cfg.MaxRetries = tc.maxRetries
			var sl sleeps
			c, err := NewClient(cfg, srv.Client(), nil,
				WithBackoff(base, 10*base), WithJitter(identityJitter), WithSleep(sl.sleep))
			if err != nil {
				t.Fatal(err)
			}
			tr, err := c.Exchange(context.Background(), testSubject, "")
			if got := hits.Load(); got != tc.wantAttempts {
				t.Errorf("server saw %d requests, want %d", got, tc.wantAttempts)
			}
			if got := c.Stats().Attempts; got != tc.wantAttempts {
				t.Errorf("Stats().Attempts = %d, want %d", got, tc.wantAttempts)
			}
			if got := sl.got(); !equalDurations(got, tc.wantWaits) {
				t.Errorf("waits = %v, want %v", got, tc.wantWaits)
			}
			switch tc.wantErr {
			case "":
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if tr.AccessToken != "spotnana-at" || tr.ExpiresIn != 3600 {
					t.Errorf("response = %+v", tr)
				}
			case "refused":
				var re *RefusedError
				if !errors.As(err, &re) {
					t.Fatalf("err = %v, want *RefusedError", err)
				}
				if re.Code != tc.wantCode {
					t.Errorf("code = %q, want %q", re.Code, tc.wantCode)
				}
				if errors.Is(err, ErrUnavailable) {
					t.Error("a refusal must not be ErrUnavailable")
				}
			case "unavailable":
				var ue *UnavailableError
				if !errors.Is(err, ErrUnavailable) || !errors.As(err, &ue) {
					t.Fatalf("err = %v, want ErrUnavailable", err)
				}
				if ue.RetryAfter != tc.wantRA {
					t.Errorf("RetryAfter = %v, want %v", ue.RetryAfter, tc.wantRA)
				}
				if ue.Attempts != int(tc.wantAttempts) {
					t.Errorf("Attempts = %d, want %d", ue.Attempts, tc.wantAttempts)
				}
			}
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRetryAfterHTTPDate(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	srv, _ := scripted(t, reply{429, now.Add(7 * time.Second).Format(http.TimeFormat), ""}, reply{200, "", okBody})
	var sl sleeps
	c, err := NewClient(testConfig(srv.URL), srv.Client(), nil, WithSleep(sl.sleep), WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exchange(context.Background(), testSubject, ""); err != nil {
		t.Fatal(err)
	}
	if got := sl.got(); len(got) != 1 || got[0] != 7*time.Second {
		t.Errorf("waits = %v, want [7s]", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name, in string
		want     time.Duration
	}{
		{"empty", "", 0},
		{"seconds", "3", 3 * time.Second},
		{"zero", "0", 0},
		{"negative", "-5", 0},
		{"date ahead", now.Add(time.Minute).Format(http.TimeFormat), time.Minute},
		{"date past", now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"garbage", "soon", 0},
		{"huge capped", "99999999999", 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseRetryAfter(tc.in, now); got != tc.want {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestExchangeNetworkErrorIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a closed port: connection refused
	var sl sleeps
	c, err := NewClient(testConfig("http://"+addr+"/v2/auth/oauth2-token"), nil, nil, WithSleep(sl.sleep))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Exchange(context.Background(), testSubject, "")
	var ue *UnavailableError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if ue.Attempts != DefaultMaxRetries+1 || len(sl.got()) != DefaultMaxRetries {
		t.Errorf("attempts %d, waits %v", ue.Attempts, sl.got())
	}
	if ue.Err == nil || ue.Status != 0 {
		t.Errorf("want a network cause and no status, got %+v", ue)
	}
}

func TestExchangeDeadlineBoundsRetries(t *testing.T) {
	t.Run("real backoff stops at the deadline", func(t *testing.T) {
		srv, _ := scripted(t, reply{503, "", ""})
		cfg := testConfig(srv.URL)
		cfg.MaxRetries = intp(50)
		c, err := NewClient(cfg, srv.Client(), nil, WithBackoff(40*time.Millisecond, 200*time.Millisecond), WithJitter(identityJitter))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = c.Exchange(ctx, testSubject, "")
		elapsed := time.Since(start)
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrUnavailable and DeadlineExceeded", err)
		}
		if dl, _ := ctx.Deadline(); time.Now().After(dl.Add(100 * time.Millisecond)) {
			t.Errorf("returned %v after start, well past the deadline", elapsed)
		}
		if a := c.Stats().Attempts; a >= 50 {
			t.Errorf("attempts = %d: retries were not bounded by the deadline", a)
		}
	})
	t.Run("no sleep past the deadline", func(t *testing.T) {
		srv, hits := scripted(t, reply{429, "5", ""})
		var sl sleeps
		c, err := NewClient(testConfig(srv.URL), srv.Client(), nil, WithSleep(sl.sleep))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = c.Exchange(ctx, testSubject, "")
		var ue *UnavailableError
		if !errors.As(err, &ue) {
			t.Fatalf("err = %v", err)
		}
		if len(sl.got()) != 0 || hits.Load() != 1 {
			t.Errorf("slept %v after %d attempts; a 5s Retry-After cannot fit a 1s deadline", sl.got(), hits.Load())
		}
		if ue.RetryAfter != 5*time.Second {
			t.Errorf("RetryAfter = %v, want 5s", ue.RetryAfter)
		}
	})
	t.Run("each attempt has the configured timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		cfg := testConfig(srv.URL)
		cfg.Timeout = 50 * time.Millisecond
		cfg.MaxRetries = intp(1)
		var sl sleeps
		c, err := NewClient(cfg, srv.Client(), nil, WithSleep(sl.sleep))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Exchange(context.Background(), testSubject, "")
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if c.Stats().Attempts != 2 {
			t.Errorf("attempts = %d, want 2", c.Stats().Attempts)
		}
	})
}

func TestTokenResponseParsing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		wantErr bool
		check   func(*testing.T, *TokenResponse)
	}{
		{name: "Spotnana's sample, no issued_token_type", body: okBody, check: func(t *testing.T, tr *TokenResponse) {
			if tr.IssuedTokenType != "" || tr.RefreshToken != "spotnana-rt" || tr.Scope != "openid" || tr.TokenType != "Bearer" {
				t.Errorf("%+v", tr)
			}
		}},
		{name: "issued_token_type kept", body: `{"access_token":"a","token_type":"Bearer","issued_token_type":"` + TokenTypeAccessToken + `"}`, check: func(t *testing.T, tr *TokenResponse) {
			if tr.IssuedTokenType != TokenTypeAccessToken || tr.ExpiresIn != 0 {
				t.Errorf("%+v", tr)
			}
		}},
		{name: "expires_in as a string", body: `{"access_token":"a","token_type":"Bearer","expires_in":"60"}`, check: func(t *testing.T, tr *TokenResponse) {
			if tr.ExpiresIn != 60 {
				t.Errorf("ExpiresIn = %d", tr.ExpiresIn)
			}
		}},
		{name: "missing access_token", body: `{"token_type":"Bearer"}`, wantErr: true},
		{name: "empty access_token", body: `{"access_token":"","token_type":"Bearer"}`, wantErr: true},
		{name: "missing token_type", body: `{"access_token":"a"}`, wantErr: true},
		{name: "access_token not a string", body: `{"access_token":5,"token_type":"Bearer"}`, wantErr: true},
		{name: "negative expires_in", body: `{"access_token":"a","token_type":"Bearer","expires_in":-1}`, wantErr: true},
		{name: "not JSON", body: `<html>`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := parseTokenResponse([]byte(tc.body))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, tr)
			}
		})
	}
}

func TestTokenResponseMarshalKeepsUnknownFields(t *testing.T) {
	tr, err := parseTokenResponse([]byte(`{"access_token":"a","token_type":"Bearer","expires_in":3600,"scope":"openid","x_extra":{"k":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	tr.ExpiresIn = 42
	b, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["expires_in"] != float64(42) || m["x_extra"] == nil || m["access_token"] != "a" {
		t.Errorf("marshalled %s", b)
	}
	if _, ok := m["issued_token_type"]; ok {
		t.Errorf("issued_token_type invented: %s", b)
	}
}

func TestParseErrorBody(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   RefusedError
	}{
		{"Spotnana shape", 401, `{"debugIdentifier":"abc123","errorMessages":[{"errorCode":"USER_NOT_AUTHENTICATED","message":"User not authenticated"}]}`,
			RefusedError{Status: 401, Code: "USER_NOT_AUTHENTICATED", Description: "User not authenticated", DebugID: "abc123"}},
		{"Spotnana shape, first message with a code wins", 400, `{"errorMessages":[{"message":"x"},{"errorCode":"API_VALIDATION_FAILED","message":"bad field"}]}`,
			RefusedError{Status: 400, Code: "API_VALIDATION_FAILED", Description: "bad field"}},
		{"RFC 6749 shape", 400, `{"error":"invalid_grant","error_description":"subject token expired"}`,
			RefusedError{Status: 400, Code: "invalid_grant", Description: "subject token expired"}},
		{"HTML page", 403, `<html><body>Forbidden</body></html>`, RefusedError{Status: 403, Code: "FORBIDDEN"}},
		{"empty body", 404, ``, RefusedError{Status: 404, Code: "NOT_FOUND"}},
		{"empty errorMessages", 400, `{"debugIdentifier":"d","errorMessages":[]}`, RefusedError{Status: 400, Code: "BAD_REQUEST", DebugID: "d"}},
		{"unknown status", 499, `{}`, RefusedError{Status: 499, Code: "HTTP_499"}},
		{"control characters dropped", 400, `{"error":"bad\ncode","error_description":"line1\nline2"}`,
			RefusedError{Status: 400, Code: "badcode", Description: "line1line2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseErrorBody(tc.status, []byte(tc.body))
			if *got != tc.want {
				t.Errorf("got %+v, want %+v", *got, tc.want)
			}
		})
	}
}

func FuzzParseErrorBody(f *testing.F) {
	for _, s := range []string{
		`{"debugIdentifier":"abc","errorMessages":[{"errorCode":"TOO_MANY_REQUESTS","message":"m"}]}`,
		`{"error":"invalid_client","error_description":"d"}`,
		`{"errorMessages":null}`,
		`{"errorMessages":[{"errorCode":5}]}`,
		`[]`, `null`, ``, `<html>`, "{\"error\":\"\xff\xfe\"}",
	} {
		f.Add(400, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := ParseErrorBody(status, body)
		if e.Code == "" {
			t.Fatal("empty code")
		}
		if len(e.Code) > maxErrorField+16 || len(e.Description) > maxErrorField || len(e.DebugID) > maxErrorField {
			t.Fatalf("unbounded fields: %q %q %q", e.Code, e.Description, e.DebugID)
		}
		if strings.ContainsAny(e.Code+e.Description+e.DebugID, "\n\r") {
			t.Fatal("control characters survived")
		}
		_ = e.Error()
	})
}

func TestNewClientValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  *configs.Spotnana
		want string
	}{
		{"nil", nil, "no configuration"},
		{"empty", &configs.Spotnana{}, "token_url: required"},
		{"relative URL", &configs.Spotnana{TokenURL: "/x", ClientID: "a", ClientSecret: "b"}, "absolute"},
		{"no secret", &configs.Spotnana{TokenURL: "https://x", ClientID: "a"}, "client_secret: required"},
		{"negative retries", &configs.Spotnana{TokenURL: "https://x", ClientID: "a", ClientSecret: "b", MaxRetries: intp(-1)}, "max_retries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewClient(tc.cfg, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestLogsNeverCarrySecrets drives success, refusal, retries and a network error with
// debug logging on, and checks that neither the client secret nor any token leaks.
func TestLogsNeverCarrySecrets(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, _ := scripted(t,
		reply{503, "", `{"error":"temporarily_unavailable"}`},
		reply{200, "", okBody},
		reply{401, "", `{"debugIdentifier":"dbg","errorMessages":[{"errorCode":"USER_NOT_AUTHENTICATED","message":"no"}]}`},
		reply{429, "1", ""},
	)
	var sl sleeps
	c, err := NewClient(testConfig(srv.URL), srv.Client(), logger, WithSleep(sl.sleep))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, _ = c.Exchange(context.Background(), testSubject, "")
	}
	dead, _ := NewClient(testConfig("http://127.0.0.1:1/x"), nil, logger, WithSleep(sl.sleep))
	_, _ = dead.Exchange(context.Background(), testSubject, "")

	logs := buf.String()
	for _, secret := range []string{testSecret, testSubject, "spotnana-at", "spotnana-rt"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, Fingerprint(testSubject)) {
		t.Errorf("logs lack the subject fingerprint %s:\n%s", Fingerprint(testSubject), logs)
	}
	if !strings.Contains(logs, "status=401") || !strings.Contains(logs, "USER_NOT_AUTHENTICATED") {
		t.Errorf("logs lack the refusal:\n%s", logs)
	}
}

func TestFingerprint(t *testing.T) {
	// SHA-256("abc") = ba7816bf...
	if got := Fingerprint("abc"); got != "ba7816bf" {
		t.Errorf("Fingerprint = %s", got)
	}
	if got := strconv.Itoa(len(Fingerprint(""))); got != "8" {
		t.Errorf("len = %s", got)
	}
}
