package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// requestFunc returns the raw bytes of the n-th request (n counts from 0 across all
// connections), so that scenarios can cycle through token sets deterministically.
type requestFunc func(n uint64) []byte

// getRequest renders a keep-alive GET with a bearer token.
func getRequest(host, path, token string) []byte {
	return []byte("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + token +
		"\r\nUser-Agent: idbridge-bench\r\n\r\n")
}

// postForm renders a keep-alive POST with a form body and optional bearer token.
func postForm(host, path, token, body string) []byte {
	auth := ""
	if token != "" {
		auth = "Authorization: Bearer " + token + "\r\n"
	}
	return []byte("POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\n" + auth +
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " + strconv.Itoa(len(body)) +
		"\r\nUser-Agent: idbridge-bench\r\n\r\n" + body)
}

// loadResult is one closed-loop run's measured window.
type loadResult struct {
	Requests int64
	Errors   int64 // non-2xx answers and broken connections
	Elapsed  time.Duration
	P50, P99 time.Duration
	FirstErr string
}

// runLoad drives addr with conns keep-alive connections in a closed loop: each
// connection sends its next request as soon as the previous answer is read. Requests
// during warmup are sent but not counted; the measured window is then exactly d long.
// onWindow is called at the start and end of the measured window (CPU samples). The
// client is a raw HTTP/1.1 writer and parser rather than net/http, so that the load
// generator's own cost per request stays far below the servers' on its core.
func runLoad(addr string, conns int, warmup, d time.Duration, gen requestFunc, onWindow func(start bool)) loadResult {
	var (
		ctr      atomic.Uint64
		measure  atomic.Bool
		stop     atomic.Bool
		mu       sync.Mutex
		lats     []time.Duration
		reqs     int64
		errs     int64
		firstErr string
		wg       sync.WaitGroup
	)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<14)
			var nreq, nerr int64
			var errText string
			var c net.Conn
			var br *bufio.Reader
			for !stop.Load() {
				if c == nil {
					var err error
					c, err = net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						nerr++
						errText = err.Error()
						time.Sleep(10 * time.Millisecond)
						continue
					}
					br = bufio.NewReaderSize(c, 16<<10)
				}
				req := gen(ctr.Add(1) - 1)
				counted := measure.Load()
				t0 := time.Now()
				_ = c.SetDeadline(t0.Add(10 * time.Second))
				status, keep, err := roundTrip(c, br, req)
				lat := time.Since(t0)
				if err != nil || !keep {
					c.Close()
					c = nil
				}
				if !counted || !measure.Load() {
					continue
				}
				nreq++
				local = append(local, lat)
				if err != nil || status < 200 || status > 299 {
					nerr++
					if errText == "" {
						if err != nil {
							errText = err.Error()
						} else {
							errText = "status " + strconv.Itoa(status)
						}
					}
				}
			}
			if c != nil {
				c.Close()
			}
			mu.Lock()
			lats = append(lats, local...)
			reqs += nreq
			errs += nerr
			if firstErr == "" {
				firstErr = errText
			}
			mu.Unlock()
		}()
	}
	time.Sleep(warmup)
	onWindow(true)
	start := time.Now()
	measure.Store(true)
	time.Sleep(d)
	measure.Store(false)
	elapsed := time.Since(start)
	onWindow(false)
	stop.Store(true)
	wg.Wait()
	slices.Sort(lats)
	r := loadResult{Requests: reqs, Errors: errs, Elapsed: elapsed, FirstErr: firstErr}
	if len(lats) > 0 {
		r.P50 = lats[len(lats)*50/100]
		r.P99 = lats[len(lats)*99/100]
	}
	return r
}

// roundTrip writes one request and reads its answer: status, whether the connection
// may be reused, and the body discarded (Content-Length or chunked).
func roundTrip(c net.Conn, br *bufio.Reader, req []byte) (int, bool, error) {
	if _, err := c.Write(req); err != nil {
		return 0, false, err
	}
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, err
	}
	length, chunked, keep := -1, false, true
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return status, false, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length, _ = strconv.Atoi(string(value))
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keep = !bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case chunked:
		for {
			l, err := br.ReadSlice('\n')
			if err != nil {
				return status, false, err
			}
			size, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.SplitN(l, []byte(";"), 2)[0])), 16, 64)
			if err != nil {
				return status, false, err
			}
			if _, err := br.Discard(int(size) + 2); err != nil {
				return status, false, err
			}
			if size == 0 {
				break
			}
		}
	case length >= 0:
		if _, err := br.Discard(length); err != nil {
			return status, false, err
		}
	default:
		// No length: the body runs to the close.
		_, err := io.Copy(io.Discard, br)
		if err != nil && !errors.Is(err, io.EOF) {
			return status, false, err
		}
		return status, false, nil
	}
	return status, keep, nil
}
