package server

import (
	"net"
	"sync"
)

// Reasons a connection is refused, for the connections-refused metric.
const (
	ConnRefusedTotal     = "total"      // server.max_connections reached
	ConnRefusedPerClient = "per_client" // server.max_connections_per_client reached
)

// limitListener bounds the connections open at once, in total and per client address
// (server.max_connections, server.max_connections_per_client). A connection over
// either bound is closed as soon as it is accepted: held open, it would cost the very
// descriptor the bound protects. Without it one client held 2,000 keep-alive
// connections and only the process's file limit stopped it.
type limitListener struct {
	net.Listener
	total, perClient int            // 0: no bound
	refused          func(string)   // may be nil
	mu               sync.Mutex     // guards open and byAddr
	open             int            // connections accepted and not yet closed
	byAddr           map[string]int // open connections per client address
}

func newLimitListener(ln net.Listener, total, perClient int, refused func(string)) *limitListener {
	return &limitListener{Listener: ln, total: total, perClient: perClient, refused: refused, byAddr: map[string]int{}}
}

// Accept returns the next connection within the bounds; those beyond are closed and
// counted, and Accept waits for the next.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := c.RemoteAddr().String()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = host
		}
		reason := ""
		l.mu.Lock()
		switch {
		case l.total > 0 && l.open >= l.total:
			reason = ConnRefusedTotal
		case l.perClient > 0 && l.byAddr[addr] >= l.perClient:
			reason = ConnRefusedPerClient
		default:
			l.open++
			l.byAddr[addr]++
		}
		l.mu.Unlock()
		if reason == "" {
			return &limitedConn{Conn: c, l: l, addr: addr}, nil
		}
		c.Close()
		if l.refused != nil {
			l.refused(reason)
		}
	}
}

func (l *limitListener) release(addr string) {
	l.mu.Lock()
	l.open--
	if l.byAddr[addr]--; l.byAddr[addr] <= 0 {
		delete(l.byAddr, addr)
	}
	l.mu.Unlock()
}

// limitedConn gives its place back once, on its first Close.
type limitedConn struct {
	net.Conn
	l    *limitListener
	addr string
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.addr) })
	return err
}
