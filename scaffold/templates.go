package scaffold

const header = `# idbridge starter configuration for {{.Title}}, written by ` + "`idbridge init`" + ` on {{.Written}}.
# {{.Summary}}
#
# Check it with: idbridge check --config FILE   (then --strict where it will run)
# Every secret is a reference, ${env:NAME} or ${file:PATH} (relative to this file's
# folder), never a value: this file can be committed.
{{- if .Discovery}}
# Read from the issuer's discovery document: jwks_uri {{.Discovery.JWKSURI}}
{{- if .Discovery.UserinfoEndpoint}}, userinfo_endpoint {{.Discovery.UserinfoEndpoint}}{{end}}.
{{- else if .DiscoveryError}}
# The issuer's discovery document could not be read from here ({{.DiscoveryError}});
# this is the offline template: the bridge reads the document when it starts.
{{- end}}

server:
  listen: 127.0.0.1:8080            # put TLS in front, or set server.tls
  admin_listen: 127.0.0.1:9090      # health, readiness, metrics, the mapping playground

log: {level: info, format: json}
`

const footer = `
spotnana:
  token_url: https://api-ext-sboxmeta.partners.spotnana.com/v2/auth/oauth2-token   # the sandbox
  client_id: ${env:SPOTNANA_CLIENT_ID}
  client_secret: ${file:secrets/spotnana-client-secret}
`

// userinfo is the OIDC fallback for access tokens without an email claim (Okta, Auth0
// and others put it only in the ID token): the bridge asks userinfo with the same token.
const userinfo = `{{- if or (not .Discovery) .Discovery.UserinfoEndpoint}}
    userinfo:                       # only when the token carries no email claim
      into: userinfo
      when_missing: email{{end}}
`

const oidcMapping = `
mapping:
  email:
    # An email claim counts only when the IdP says it verified it.
    - path: email
      when: {path: email_verified, equals: true}
{{- if or (not .Discovery) .Discovery.UserinfoEndpoint}}
    - path: userinfo.email
      when: {path: userinfo.email_verified, equals: true}
{{- end}}
`

var kinds = map[string]Kind{
	"okta": {Name: "okta", Title: "Okta", Issuer: "https://${env:OKTA_DOMAIN}/oauth2/default",
		Summary: "Access tokens of an Okta authorization server (Security > API), verified with its JWKS.",
		tmpl: `
providers:
  - name: okta
    type: jwt
    issuer: {{q .IssuerValue}}
    audiences: [{{if .Audience}}{{q .Audience}}{{else}}idbridge{{end}}]   # the authorization server's Audience (the default server's is api://default)
` + userinfo + oidcMapping},

	"entra": {Name: "entra", Title: "Microsoft Entra ID", Issuer: "https://login.microsoftonline.com/${env:ENTRA_TENANT_ID}/v2.0",
		Summary: "v2.0 access tokens for an app registration that exposes an API (accessTokenAcceptedVersion: 2).",
		tmpl: `
providers:
  - name: entra
    type: jwt
    issuer: {{q .IssuerValue}}
    audiences: [{{if .Audience}}{{q .Audience}}{{else}}"${env:ENTRA_CLIENT_ID}"{{end}}]   # the app's client ID (v2 tokens) or api://<client ID>
    required_claims:
      tid: ${env:ENTRA_TENANT_ID}   # only your tenant

mapping:
  email:
    # upn is an optional claim (Token configuration > Add optional claim > upn). A guest's
    # upn looks like bob_contoso.com#EXT#@tenant.onmicrosoft.com: not an address.
    - path: upn
      transforms: [trim, lower]
      when: {path: upn, matches: '^[^#]+$'}
    # email is set by users or admins and not verified by Entra: trust it only with an
    # allowed_domains list you control.
  allowed_domains: ["${env:EMAIL_DOMAIN}"]
`},

	"adfs": {Name: "adfs", Title: "AD FS", Issuer: "https://${env:ADFS_HOST}/adfs",
		Summary: "AD FS (2016 or later) access tokens for an application group's Web API.",
		tmpl: `
providers:
  - name: adfs
    type: jwt
    issuer: {{q .IssuerValue}}
    audiences: [{{if .Audience}}{{q .Audience}}{{else}}idbridge{{end}}]   # the Web API's relying party identifier

mapping:
  email:
    - path: upn
      transforms: [trim, lower]
    # Claims issued as URIs keep their name: escape each dot, or gjson reads nested keys.
    - path: 'http://schemas\.xmlsoap\.org/ws/2005/05/identity/claims/emailaddress'
      transforms: [trim, lower]
`},

	"google": {Name: "google", Title: "Google Workspace", Issuer: "https://accounts.google.com",
		Summary: "Google ID tokens of your Workspace domain (Google access tokens are opaque: use ID tokens).",
		tmpl: `
providers:
  - name: google
    type: jwt
    issuer: {{q .IssuerValue}}
    audiences: [{{if .Audience}}{{q .Audience}}{{else}}"${env:GOOGLE_CLIENT_ID}"{{end}}]   # your OAuth client ID
    required_claims:
      hd: ${env:GOOGLE_WORKSPACE_DOMAIN}   # only accounts of your Workspace domain
` + oidcMapping},

	"auth0": {Name: "auth0", Title: "Auth0", Issuer: "https://${env:AUTH0_DOMAIN}/",
		Summary: "Access tokens for an Auth0 API (Applications > APIs); the email comes from userinfo.",
		tmpl: `
providers:
  - name: auth0
    type: jwt
    issuer: {{q .IssuerValue}}     # Auth0's issuer ends with "/"
    audiences: [{{if .Audience}}{{q .Audience}}{{else}}idbridge{{end}}]   # the API's Identifier
` + userinfo + oidcMapping},

	"keycloak": {Name: "keycloak", Title: "Keycloak", Issuer: "https://${env:KEYCLOAK_HOST}/realms/${env:KEYCLOAK_REALM}",
		Summary: "Keycloak realm access tokens; add an audience mapper so that aud names this bridge.",
		tmpl: `
providers:
  - name: keycloak
    type: jwt
    issuer: {{q .IssuerValue}}
    audiences: [{{if .Audience}}{{q .Audience}}{{else}}idbridge{{end}}]   # from an "Audience" protocol mapper
` + userinfo + oidcMapping},

	"oidc": {Name: "oidc", Title: "an OpenID Connect provider", Issuer: "${env:OIDC_ISSUER}",
		Summary: "Any OpenID Connect provider whose access tokens are JWTs.",
		tmpl: `
providers:
  - name: oidc
    type: jwt
    issuer: {{q .IssuerValue}}
    audiences: [{{if .Audience}}{{q .Audience}}{{else}}idbridge{{end}}]
` + userinfo + oidcMapping},

	"ldap": {Name: "ldap", Title: "OpenLDAP", Issuer: "${env:OIDC_ISSUER}",
		Summary: "Tokens from your OIDC provider; the email from the user's OpenLDAP entry.",
		tmpl: `
directories:
  people:
    url: ldaps://${env:LDAP_HOST}:636
    ca_file: ""                     # the directory's CA (PEM) when the system does not trust it
    bind_dn: cn=idbridge,ou=services,${env:LDAP_BASE_DN}
    bind_password: ${file:secrets/ldap-bind-password}
    base_dn: ou=people,${env:LDAP_BASE_DN}

providers:
  - name: corp
    type: jwt
    issuer: {{q .IssuerValue}}
    audiences: [{{if .Audience}}{{q .Audience}}{{else}}idbridge{{end}}]
    lookup:
      directory: people
      filter: "(&(objectClass=inetOrgPerson)(uid={{"{{"}}sub{{"}}"}}))"   # try it: idbridge directory test
      attributes: [mail, uid]

mapping:
  email:
    - path: directory.mail
      transforms: [trim, lower]
`},

	"ad": {Name: "ad", Title: "Active Directory", Issuer: "${env:OIDC_ISSUER}",
		Summary: "Tokens from your OIDC provider; the email from the user's Active Directory entry.",
		tmpl: `
directories:
  ad:
    url: ldaps://${env:AD_DC_HOST}:636   # AD refuses simple binds without TLS ("strong authentication required")
    ca_file: ""                     # the enterprise CA (PEM) that signs the domain controllers
    bind_dn: ${env:AD_BIND_UPN}     # e.g. svc-idbridge@corp.example.com
    bind_password: ${file:secrets/ad-bind-password}
    base_dn: ${env:AD_BASE_DN}      # e.g. DC=corp,DC=example,DC=com

providers:
  - name: corp
    type: jwt
    issuer: {{q .IssuerValue}}
    audiences: [{{if .Audience}}{{q .Audience}}{{else}}idbridge{{end}}]
    lookup:
      directory: ad
      # Enabled users only (bit 2 of userAccountControl clear).
      filter: "(&(objectCategory=person)(objectClass=user)(userPrincipalName={{"{{"}}upn{{"}}"}})(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
      attributes: [mail, userPrincipalName, proxyAddresses]

mapping:
  email:
    - path: directory.mail
      transforms: [trim, lower]
    - path: 'directory.proxyAddresses.#(%"SMTP:*")'   # the primary SMTP address
      transforms: [{trim_prefix: "SMTP:"}, lower]
    - path: directory.userPrincipalName
      transforms: [trim, lower]
`},
}
