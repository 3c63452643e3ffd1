package ldap

import (
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// adSubcodes are the "data XXX" sub-codes Active Directory puts in an invalid-credentials
// (49) diagnostic (Microsoft, "Active Directory LDAP bind errors", KB 2683606 / MS-ADTS).
var adSubcodes = map[string]string{
	"525": "the bind DN does not exist (AD 525: user not found)",
	"52e": "wrong password for the bind DN (AD 52e: invalid credentials)",
	"530": "the account may not log on at this time (AD 530)",
	"531": "the account may not log on from this workstation (AD 531)",
	"532": "the account's password has expired (AD 532)",
	"533": "the account is disabled (AD 533)",
	"568": "the account has too many security IDs (AD 568)",
	"701": "the account has expired (AD 701)",
	"773": "the account must change its password before binding (AD 773)",
	"775": "the account is locked out (AD 775)",
}

var adData = regexp.MustCompile(`data ([0-9a-fA-F]{3})`)

// Explain says in plain words what a directory error means and what to change: the
// usual Active Directory and OpenLDAP faults (a signing policy that wants TLS, AD's
// invalid-credentials sub-codes, referrals, a base_dn that does not exist, an untrusted
// certificate). It returns "" for an error it has no words for. It never repeats a
// password: LDAP diagnostics do not carry one.
func Explain(err error) string {
	if err == nil {
		return ""
	}
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		return "the server's certificate is not signed by a CA this machine trusts: set ca_file to the directory's CA (PEM)"
	case errors.As(err, &hn):
		return "the server's certificate does not name the host in url: connect with a name the certificate lists"
	case errors.As(err, &ci):
		return "the server's certificate is invalid (expired or not yet valid?)"
	}
	var le *ldap.Error
	if !errors.As(err, &le) {
		msg := err.Error()
		switch {
		case strings.Contains(msg, "connection refused"):
			return "nothing listens at that address: check url (host and port; ldaps is usually 636, ldap 389)"
		case strings.Contains(msg, "no such host"):
			return "the host name in url does not resolve"
		case strings.Contains(msg, "i/o timeout"), strings.Contains(msg, "deadline exceeded"):
			return "no answer within timeout: a firewall, a wrong port, or ldaps:// on a plain port"
		case strings.Contains(msg, "first record does not look like a TLS handshake"):
			return "the port speaks plain LDAP: use ldap:// (with start_tls: true), not ldaps://"
		}
		return ""
	}
	diag := le.Err.Error()
	switch le.ResultCode {
	case ldap.LDAPResultStrongAuthRequired:
		return "the server requires a secure connection (Active Directory's LDAP signing policy: \"strong authentication required\"): use ldaps:// or start_tls: true"
	case ldap.LDAPResultConfidentialityRequired:
		return "the server requires TLS: use ldaps:// or start_tls: true"
	case ldap.LDAPResultInvalidCredentials:
		if m := adData.FindStringSubmatch(diag); m != nil {
			if s, ok := adSubcodes[strings.ToLower(m[1])]; ok {
				return s
			}
		}
		return "invalid credentials: check bind_dn and bind_password (on AD, bind_dn may also be user@domain)"
	case ldap.LDAPResultReferral:
		return "the server answered with a referral: base_dn is not held by this server (on AD, point url at a domain controller of that domain, or at the global catalog, port 3268/3269)"
	case ldap.LDAPResultSizeLimitExceeded:
		return "more entries match than size_limit allows: the filter is not specific enough to find one user"
	case ldap.LDAPResultTimeLimitExceeded:
		return "the search took longer than time_limit: index the filtered attribute, or narrow base_dn"
	case ldap.LDAPResultNoSuchObject:
		if le.MatchedDN != "" {
			return fmt.Sprintf("base_dn does not exist on this server (the closest existing entry is %q): check base_dn", le.MatchedDN)
		}
		return "base_dn does not exist on this server: check base_dn"
	case ldap.LDAPResultInsufficientAccessRights:
		return "the service account may not do this: grant it read access to base_dn"
	case ldap.LDAPResultUnwillingToPerform:
		return "the server refused (unwilling to perform): on AD this is often a bind without TLS or a disabled account"
	case ldap.LDAPResultInappropriateAuthentication:
		return "the server refuses this kind of bind (an anonymous bind where one is required?): set bind_dn and bind_password"
	case ldap.LDAPResultFilterError:
		return "the server refused the filter's syntax"
	}
	return ""
}
