package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// logFlushInterval bounds how long an info line may wait in the buffer.
const logFlushInterval = 100 * time.Millisecond

// logSink buffers log output so that the one line logged per request does not cost a
// write system call per request: at load, that call alone was a tenth of a cached
// request's CPU. Lines are flushed every logFlushInterval, at once for warnings and
// errors (see flushingHandler), and when the process stops; a crash can lose at most the
// last interval's info lines.
type logSink struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newLogSink(w io.Writer) *logSink {
	s := &logSink{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(logFlushInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.Flush()
			case <-s.stop:
				return
			}
		}
	}()
	return s
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// Flush writes out what is buffered.
func (s *logSink) Flush() {
	s.mu.Lock()
	s.w.Flush()
	s.mu.Unlock()
}

// Close stops the flusher and flushes what is left.
func (s *logSink) Close() {
	close(s.stop)
	<-s.done
	s.Flush()
}

// flushingHandler flushes the sink after every record at warn level or above, so that a
// problem is on disk at once even when info lines wait.
type flushingHandler struct {
	slog.Handler
	sink *logSink
}

func (h flushingHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		h.sink.Flush()
	}
	return err
}

func (h flushingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return flushingHandler{h.Handler.WithAttrs(attrs), h.sink}
}

func (h flushingHandler) WithGroup(name string) slog.Handler {
	return flushingHandler{h.Handler.WithGroup(name), h.sink}
}
