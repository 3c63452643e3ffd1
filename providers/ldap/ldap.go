// Package ldap connects idbridge to LDAP directories and Active Directory: the pooled
// connections of `directories:` (Directories), the `type: ldap` provider that finds an API
// token by its SHA-256 in the directory (New), and the `lookup:` step that merges a user's
// directory entry into an identity document (NewLookup).
//
// Every value placed into a search filter comes from a {{path}} placeholder and is escaped
// per RFC 4515 (ldap.EscapeFilter); the raw token never is. An entry becomes a JSON
// document {"dn": "…", "<attribute>": ["…", …]} in which every attribute is an array and
// binary values are base64. A search must match exactly one entry: none is "not found",
// two are "ambiguous", and both refuse the user rather than guess.
package ldap
