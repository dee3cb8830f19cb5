// A real OpenID provider for tests/oidc_provider.rs and tests/dpop_interop.rs:
// panva's oidc-provider (https://github.com/panva/node-oidc-provider), on
// 127.0.0.1, issuing RFC 9068 JWT access tokens through the client
// credentials grant; DPoP-bound ones (RFC 9449, `cnf.jkt`) when the token
// request carries a DPoP proof.
//
// Environment (set by the test):
//   PORT       port to listen on; 0 picks one (the test restarts the provider
//              on the port the first start printed, so the issuer stays the same)
//   KEYS_FILE  a JSON array of {"kid", "alg", "pem"} private keys; the first one
//              signs, every one is published in the JWK set (rotation: the new
//              key first, the old one after it while tokens it signed live)
//
// Prints one line, `ready <issuer>`, once it accepts connections; the test
// waits for that line rather than sleeping. Exits on SIGTERM / SIGINT.

import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const CLIENT_ID = 'movies-client';
const CLIENT_SECRET = 'movies-client-secret-0123456789abcdef';
const RESOURCE = 'urn:movies-api';
const AUDIENCE = 'movies-api';

const port = Number(process.env.PORT ?? '0');
const keys = JSON.parse(readFileSync(process.env.KEYS_FILE, 'utf8'));
if (!Array.isArray(keys) || keys.length === 0) {
  throw new Error('KEYS_FILE must hold a non-empty JSON array of {kid, alg, pem}');
}
const jwks = {
  keys: keys.map(({ kid, alg, pem }) => ({
    ...createPrivateKey(pem).export({ format: 'jwk' }),
    kid,
    alg,
    use: 'sig',
  })),
};
const signingAlg = keys[0].alg;

function configuration() {
  return {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    jwks,
    // Only the client credentials grant is used; these keys sign no cookie
    // a test relies on, they just keep the provider from warning.
    cookies: { keys: ['oidc-provider-test-cookie-key-0123456789'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // Only requests that carry a DPoP proof get DPoP-bound tokens.
      dPoP: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (resource !== RESOURCE) {
            throw new Provider.errors.InvalidTarget();
          }
          return {
            scope: 'movies:read movies:write',
            audience: AUDIENCE,
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: signingAlg } },
          };
        },
      },
    },
  };
}

// The issuer must not change across restarts: with PORT=0, listen first and
// name the issuer after the port the system picked.
const server = (await import('node:http')).createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration());
  server.on('request', provider.callback());
  process.stdout.write(`ready ${issuer}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
