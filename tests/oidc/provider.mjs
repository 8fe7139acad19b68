// A real OpenID provider (npm's oidc-provider) on loopback, for tenantkit's
// tests. It issues JWT access tokens by the client-credentials grant (each
// test client stands for one user: its claims are added to its tokens) and
// by the authorization-code grant with PKCE (the dashboard's sign-in).
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
    })),
    extraClientMetadata: {
      properties: ['urn:tenantkit:claims', 'urn:tenantkit:alg', 'urn:tenantkit:ttl'],
    },
    jwks: { keys: keys.map(key) },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
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
    extraTokenClaims: (ctx) => ctx.oidc.client?.['urn:tenantkit:claims'],
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
  provider = build(issuer, config.keys ?? [{ kid: 'rs1', alg: 'RS256' }]);
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const command = JSON.parse(line);
    if (command.publish) {
      provider = build(issuer, command.publish);
      answer({ ok: true });
    } else if (command.jwks_hits) {
      answer({ jwks_hits: jwksHits });
    }
  });
  // The test ends: so does the provider.
  lines.on('close', () => process.exit(0));
  answer({ issuer });
});
