// A real OpenID provider (npm's oidc-provider) on loopback, for tenantkit's
// tests. It issues JWT access tokens by the client-credentials grant (each
// test client stands for one user: its claims are added to its tokens) and,
// for the dashboard's sign-in, by the authorization-code grant with PKCE
// after its development login page (any login, any password; the login is
// the account, whose tokens carry the claims `accounts` gives it).
//
//   node provider.mjs '<config JSON>'
//
// config: { "keys": [{"kid": "rs1", "alg": "RS256"}, ...],
//           "clients": [{"client_id", "client_secret", "alg", "ttl", "claims"}],
//           "audience": "https://api.tenantkit.test" }
//
// It prints one line, {"issuer": "http://127.0.0.1:<port>"}, when it listens,
// then answers JSON commands, one per line on stdin, with one line each:
//   {"publish": [{"kid", "alg"}, ...]}  the keys it signs with and publishes
//                                        become these (a rotation); {"ok": true}
//   {"dashboard": {"client_id", "redirect_uri", "ttl", "accounts": {login: claims}}}
//                                        a public client for the sign-in; {"ok": true}
//   {"jwks_hits": true}                  how often its key set was fetched
import crypto from 'node:crypto';
import http from 'node:http';
import readline from 'node:readline';
import Provider from 'oidc-provider';

// stdout carries the answers only: the provider's notices go to stderr.
const answer = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
console.log = console.error;
console.info = console.error;

const config = JSON.parse(process.argv[2] ?? '{}');
const generated = new Map();
let jwksHits = 0;
let provider;
let keysInUse = config.keys ?? [{ kid: 'rs1', alg: 'RS256' }];
let dashboard = null;

function key({ kid, alg }) {
  if (!generated.has(kid)) {
    const pair =
      alg === 'RS256' ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
      : alg === 'ES256' ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : crypto.generateKeyPairSync('ed25519');
    generated.set(kid, { ...pair.privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' });
  }
  return generated.get(kid);
}

function dashboardClient() {
  if (!dashboard) return [];
  return [{
    client_id: dashboard.client_id,
    token_endpoint_auth_method: 'none',
    application_type: 'web',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [dashboard.redirect_uri],
    post_logout_redirect_uris: [dashboard.redirect_uri],
    'urn:tenantkit:claims': {},
    'urn:tenantkit:alg': 'RS256',
    'urn:tenantkit:ttl': dashboard.ttl ?? 300,
  }];
}

function build(issuer, keys) {
  const p = new Provider(issuer, {
    cookies: { keys: ['tenantkit-test-cookie-key'] },
    clients: (config.clients ?? []).map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
      'urn:tenantkit:claims': c.claims ?? {},
      'urn:tenantkit:alg': c.alg ?? 'RS256',
      'urn:tenantkit:ttl': c.ttl ?? 300,
    })).concat(dashboardClient()),
    extraClientMetadata: {
      properties: ['urn:tenantkit:claims', 'urn:tenantkit:alg', 'urn:tenantkit:ttl'],
    },
    jwks: { keys: keys.map(key) },
    scopes: ['openid', 'email', 'offline_access'],
    claims: { openid: ['sub'], email: ['email'] },
    // The dashboard's page may call the token endpoint from its origin.
    clientBasedCORS: (ctx, origin, client) => Boolean(dashboard)
      && client.clientId === dashboard.client_id
      && origin === new URL(dashboard.redirect_uri).origin,
    findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id, email: id }) }),
    // A public web client doing the code flow gets a refresh token (as
    // oidc-provider's documentation suggests for single-page apps).
    issueRefreshToken: (ctx, client, code) => client.grantTypeAllowed('refresh_token')
      && (code.scopes.has('offline_access') || (client.applicationType === 'web' && client.clientAuthMethod === 'none')),
    // The dashboard is first-party: no consent screen.
    async loadExistingGrant(ctx) {
      const { client, session } = ctx.oidc;
      const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
      grant.addOIDCScope('openid email offline_access');
      grant.addResourceScope(config.audience, 'api');
      await grant.save();
      session.grantIdFor(client.clientId, grant.jti);
      return grant;
    },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => config.audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource, client) => ({
          scope: 'api',
          audience: resource,
          accessTokenTTL: client['urn:tenantkit:ttl'],
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: client['urn:tenantkit:alg'] } },
        }),
      },
    },
    extraTokenClaims: (ctx, token) => (token.accountId
      ? dashboard?.accounts?.[token.accountId] ?? {}
      : ctx.oidc.client?.['urn:tenantkit:claims']),
  });
  p.proxy = false;
  return p;
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url.startsWith('/jwks')) jwksHits += 1;
  provider.callback()(req, res);
});

server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  provider = build(issuer, keysInUse);
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const command = JSON.parse(line);
    if (command.publish) {
      keysInUse = command.publish;
      provider = build(issuer, keysInUse);
      answer({ ok: true });
    } else if (command.dashboard) {
      dashboard = command.dashboard;
      provider = build(issuer, keysInUse);
      answer({ ok: true });
    } else if (command.jwks_hits) {
      answer({ jwks_hits: jwksHits });
    }
  });
  // The test ends: so does the provider.
  lines.on('close', () => process.exit(0));
  answer({ issuer });
});
