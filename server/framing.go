package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
)

// Request framing faults that net/http lets through, found on the raw bytes.
//
// When a request carries both Content-Length and Transfer-Encoding, net/http follows
// RFC 9112 §6.3 (Transfer-Encoding wins), drops Content-Length and serves the request,
// keeping the connection open. A proxy in front that frames by Content-Length then
// disagrees with us on where the next request starts: request smuggling. RFC 9112 §6.1
// lets a server refuse such a message; we do, 400, and close the connection. Since
// net/http removes the header before a handler can see it, framedConn reads the bytes
// of each request head as they come in. It also measures each head, so that
// max_header_bytes is the bound (net/http's own check allows 4096 bytes more).
type framingFault uint8

const (
	faultNone         framingFault = iota
	faultCLAndTE                   // both Content-Length and Transfer-Encoding
	faultHeadTooLarge              // request line and headers over max_header_bytes
	faultUnframed                  // a request after one whose framing could not be followed
)

// headScanner follows the HTTP/1.1 request stream (RFC 9112): heads, and bodies framed
// by Content-Length or chunked coding, so that it knows where each head starts. It
// records the first request whose head has a fault and stops there, since the
// connection is closed after that request's answer. Where it cannot follow the stream
// (a body framing net/http itself refuses), every later request on the connection is
// refused: no request is served whose start we could not vouch for. It never allocates
// after start.
type headScanner struct {
	maxHead int  // 0: no bound
	byByte  bool // tests: no line skipping, so that the fuzz test can compare the two

	state    scanState
	index    int // requests whose head has been seen completely
	headLen  int // bytes of the current head so far
	lineLen  int // bytes of the current line so far
	line     [32]byte
	hasCL    bool  // the current head has Content-Length
	hasTE    bool  // … and Transfer-Encoding
	chunked  bool  // Transfer-Encoding's value mentions chunked
	clValue  int64 // Content-Length's value, -1 when it cannot be read
	clCur    int64 // the value of the Content-Length line being read
	remain   int64 // bytes of body (or chunk) left
	hexDigit bool  // a chunk-size line has had a digit

	faultAt int // index of the faulty request, -1 while none
	fault   framingFault
}

type scanState uint8

const (
	sHead      scanState = iota // in a head line
	sHeadValue                  // in a header value whose name mattered (line holds the name)
	sBody                       // in a Content-Length body
	sChunkSize                  // in a chunk-size line
	sChunkExt                   // after the size, to the end of the line
	sChunkData                  // in chunk data
	sChunkCRLF                  // in the CRLF after chunk data
	sTrailer                    // in trailer lines
	sDone                       // a fault was found, or the stream cannot be followed
)

func newHeadScanner(maxHead int) *headScanner {
	s := &headScanner{maxHead: maxHead, faultAt: -1}
	s.startHead()
	return s
}

func (s *headScanner) startHead() {
	s.state, s.headLen, s.lineLen = sHead, 0, 0
	s.hasCL, s.hasTE, s.chunked, s.clValue = false, false, false, 0
}

// header names that matter, lower case.
const (
	hdrCL = "content-length"
	hdrTE = "transfer-encoding"
)

// feed scans the next bytes of the stream.
func (s *headScanner) feed(b []byte) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch s.state {
		case sDone:
			return
		case sHead, sHeadValue:
			if s.state == sHead && !s.byByte && (s.lineLen > len(s.line) || (s.lineLen == 0 && !mayMatter(c))) {
				// A line this long is past any header name that matters, and a line
				// whose first byte cannot start one (the request line, Host, Authorization,
				// …) never matters: only where it ends counts, so skip to its LF at memchr
				// speed. A bearer token makes most of a request head such a line.
				n := bytes.IndexByte(b[i:], '\n')
				if n < 0 {
					n = len(b) - i
				}
				if n > 0 {
					if s.maxHead > 0 && s.headLen+n > s.maxHead {
						s.setFault(faultHeadTooLarge)
						return
					}
					s.headLen += n
					s.lineLen = max(s.lineLen+n, len(s.line)+1) // non-empty, and past any name
					i += n - 1
					continue
				}
			}
			s.headLen++
			if s.maxHead > 0 && s.headLen > s.maxHead {
				s.setFault(faultHeadTooLarge)
				return
			}
			s.headByte(c)
		case sBody:
			i += s.take(len(b)-i) - 1
			if s.remain == 0 {
				s.startHead()
			}
		case sChunkSize:
			switch {
			case c == '\n':
				s.endChunkSize()
			case c == ';' || c == ' ' || c == '\t' || c == '\r':
				s.state = sChunkExt
			default:
				d, ok := hexValue(c)
				if !ok || s.remain > 1<<40 {
					s.lost() // net/http refuses it and closes
					return
				}
				s.remain, s.hexDigit = s.remain<<4|int64(d), true
			}
		case sChunkExt:
			if c == '\n' {
				s.endChunkSize()
			}
		case sChunkData:
			i += s.take(len(b)-i) - 1
			if s.remain == 0 {
				s.state = sChunkCRLF
			}
		case sChunkCRLF:
			if c == '\n' {
				s.state, s.remain, s.hexDigit = sChunkSize, 0, false
			}
		case sTrailer:
			if c == '\n' {
				if s.lineLen == 0 {
					s.startHead()
					continue
				}
				s.lineLen = 0
			} else if c != '\r' {
				s.lineLen++
			}
		}
	}
}

// take consumes up to avail bytes of the body or chunk being skipped and returns how
// many it took (at least one: remain > 0 whenever it is called).
func (s *headScanner) take(avail int) int {
	n := min(int64(avail), s.remain)
	s.remain -= n
	return int(n)
}

func (s *headScanner) endChunkSize() {
	if !s.hexDigit {
		s.lost()
		return
	}
	if s.remain == 0 {
		s.state, s.lineLen = sTrailer, 0
		return
	}
	s.state = sChunkData
}

// headByte takes one byte of a head: the request line, then header lines, then the
// empty line that ends it.
func (s *headScanner) headByte(c byte) {
	if c == '\n' {
		s.endHeadLine()
		return
	}
	if c == '\r' {
		return
	}
	if s.state == sHeadValue {
		s.valueByte(c)
		return
	}
	if c == ':' && s.lineLen <= len(s.line) {
		name := string(lowerASCII(s.line[:s.lineLen])) // no allocation: compared only
		switch name {
		case hdrCL:
			s.state, s.lineLen, s.clCur = sHeadValue, 0, 0
			s.line[0] = 'L'
			return
		case hdrTE:
			s.hasTE = true
			s.state, s.lineLen = sHeadValue, 0
			s.line[0] = 'T'
			return
		}
	}
	if s.lineLen < len(s.line) {
		s.line[s.lineLen] = c
	}
	s.lineLen++
}

// valueByte takes one byte of a Content-Length or Transfer-Encoding value; line[0]
// says which ('L' or 'T'), and lineLen counts the value's bytes.
func (s *headScanner) valueByte(c byte) {
	if s.line[0] == 'L' {
		switch {
		case c == ' ' || c == '\t':
		case '0' <= c && c <= '9' && s.clCur >= 0 && s.clCur < 1<<50:
			s.clCur = s.clCur*10 + int64(c-'0')
		default:
			s.clCur = -1
		}
		return
	}
	// Transfer-Encoding: remember whether "chunked" appears (net/http accepts only that
	// coding), matching case-insensitively over a window kept in line[1:8].
	s.lineLen++
	copy(s.line[1:7], s.line[2:8])
	s.line[7] = c | 0x20
	if string(s.line[1:8]) == "chunked" {
		s.chunked = true
	}
}

func (s *headScanner) endHeadLine() {
	if s.state == sHeadValue {
		if s.line[0] == 'L' {
			// Several Content-Length lines are served by net/http only when they agree.
			if s.hasCL && s.clCur != s.clValue {
				s.clCur = -1
			}
			s.hasCL, s.clValue = true, s.clCur
		}
		s.state, s.lineLen = sHead, 0
		return
	}
	if s.lineLen == 0 && s.headLen <= 2 {
		s.lost() // a request cannot start with an empty line
		return
	}
	if s.lineLen > 0 {
		s.lineLen = 0
		return
	}
	// The empty line: the head is complete.
	idx := s.index
	s.index++
	switch {
	case s.hasCL && s.hasTE:
		s.faultAt, s.fault, s.state = idx, faultCLAndTE, sDone
	case s.hasTE && s.chunked:
		s.state, s.remain, s.hexDigit = sChunkSize, 0, false
	case s.hasTE:
		s.lost() // a coding net/http does not serve: it answers 501 and closes
	case s.hasCL && s.clValue < 0:
		s.lost() // net/http answers 400 and closes
	case s.hasCL && s.clValue > 0:
		s.state, s.remain = sBody, s.clValue
	default:
		s.startHead()
	}
}

func (s *headScanner) setFault(f framingFault) {
	s.faultAt, s.fault, s.state = s.index, f, sDone
}

// lost gives up following the stream: the next request, if net/http serves one, is
// refused.
func (s *headScanner) lost() { s.setFault(faultUnframed) }

// mayMatter reports whether a head line starting with c may be a header that matters
// (Content-Length, Transfer-Encoding), or be the empty line that ends the head.
func mayMatter(c byte) bool {
	switch c {
	case 'c', 'C', 't', 'T', '\r', '\n':
		return true
	}
	return false
}

func hexValue(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// lowerASCII lower-cases b in place and returns it.
func lowerASCII(b []byte) []byte {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
}

// framedConn scans what the server reads from it. Reads happen one at a time (net/http
// never reads a connection from two goroutines at once), but the handler asks for the
// verdict from its own goroutine: hence the lock.
type framedConn struct {
	net.Conn
	mu     sync.Mutex
	scan   *headScanner
	served int // requests whose verdict the handler asked for
}

func (c *framedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.scan.feed(p[:n])
		c.mu.Unlock()
	}
	return n, err
}

// next returns the fault of the next request served on this connection. net/http
// serves an HTTP/1.x connection's requests one after another, in order, and has read a
// request's head entirely (through Read) before its handler runs.
func (c *framedConn) next() framingFault {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.served
	c.served++
	if c.scan.faultAt == i {
		return c.scan.fault
	}
	return faultNone
}

// framedListener wraps each accepted connection in a framedConn; with tlsConfig, it
// terminates TLS first, so that the scanner reads the requests and not their
// encryption (HTTP/2 is then not offered: it has its own framing and none of this).
type framedListener struct {
	net.Listener
	maxHead int
	tls     *tls.Config
}

func (l *framedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.tls != nil {
		c = tls.Server(c, l.tls)
	}
	return &framedConn{Conn: c, scan: newHeadScanner(l.maxHead)}, nil
}

type framedConnKey struct{}

// connContext gives each request's context its connection, for checkFraming.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framedConn); ok {
		return context.WithValue(ctx, framedConnKey{}, fc)
	}
	return ctx
}

// checkFraming refuses a request whose raw head had a framing fault, and closes its
// connection: 400 for Content-Length with Transfer-Encoding, 431 for a head over
// max_header_bytes. The refusal carries the headers of any API answer (errorHeaders).
func (s *Server) checkFraming(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fc, _ := r.Context().Value(framedConnKey{}).(*framedConn)
		if fc == nil {
			next.ServeHTTP(w, r)
			return
		}
		var status int
		var body string
		switch fc.next() {
		case faultCLAndTE:
			status, body = http.StatusBadRequest, `{"error":"invalid_request","error_description":"both Content-Length and Transfer-Encoding"}`
		case faultHeadTooLarge:
			status, body = http.StatusRequestHeaderFieldsTooLarge, `{"error":"invalid_request","error_description":"request headers too large"}`
		case faultUnframed:
			status, body = http.StatusBadRequest, `{"error":"invalid_request","error_description":"malformed request framing"}`
		default:
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		rt := s.acquireCurrent()
		s.errorHeaders(h, r, rt)
		rt.release()
		h.Set("Connection", "close")
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		w.Write([]byte(body + "\n"))
	})
}
