package server

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// scanAll feeds raw to a scanner in pieces of size n (0: at once).
func scanAll(raw string, max, n int) *headScanner {
	s := newHeadScanner(max)
	b := []byte(raw)
	if n <= 0 {
		n = len(b) + 1
	}
	for len(b) > 0 {
		k := min(n, len(b))
		s.feed(b[:k])
		b = b[k:]
	}
	return s
}

func TestHeadScanner(t *testing.T) {
	get := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct {
		name    string
		raw     string
		max     int
		faultAt int
		fault   framingFault
	}{
		{"plain", get + get, 0, -1, faultNone},
		{"content-length body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + get, 0, -1, faultNone},
		{"chunked body", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nTrailer: 1\r\n\r\n" + get, 0, -1, faultNone},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 0, faultCLAndTE},
		{"CL and TE, second request", get + "POST / HTTP/1.1\r\ntransfer-encoding: CHUNKED\r\ncontent-length: 4\r\n\r\n", 0, 1, faultCLAndTE},
		{"TE in a body is data", "POST / HTTP/1.1\r\nContent-Length: 44\r\n\r\nTransfer-Encoding: chunked\r\nContent-Length: 1" + get, 0, -1, faultNone},
		{"head at the limit", get, len(get), -1, faultNone},
		{"head over the limit", get + get, len(get) - 1, 0, faultHeadTooLarge},
		{"agreeing content-lengths", "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi" + get, 0, -1, faultNone},
		{"conflicting content-lengths", "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi" + get, 0, 1, faultUnframed},
		{"bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + get, 0, 1, faultUnframed},
		{"long lines and near names", "POST / HTTP/1.1\r\nAuthorization: Bearer " + strings.Repeat("x", 100) + "\r\nCookie: a\r\nTE: trailers\r\ntransfer-encoding: chunked\r\nContent-Length: 3\r\n\r\n", 0, 0, faultCLAndTE},
		{"long line over the limit", "GET / HTTP/1.1\r\nAuthorization: Bearer " + strings.Repeat("x", 100) + "\r\n\r\n", 60, 0, faultHeadTooLarge},
		{"LF only", "GET / HTTP/1.1\nHost: x\n\nGET / HTTP/1.1\nContent-Length: 1\nTransfer-Encoding: chunked\n\n", 0, 1, faultCLAndTE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []int{0, 1, 3, 7} {
				s := scanAll(tc.raw, tc.max, n)
				if s.faultAt != tc.faultAt || s.fault != tc.fault {
					t.Fatalf("pieces of %d: fault %d at %d; want %d at %d", n, s.fault, s.faultAt, tc.fault, tc.faultAt)
				}
			}
		})
	}
}

func TestHeadScannerDoesNotAllocate(t *testing.T) {
	raw := []byte("POST /v1/token-exchange HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\nContent-Length: 5\r\n\r\nhello")
	s := newHeadScanner(16384)
	if n := testing.AllocsPerRun(100, func() { s.feed(raw) }); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}

// FuzzHeadScanner checks that the scanner's verdict does not depend on how the stream
// is cut into reads, and that every request net/http reads before the first fault is
// one the scanner saw whole: it never loses count of where a request starts while
// net/http keeps serving.
func FuzzHeadScanner(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
		"GET / HTTP/1.1\r\nAuthorization: Bearer " + strings.Repeat("a", 300) + "\r\nTE: trailers\r\nCookie: c\r\ntransfer-encoding: chunked\r\nContent-length: 2\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, raw []byte, cut uint8) {
		whole := scanAll(string(raw), 256, 0)
		split := scanAll(string(raw), 256, int(cut%16)+1)
		if whole.faultAt != split.faultAt || whole.fault != split.fault || whole.index != split.index {
			t.Fatalf("at once: fault %d at %d (%d heads); in pieces: %d at %d (%d heads)",
				whole.fault, whole.faultAt, whole.index, split.fault, split.faultAt, split.index)
		}
		// Skipping lines that cannot matter must not change a verdict.
		ref := newHeadScanner(256)
		ref.byByte = true
		ref.feed(raw)
		if whole.faultAt != ref.faultAt || whole.fault != ref.fault || whole.index != ref.index {
			t.Fatalf("with line skipping: fault %d at %d (%d heads); byte by byte: %d at %d (%d heads)",
				whole.fault, whole.faultAt, whole.index, ref.fault, ref.faultAt, ref.index)
		}
		// Replay with net/http's own parser, as the server would read the stream.
		br := bufio.NewReader(bytes.NewReader(raw))
		for i := 0; ; i++ {
			if whole.faultAt >= 0 && i >= whole.faultAt {
				return // refused from here on
			}
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			if i >= whole.index && whole.state != sDone {
				// net/http read a request whose head the scanner has not completed.
				t.Fatalf("net/http read request %d; the scanner saw %d heads", i, whole.index)
			}
		}
	})
}

// BenchmarkHeadScanner feeds a head shaped like scenario b's: a bearer JWT of ≈800 bytes.
func BenchmarkHeadScanner(b *testing.B) {
	raw := []byte("GET /v1/user-detail HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench\r\nAuthorization: Bearer " +
		strings.Repeat("eyJhbGciOiJSUzI1NiJ9", 40) + "\r\nAccept: application/json\r\n\r\n")
	s := newHeadScanner(16384)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		s.feed(raw)
	}
}
