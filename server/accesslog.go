package server

import (
	"io"
	"strconv"
	"sync"
	"time"
)

// AccessLog lets the server write its per-request info line itself, in exactly the
// format of slog's JSON or text handler, instead of through slog: at load, slog's record
// building was the largest part of idbridge's own cost on a cached request. Lines that
// carry a refusal reason, or any value that would need escaping, still go through slog.
type AccessLog struct {
	// W receives whole lines, one Write per line; it must be safe for concurrent use and
	// be the writer of the slog handler, so that lines interleave whole.
	W io.Writer
	// JSON selects slog's JSON format; otherwise its text format.
	JSON bool
}

// accessLine is one request line's fields.
type accessLine struct {
	t        time.Time
	id       string
	route    string
	status   int
	latency  time.Duration
	client   string
	fp       string
	provider string
	cached   bool
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 320); return &b }}

// plain reports whether s needs no quoting or escaping in either slog format.
func plain(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') ||
			c == '-' || c == '_' || c == '.' || c == ':' || c == '/') {
			return false
		}
	}
	return true
}

// write writes l and reports true, or reports false when a value is not plain (the
// caller then logs through slog).
func (a *AccessLog) write(l *accessLine) bool {
	if !plain(l.id) || !plain(l.client) || (l.fp != "" && !plain(l.fp)) || (l.provider != "" && !plain(l.provider)) {
		return false
	}
	bp := lineBufs.Get().(*[]byte)
	b := (*bp)[:0]
	if a.JSON {
		b = append(b, `{"time":"`...)
		b = l.t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","level":"INFO","msg":"request","request_id":"`...)
		b = append(b, l.id...)
		b = append(b, `","route":"`...)
		b = append(b, l.route...)
		b = append(b, `","status":`...)
		b = strconv.AppendInt(b, int64(l.status), 10)
		b = append(b, `,"latency_ms":`...)
		b = strconv.AppendFloat(b, latencyMS(l.latency), 'f', -1, 64)
		b = append(b, `,"client":"`...)
		b = append(b, l.client...)
		b = append(b, '"')
		if l.fp != "" {
			b = append(b, `,"token_fp":"`...)
			b = append(b, l.fp...)
			b = append(b, '"')
		}
		if l.provider != "" {
			b = append(b, `,"provider":"`...)
			b = append(b, l.provider...)
			b = append(b, `","cached":`...)
			b = strconv.AppendBool(b, l.cached)
		}
		b = append(b, "}\n"...)
	} else {
		b = append(b, "time="...)
		b = appendRFC3339Millis(b, l.t)
		b = append(b, " level=INFO msg=request request_id="...)
		b = append(b, l.id...)
		b = append(b, " route="...)
		b = append(b, l.route...)
		b = append(b, " status="...)
		b = strconv.AppendInt(b, int64(l.status), 10)
		b = append(b, " latency_ms="...)
		b = strconv.AppendFloat(b, latencyMS(l.latency), 'g', -1, 64)
		b = append(b, " client="...)
		b = append(b, l.client...)
		if l.fp != "" {
			b = append(b, " token_fp="...)
			b = append(b, l.fp...)
		}
		if l.provider != "" {
			b = append(b, " provider="...)
			b = append(b, l.provider...)
			b = append(b, " cached="...)
			b = strconv.AppendBool(b, l.cached)
		}
		b = append(b, '\n')
	}
	a.W.Write(b)
	*bp = b
	lineBufs.Put(bp)
	return true
}

// appendRFC3339Millis formats t as slog's text handler does: RFC 3339 with exactly three
// fractional digits.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...)
}

// latencyMS is a duration in milliseconds with microsecond precision: a unit an operator
// reads without converting, as the latency_ms field of every request line. The fast
// path writes it as slog would: JSON as encoding/json formats a float ('f' in the range
// a request's latency has), text with 'g'.
func latencyMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
