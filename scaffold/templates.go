package scaffold

// Placeholders in a kind's template, replaced by Render. No text/template: it reaches
// methods by name through reflection, which makes the linker keep every exported
// method of every type in the binary (+12 MB of text, +5 MB of resident memory in
// serve, where no template is ever used).
const (
	issuerPlaceholder          = "@ISSUER@"           // the issuer, a quoted YAML scalar
	audiencePlaceholder        = "@AUDIENCE@"         // the audience, quoted, or the kind's default
	userinfoPlaceholder        = "@USERINFO@"         // userinfoStep, unless discovery found no userinfo_endpoint
	userinfoMappingPlaceholder = "@USERINFO_MAPPING@" // userinfoMapping, on the same condition
)

// common follows the header in every starter config.
const common = `
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

// userinfoStep is the OIDC fallback for access tokens without an email claim (Okta,
// Auth0 and others put it only in the ID token): the bridge asks userinfo with the same
// token.
const userinfoStep = `    userinfo:                       # only when the token carries no email claim
      into: userinfo
      when_missing: email
`

const oidcMapping = `
mapping:
  email:
    # An email claim counts only when the IdP says it verified it.
    - path: email
      when: {path: email_verified, equals: true}
@USERINFO_MAPPING@`

const userinfoMapping = `    - path: userinfo.email
      when: {path: userinfo.email_verified, equals: true}
`

var kinds = map[string]Kind{
	"okta": {Name: "okta", Title: "Okta", Issuer: "https://${env:OKTA_DOMAIN}/oauth2/default",
		Summary:  "Access tokens of an Okta authorization server (Security > API), verified with its JWKS.",
		audience: `idbridge`,
		// An Okta access token's sub is the user's login; its userinfo answers sub = the
		// user id, which the token carries in uid. Comparing with sub refuses everyone.
		userinfoSubject:    "uid",
		userinfoSubjectWhy: "Okta's userinfo sub is the user id, which the access token carries in uid (its sub is the login)",
		tmpl: `
providers:
  - name: okta
    type: jwt
    issuer: @ISSUER@
    audiences: [@AUDIENCE@]   # the authorization server's Audience (the default server's is api://default)
@USERINFO@` + oidcMapping},

	"entra": {Name: "entra", Title: "Microsoft Entra ID", Issuer: "https://login.microsoftonline.com/${env:ENTRA_TENANT_ID}/v2.0",
		Summary:  "v2.0 access tokens for an app registration that exposes an API (accessTokenAcceptedVersion: 2).",
		audience: `"${env:ENTRA_CLIENT_ID}"`,
		tmpl: `
providers:
  - name: entra
    type: jwt
    issuer: @ISSUER@
    audiences: [@AUDIENCE@]   # the app's client ID (v2 tokens) or api://<client ID>
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
		Summary:  "AD FS (2016 or later) access tokens for an application group's Web API.",
		audience: `idbridge`,
		tmpl: `
providers:
  - name: adfs
    type: jwt
    issuer: @ISSUER@
    audiences: [@AUDIENCE@]   # the Web API's relying party identifier

mapping:
  email:
    - path: upn
      transforms: [trim, lower]
    # Claims issued as URIs keep their name: escape each dot, or gjson reads nested keys.
    - path: 'http://schemas\.xmlsoap\.org/ws/2005/05/identity/claims/emailaddress'
      transforms: [trim, lower]
`},

	"google": {Name: "google", Title: "Google Workspace", Issuer: "https://accounts.google.com",
		Summary:  "Google ID tokens of your Workspace domain (Google access tokens are opaque: use ID tokens).",
		audience: `"${env:GOOGLE_CLIENT_ID}"`,
		tmpl: `
providers:
  - name: google
    type: jwt
    issuer: @ISSUER@
    audiences: [@AUDIENCE@]   # your OAuth client ID
    required_claims:
      hd: ${env:GOOGLE_WORKSPACE_DOMAIN}   # only accounts of your Workspace domain
` + oidcMapping},

	"auth0": {Name: "auth0", Title: "Auth0", Issuer: "https://${env:AUTH0_DOMAIN}/",
		Summary:  "Access tokens for an Auth0 API (Applications > APIs); the email comes from userinfo.",
		audience: `idbridge`,
		tmpl: `
providers:
  - name: auth0
    type: jwt
    issuer: @ISSUER@     # Auth0's issuer ends with "/"
    audiences: [@AUDIENCE@]   # the API's Identifier
@USERINFO@` + oidcMapping},

	"keycloak": {Name: "keycloak", Title: "Keycloak", Issuer: "https://${env:KEYCLOAK_HOST}/realms/${env:KEYCLOAK_REALM}",
		Summary:  "Keycloak realm access tokens; add an audience mapper so that aud names this bridge.",
		audience: `idbridge`,
		tmpl: `
providers:
  - name: keycloak
    type: jwt
    issuer: @ISSUER@
    audiences: [@AUDIENCE@]   # from an "Audience" protocol mapper
@USERINFO@` + oidcMapping},

	"oidc": {Name: "oidc", Title: "an OpenID Connect provider", Issuer: "${env:OIDC_ISSUER}",
		Summary:  "Any OpenID Connect provider whose access tokens are JWTs.",
		audience: `idbridge`,
		tmpl: `
providers:
  - name: oidc
    type: jwt
    issuer: @ISSUER@
    audiences: [@AUDIENCE@]
@USERINFO@` + oidcMapping},

	"ldap": {Name: "ldap", Title: "OpenLDAP", Issuer: "${env:OIDC_ISSUER}",
		Summary:  "Tokens from your OIDC provider; the email from the user's OpenLDAP entry.",
		audience: `idbridge`,
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
    issuer: @ISSUER@
    audiences: [@AUDIENCE@]
    lookup:
      directory: people
      filter: "(&(objectClass=inetOrgPerson)(uid={{sub}}))"   # try it: idbridge directory test
      attributes: [mail, uid]

mapping:
  email:
    - path: directory.mail
      transforms: [trim, lower]
`},

	"ad": {Name: "ad", Title: "Active Directory", Issuer: "${env:OIDC_ISSUER}",
		Summary:  "Tokens from your OIDC provider; the email from the user's Active Directory entry.",
		audience: `idbridge`,
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
    issuer: @ISSUER@
    audiences: [@AUDIENCE@]
    lookup:
      directory: ad
      # Enabled users only (bit 2 of userAccountControl clear).
      filter: "(&(objectCategory=person)(objectClass=user)(userPrincipalName={{upn}})(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
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
