// Test-only OIDC peer for idbridge: a real oidc-provider on a free 127.0.0.1 port.
//
// It is started by the Go package in this folder (oidcpeer.go), which passes the client
// secret in IDBRIDGE_PEER_SECRET and reads one JSON line from stdout once the server
// listens: {"issuer": "http://127.0.0.1:PORT"}. Everything lives in memory and dies with
// the process.
//
// Tokens are minted without a browser through a test-only grant (TEST_GRANT below):
//   - without `resource`: an opaque access token with no audience, so that /me accepts it
//     and /token/introspection answers for it;
//   - resource=OPAQUE_RESOURCE: an opaque token with an audience (introspection only);
//   - resource=JWT_RESOURCE: an RFC 9068 JWT access token (typ at+jwt), which
//     oidc-provider refuses to introspect and /me refuses because it has an audience.
// Resource-bound tokens also carry email and email_verified, as many IdPs put them in
// their access tokens; the audience-less token does not, so userinfo enrichment has
// something to add.
import { createHash, generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const TEST_GRANT = 'urn:idbridge:params:oauth:grant-type:test-user';
const OPAQUE_RESOURCE = 'https://api.idbridge.test/opaque';
const JWT_RESOURCE = 'https://api.idbridge.test/jwt';
const RESOURCES = {
  [OPAQUE_RESOURCE]: { audience: 'idbridge-opaque', accessTokenFormat: 'opaque', scope: 'api:read api:write' },
  [JWT_RESOURCE]: { audience: 'idbridge', accessTokenFormat: 'jwt', scope: 'api:read api:write' },
};

const secret = process.env.IDBRIDGE_PEER_SECRET;
if (!secret) {
  console.error('IDBRIDGE_PEER_SECRET is required');
  process.exit(2);
}

// accounts: accountId -> claims, filled by the test grant.
const accounts = new Map();

function accountIdFor(email) {
  return `acct-${createHash('sha256').update(email).digest('hex').slice(0, 16)}`;
}

// A fresh RSA signing key per run: the development keystore would print warnings and
// is the same for every user of the package.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'peer-rs256', alg: 'RS256', use: 'sig' };

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const grantTypes = ['client_credentials', TEST_GRANT];
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'idbridge',
        client_secret: secret,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: grantTypes,
        response_types: [],
        redirect_uris: [],
        scope: 'openid email profile api:read api:write',
      },
      {
        client_id: 'idbridge-post',
        client_secret: secret,
        token_endpoint_auth_method: 'client_secret_post',
        grant_types: grantTypes,
        response_types: [],
        redirect_uris: [],
        scope: 'openid email profile api:read api:write',
      },
      {
        // Another application of the same company: its users' tokens must be refused
        // where client_ids names only idbridge.
        client_id: 'other-app',
        client_secret: secret,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: grantTypes,
        response_types: [],
        redirect_uris: [],
        scope: 'openid email profile api:read api:write',
      },
    ],
    jwks: { keys: [signingKey] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    scopes: ['openid', 'email', 'profile', 'api:read', 'api:write'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => undefined,
        useGrantedResource: async () => false,
        getResourceServerInfo: async (_ctx, resourceIndicator) => {
          const info = RESOURCES[resourceIndicator];
          if (!info) throw new Provider.errors.InvalidTarget();
          return info;
        },
      },
    },
    ttl: { AccessToken: 3600, ClientCredentials: 600, Grant: 3600 },
    extraTokenClaims: async (_ctx, token) => {
      if (!token.resourceServer || !token.accountId) return undefined;
      const claims = accounts.get(token.accountId);
      return claims ? { email: claims.email, email_verified: claims.email_verified } : undefined;
    },
    findAccount: async (_ctx, id) => {
      const claims = accounts.get(id);
      if (!claims) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
    },
  });

  // The test grant: an authenticated client asks for a user token for an email. It stands
  // in for the browser login a real user would go through.
  provider.registerGrantType(TEST_GRANT, async (ctx) => {
    const { client, params } = ctx.oidc;
    const { email } = params;
    if (!email) throw new Provider.errors.InvalidRequest('email is required');
    const accountId = accountIdFor(email);
    accounts.set(accountId, { email, email_verified: params.email_verified !== 'false' });

    const scope = params.scope || 'openid email';
    const grant = new provider.Grant({ accountId, clientId: client.clientId });
    const opts = {
      accountId, client, gty: TEST_GRANT, scope,
    };
    if (params.resource) {
      const info = RESOURCES[params.resource];
      if (!info) throw new Provider.errors.InvalidTarget();
      grant.addResourceScope(params.resource, scope);
      opts.resourceServer = new provider.ResourceServer(params.resource, info);
    } else {
      grant.addOIDCScope(scope);
    }
    opts.grantId = await grant.save();

    const token = new provider.AccessToken(opts);
    const value = await token.save();
    ctx.body = {
      access_token: value,
      token_type: token.tokenType,
      expires_in: token.expiration,
      scope,
    };
  }, ['email', 'email_verified', 'scope', 'resource']);

  provider.on('server_error', (_ctx, err) => console.error('server_error', err));
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({
    issuer, opaque_resource: OPAQUE_RESOURCE, jwt_resource: JWT_RESOURCE, test_grant: TEST_GRANT,
  })}\n`);
});

// The Go side closes stdin to stop us even if it cannot signal (a killed test binary).
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
