package configs

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/idbridge/idbridge/internal/loopback"
)

// EmbedPathPrefix is reserved on the main listener for the embed script
// (/v1/embed/spotnana.js) and its declarations: no configured route may use it.
const EmbedPathPrefix = "/v1/embed/"

// CheckOrigin checks s as an entry of an origin allowlist, such as
// server.cors.allowed_origins: it must be written exactly as browsers send the Origin
// header (RFC 6454 §6.2), scheme://host[:port] with a lower-case scheme and host, no
// default port, no path (not even a trailing slash), query, fragment or user info. The
// wildcard "*" and "null" are refused: an allowlist names the pages it trusts.
//
// It returns a warning for an http:// origin other than localhost or a loopback
// address, where the page and the tokens it receives travel unencrypted.
func CheckOrigin(s string) (warning string, err error) {
	switch strings.TrimSpace(s) {
	case "":
		return "", fmt.Errorf("empty origin: want scheme://host[:port], e.g. https://app.example.com")
	case "*":
		return "", fmt.Errorf(`"*" is not allowed: list each origin, e.g. https://app.example.com`)
	case "null":
		return "", fmt.Errorf(`"null" is not allowed: it is the origin of sandboxed and file:// pages, which anyone can make`)
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return "", fmt.Errorf("%q is not an origin: want scheme://host[:port], e.g. https://app.example.com", s)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", fmt.Errorf("%q: the scheme must be https or http", s)
	}
	if u.User != nil {
		return "", fmt.Errorf("%q: an origin has no user info", s)
	}
	switch {
	case u.Path == "/" && u.RawQuery == "" && u.Fragment == "" && !u.ForceQuery:
		return "", fmt.Errorf("%q: remove the trailing slash (browsers send %s)", s, strings.TrimSuffix(s, "/"))
	case u.Path != "" || u.RawPath != "":
		return "", fmt.Errorf("%q: an origin has no path (browsers send %s)", s, u.Scheme+"://"+u.Host)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		return "", fmt.Errorf("%q: an origin has no query or fragment", s)
	}
	if strings.Contains(u.Host, "*") {
		return "", fmt.Errorf("%q: wildcards are not allowed: list each origin", s)
	}
	host, port := u.Hostname(), u.Port()
	if port != "" {
		if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
			return "", fmt.Errorf("%q: drop the default port (browsers send %s)", s, u.Scheme+"://"+strings.TrimSuffix(u.Host, ":"+port))
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return "", fmt.Errorf("%q: empty port", s)
	}
	if s != strings.ToLower(s) {
		return "", fmt.Errorf("%q: write it in lower case (browsers send %s)", s, strings.ToLower(s))
	}
	if u.Scheme == "http" && !loopback.Host(host) {
		return fmt.Sprintf("%q is plain http:// on a host other than localhost: the page and the tokens it receives travel unencrypted; use https://", s), nil
	}
	return "", nil
}
