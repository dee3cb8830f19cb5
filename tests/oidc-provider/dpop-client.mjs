// A DPoP client nobody here wrote, for the interoperability tests: panva's
// oauth4webapi (https://github.com/panva/oauth4webapi) sends the token
// requests and the protected resource requests with its own DPoP proofs
// (RFC 9449), and panva's dpop package signs the proofs of the login
// service's JSON login and refresh endpoints, which are not OAuth grants.
//
// Run by tests/dpop_interop.rs (mode `provider`) and by the login service's
// tests/dpop_interop.rs (mode `login-service`); each prints one JSON object,
// what happened at each step, on stdout, and the Rust test checks it (and
// replays the proofs it reports). Keys are generated here, per run.
//
//   node dpop-client.mjs provider <issuer> <resource-url>
//     client credentials at the oidc-provider with a DPoP proof, then two
//     GETs of the resource with the bound token, then one with a proof by
//     another key.
//   node dpop-client.mjs login-service <base-url> <email> <password>
//     login with a proof, two GETs of /auth/me, one with another key's
//     proof, then refresh with the other key and with the right one.
//   node dpop-client.mjs login-service-nonce <base-url> <email> <password>
//     the same login and GETs against a service that requires server
//     nonces: each first attempt is answered use_dpop_nonce and retried
//     once with the nonce handed out, as oauth4webapi documents it.

import * as oauth from 'oauth4webapi';
import * as dpop from 'dpop';

// What tests/oidc-provider/provider.mjs registers.
const CLIENT_ID = 'movies-client';
const CLIENT_SECRET = 'movies-client-secret-0123456789abcdef';
const RESOURCE = 'urn:movies-api';

// Every URL is http on 127.0.0.1.
const insecure = { [oauth.allowInsecureRequests]: true };

async function keyPair() {
  return oauth.generateKeyPair('ES256', { extractable: true });
}

async function publicJwk(pair) {
  const { kty, crv, x, y } = await crypto.subtle.exportKey('jwk', pair.publicKey);
  return { kty, crv, x, y };
}

/// A fetch that records the DPoP and Authorization headers it sends.
function recording(sent) {
  return {
    [oauth.customFetch]: (url, init) => {
      const headers = new Headers(init.headers);
      sent.push({
        url: String(url),
        method: init.method,
        dpop: headers.get('dpop'),
        authorization: headers.get('authorization'),
      });
      return fetch(url, init);
    },
  };
}

/// A protected resource request with oauth4webapi; its challenge (a 401
/// with WWW-Authenticate, which oauth4webapi throws) as data, with whether
/// oauth4webapi takes it for a nonce request and the nonce handed out.
async function resource(accessToken, url, handle, sent) {
  try {
    const response = await oauth.protectedResourceRequest(
      accessToken,
      'GET',
      new URL(url),
      new Headers(),
      null,
      { DPoP: handle, ...insecure, ...recording(sent) },
    );
    return { status: response.status, body: await response.json(), proof: sent.at(-1) };
  } catch (err) {
    if (err instanceof oauth.WWWAuthenticateChallengeError) {
      return {
        status: err.response.status,
        challenges: err.cause.map(({ scheme, parameters }) => ({ scheme, parameters })),
        nonce_error: oauth.isDPoPNonceError(err),
        nonce: err.response.headers.get('dpop-nonce'),
        proof: sent.at(-1),
      };
    }
    throw err;
  }
}

async function provider(issuerUrl, resourceUrl) {
  const issuer = new URL(issuerUrl);
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }),
  );
  const client = { client_id: CLIENT_ID };
  const pair = await keyPair();
  const handle = oauth.DPoP(client, pair);
  const response = await oauth.clientCredentialsGrantRequest(
    as,
    client,
    oauth.ClientSecretPost(CLIENT_SECRET),
    new URLSearchParams({ resource: RESOURCE, scope: 'movies:read' }),
    { DPoP: handle, ...insecure },
  );
  const tokens = await oauth.processClientCredentialsResponse(as, client, response);
  const sent = [];
  const first = await resource(tokens.access_token, resourceUrl, handle, sent);
  const second = await resource(tokens.access_token, resourceUrl, handle, sent);
  const other = oauth.DPoP(client, await keyPair());
  const otherKey = await resource(tokens.access_token, resourceUrl, other, sent);
  return {
    token_type: tokens.token_type,
    access_token: tokens.access_token,
    jwk: await publicJwk(pair),
    calls: [first, second],
    other_key: otherKey,
  };
}

/// A JSON POST with a proof from the dpop package (carrying `nonce` if
/// given), and the `DPoP-Nonce` the answer hands out, if any.
async function postWithProof(pair, url, body, nonce) {
  const proof = await dpop.generateProof(pair, url, 'POST', nonce);
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', dpop: proof },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    body: await response.json(),
    proof,
    nonce: response.headers.get('dpop-nonce'),
  };
}

/// A protected resource request through oauth4webapi, retried once when
/// the server asks for a nonce (its handle keeps the nonce the 401 handed
/// out, so the retry's proof carries it): the first attempt and the retry.
async function resourceWithNonce(accessToken, url, handle, sent) {
  const first = await resource(accessToken, url, handle, sent);
  if (!first.nonce_error) {
    return first;
  }
  return { asked: first, retry: await resource(accessToken, url, handle, sent) };
}

async function loginServiceNonce(base, email, password) {
  const client = { client_id: 'login-service' };
  const pair = await keyPair();
  const url = `${base}/auth/login`;
  const asked = await postWithProof(pair, url, { email, password });
  const login = await postWithProof(pair, url, { email, password }, asked.nonce ?? undefined);
  if (login.status !== 200) {
    return { jwk: await publicJwk(pair), asked, login };
  }
  const token = login.body.access_token;
  // A handle that has seen no answer yet: the first call is asked too.
  const handle = oauth.DPoP(client, pair);
  const sent = [];
  const first = await resourceWithNonce(token, `${base}/auth/me`, handle, sent);
  const second = await resourceWithNonce(token, `${base}/auth/me`, handle, sent);
  return { jwk: await publicJwk(pair), asked, login, calls: [first, second] };
}

async function loginService(base, email, password) {
  const client = { client_id: 'login-service' };
  const pair = await keyPair();
  const otherPair = await keyPair();
  const login = await postWithProof(pair, `${base}/auth/login`, { email, password });
  if (login.status !== 200) {
    return { jwk: await publicJwk(pair), login };
  }
  const token = login.body.access_token;
  const handle = oauth.DPoP(client, pair);
  const sent = [];
  const first = await resource(token, `${base}/auth/me`, handle, sent);
  const second = await resource(token, `${base}/auth/me`, handle, sent);
  const otherKey = await resource(token, `${base}/auth/me`, oauth.DPoP(client, otherPair), sent);
  const refreshBody = { refresh_token: login.body.refresh_token };
  const refreshOtherKey = await postWithProof(otherPair, `${base}/auth/refresh`, refreshBody);
  const refresh = await postWithProof(pair, `${base}/auth/refresh`, refreshBody);
  return {
    jwk: await publicJwk(pair),
    login,
    calls: [first, second],
    other_key: otherKey,
    refresh_other_key: refreshOtherKey,
    refresh,
  };
}

const [mode, ...args] = process.argv.slice(2);
let result;
if (mode === 'provider' && args.length === 2) {
  result = await provider(...args);
} else if (mode === 'login-service' && args.length === 3) {
  result = await loginService(...args);
} else if (mode === 'login-service-nonce' && args.length === 3) {
  result = await loginServiceNonce(...args);
} else {
  process.stderr.write(
    'usage: dpop-client.mjs provider <issuer> <resource-url>\n' +
      '       dpop-client.mjs login-service <base-url> <email> <password>\n' +
      '       dpop-client.mjs login-service-nonce <base-url> <email> <password>\n',
  );
  process.exit(2);
}
process.stdout.write(`${JSON.stringify(result)}\n`);
