package server

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"
)

// TestAccessLogMatchesSlog: the hand-written request line is byte for byte what slog's
// JSON and text handlers write for the same record.
func TestAccessLogMatchesSlog(t *testing.T) {
	at := time.Date(2026, 11, 27, 13, 4, 5, 678912345, time.UTC)
	lines := []accessLine{
		{t: at, id: "0123456789abcdef", route: routeUserDetail, status: 200, latency: 1234567 * time.Nanosecond, client: "127.0.0.1", fp: "ada1fe99", provider: "corp-jwt", cached: true},
		{t: at, id: "req-1", route: routeExchange, status: 401, latency: 2 * time.Second, client: "::1", fp: "00ff00ff"},
		{t: at.Add(-at.Sub(at.Truncate(time.Second))), id: "x", route: routeUserDetail, status: 400, latency: 999, client: "10.0.0.1"},
	}
	for _, jsonFormat := range []bool{true, false} {
		for _, l := range lines {
			var want bytes.Buffer
			var h slog.Handler = slog.NewTextHandler(&want, nil)
			if jsonFormat {
				h = slog.NewJSONHandler(&want, nil)
			}
			r := slog.NewRecord(l.t, slog.LevelInfo, "request", 0)
			r.AddAttrs(slog.String("request_id", l.id), slog.String("route", l.route), slog.Int("status", l.status),
				slog.Float64("latency_ms", latencyMS(l.latency)), slog.String("client", l.client))
			if l.fp != "" {
				r.AddAttrs(slog.String("token_fp", l.fp))
			}
			if l.provider != "" {
				r.AddAttrs(slog.String("provider", l.provider), slog.Bool("cached", l.cached))
			}
			if err := h.Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if !(&AccessLog{W: &got, JSON: jsonFormat}).write(&l) {
				t.Fatalf("plain values refused: %+v", l)
			}
			if got.String() != want.String() {
				t.Errorf("json=%v\n got %q\nwant %q", jsonFormat, got.String(), want.String())
			}
		}
	}
	var sink bytes.Buffer
	if (&AccessLog{W: &sink, JSON: true}).write(&accessLine{t: at, id: "x", route: routeUserDetail, status: 200, client: "127.0.0.1", provider: `we"ird name`}) || sink.Len() > 0 {
		t.Fatal("a value that needs escaping must be left to slog")
	}
}
