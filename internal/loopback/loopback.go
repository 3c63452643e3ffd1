// Package loopback tells an address that stays on this machine from one that may leave
// it. Several safety rules hang on that answer: a plain-http URL or an LDAP bind without
// TLS is tolerated only on loopback, an admin listener without admin_token warns off
// loopback, and the demo's token issuer serves loopback peers only. One predicate keeps
// those rules from disagreeing about what "loopback" means.
package loopback

import (
	"net"
	"strings"
)

// Host reports whether host, a name or an IP literal without port or brackets, is the
// name localhost (any case, as DNS names are) or a loopback address: 127.0.0.0/8, ::1,
// or ::ffff:127.0.0.0/104. Other names, even ones that resolve to loopback, are not: the
// answer must not depend on a resolver.
func Host(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// HostPort is Host for "host:port" (an IPv6 host in brackets, as in a URL authority or a
// listen address). It is false when hostport has no port.
func HostPort(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	return err == nil && Host(host)
}
