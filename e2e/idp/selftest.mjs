// Self-test of the stand-in IdP (start it first with e2e/scripts/idp-up.sh):
//   node e2e/idp/selftest.mjs
// A headless client (HTTPS + cookie jar, no browser, no JavaScript) walks the
// authorization code flow with PKCE through the HTML login form, exchanges the
// code, checks ID token / userinfo claims, refreshes, and drives the /__admin/
// test controls. Exits non-zero on the first failure.
//
// Env: IDP_PORT (18443), IDP_CA (<STATE_DIR>/idp/ca.crt), STATE_DIR
//      (<repo>/e2e/.state), IDP_ADMIN_TOKEN (e2e-admin).
// The users/clients of e2e/idp/config.json are assumed. Changes made through
// /__admin/ are undone at the end, except the signing-key rotation and the
// users created at runtime (their addresses are random, so the self-test can
// run again against the same IdP).

import { createHash, createPublicKey, randomBytes, verify as verifySig } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const STATE_DIR = process.env.STATE_DIR || path.join(HERE, '..', '.state');
const PORT = process.env.IDP_PORT || '18443';
const CA = readFileSync(process.env.IDP_CA || path.join(STATE_DIR, 'idp', 'ca.crt'));
const ADMIN_TOKEN = process.env.IDP_ADMIN_TOKEN || 'e2e-admin';
const BASE = `https://localhost:${PORT}`;
const ISSUER = `${BASE}/oauth2/default`;
const REDIRECT_URI = 'http://localhost:8301';

let passed = 0;
function ok(cond, what, detail) {
  if (!cond) {
    console.log(`not ok - ${what}${detail === undefined ? '' : `: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`}`);
    console.log(`${passed} passed, 1 failed`);
    process.exit(1);
  }
  passed += 1;
  console.log(`ok - ${what}`);
}

// --- tiny HTTPS client with a cookie jar (no redirect following) -------------

class Jar {
  constructor() { this.cookies = new Map(); } // name -> { value, path }

  store(setCookie = []) {
    for (const line of setCookie) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let cpath = '/';
      let expired = value === '';
      for (const a of attrs) {
        const [k, v = ''] = a.split('=');
        if (k.toLowerCase() === 'path') cpath = v;
        if (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) expired = true;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
      }
      const key = `${name}\u0000${cpath}`;
      if (expired) this.cookies.delete(key);
      else this.cookies.set(key, { name, value, path: cpath });
    }
  }

  header(urlPath) {
    return [...this.cookies.values()]
      .filter((c) => urlPath === c.path || urlPath.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`).join('; ');
  }
}

function request(method, url, { jar, headers = {}, body } = {}) {
  const u = new URL(url, BASE);
  const h = { ...headers };
  if (jar) {
    const cookie = jar.header(u.pathname);
    if (cookie) h.cookie = cookie;
  }
  let payload;
  if (body instanceof URLSearchParams) {
    payload = body.toString();
    h['content-type'] = 'application/x-www-form-urlencoded';
  } else if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    h['content-type'] ||= 'application/json';
  }
  return new Promise((resolve, reject) => {
    const req = https.request(u, { method, headers: h, ca: CA }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        if (jar) jar.store(res.headers['set-cookie']);
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error(`timeout: ${method} ${u.pathname}`)));
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

// Follows redirects that stay on the IdP; returns the first response that is
// not a redirect, or { callback: URL } for the redirect to REDIRECT_URI.
async function follow(res, jar) {
  let r = res;
  for (let i = 0; i < 20; i += 1) {
    if (![302, 303].includes(r.status)) return r;
    const loc = new URL(r.headers.location, BASE);
    if (loc.href.startsWith(REDIRECT_URI)) return { callback: loc };
    r = await request('GET', loc.href, { jar });
  }
  throw new Error('too many redirects');
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const basic = (id, secret) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
const admin = (p, body) => request('POST', `/__admin${p}`, { headers: { 'x-admin-token': ADMIN_TOKEN }, body });

function formAction(html) {
  const m = html.match(/<form[^>]*action="([^"]*\/login)"/);
  return m && m[1].replace(/&amp;/g, '&');
}

let jwks;
function decodeJwt(jwt) {
  const [h, p, s] = jwt.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const payload = JSON.parse(Buffer.from(p, 'base64url'));
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  const valid = Boolean(jwk) && header.alg === 'RS256'
    && verifySig('RSA-SHA256', Buffer.from(`${h}.${p}`), createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(s, 'base64url'));
  return { header, payload, valid };
}

function authorizeUrl(clientId, { scope = 'openid profile email groups offline_access' } = {}) {
  const verifier = b64url(randomBytes(32));
  const state = b64url(randomBytes(12));
  const nonce = b64url(randomBytes(12));
  const q = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    scope,
    redirect_uri: REDIRECT_URI,
    state,
    nonce,
    code_challenge: b64url(createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
  });
  return { url: `${ISSUER}/v1/authorize?${q}`, verifier, state, nonce };
}

// Full login through the form; returns { code, verifier, nonce } .
async function login(clientId, jar, username, password) {
  const a = authorizeUrl(clientId);
  let r = await follow(await request('GET', a.url, { jar }), jar);
  if (!r.callback) {
    ok(r.status === 200 && /name="username"/.test(r.text) && /name="password"/.test(r.text), `${clientId}: login form shown`, r.status);
    r = await follow(await request('POST', formAction(r.text), {
      jar, body: new URLSearchParams({ username, password }),
    }), jar);
  }
  ok(r.callback, `${clientId}: redirected back to ${REDIRECT_URI}`, r.status);
  const params = r.callback.searchParams;
  ok(params.get('state') === a.state, `${clientId}: state round-trips`);
  ok(params.get('iss') === ISSUER, `${clientId}: iss parameter in the authorization response`);
  ok(params.get('code'), `${clientId}: got an authorization code`, Object.fromEntries(params));
  return { code: params.get('code'), verifier: a.verifier, nonce: a.nonce };
}

function tokenRequest(clientId, secret, params, method = 'basic') {
  const body = new URLSearchParams(params);
  const headers = {};
  if (method === 'basic') headers.authorization = basic(clientId, secret);
  else { body.set('client_id', clientId); body.set('client_secret', secret); }
  return request('POST', `${ISSUER}/v1/token`, { headers, body });
}

// --- the test ------------------------------------------------------------------

const discovery = await request('GET', `${ISSUER}/.well-known/openid-configuration`);
ok(discovery.status === 200 && discovery.json.issuer === ISSUER, 'discovery via localhost', discovery.json?.issuer);
ok(discovery.json.token_endpoint === `${ISSUER}/v1/token`
  && discovery.json.authorization_endpoint === `${ISSUER}/v1/authorize`
  && discovery.json.userinfo_endpoint === `${ISSUER}/v1/userinfo`
  && discovery.json.jwks_uri === `${ISSUER}/v1/keys`, 'Okta-style endpoint paths');
const viaIp = await request('GET', `https://127.0.0.1:${PORT}/oauth2/default/.well-known/openid-configuration`);
ok(viaIp.status === 200 && viaIp.json.issuer === ISSUER, 'discovery via 127.0.0.1 keeps the localhost issuer', viaIp.json?.issuer);
jwks = (await request('GET', discovery.json.jwks_uri)).json;

// token endpoint with a dummy code
const dummy = { grant_type: 'authorization_code', code: 'dummy', redirect_uri: REDIRECT_URI };
let r = await tokenRequest('infra-e2e', 'infra-e2e-secret', dummy);
ok(r.status === 400 && r.json.error === 'invalid_grant', 'dummy code + right credentials => invalid_grant', r.text);
r = await tokenRequest('infra-e2e', 'wrong', dummy);
ok(r.status === 401 && r.json.error === 'invalid_client', 'dummy code + wrong secret => invalid_client', r.text);
r = await tokenRequest('no-such-client', 'x', dummy);
ok(r.status === 401 && r.json.error === 'invalid_client', 'dummy code + unknown client => invalid_client', r.text);

// wrong password re-renders the form; cancel => access_denied
{
  const jar = new Jar();
  let res = await follow(await request('GET', authorizeUrl('infra-e2e').url, { jar }), jar);
  res = await request('POST', formAction(res.text), { jar, body: new URLSearchParams({ username: 'alice@example.com', password: 'nope' }) });
  ok(res.status === 200 && /class="error"/.test(res.text) && /name="password"/.test(res.text), 'wrong password re-renders the form with an error');
  const cancel = res.text.match(/action="([^"]*\/abort)"/)[1];
  res = await follow(await request('POST', cancel, { jar }), jar);
  ok(res.callback && res.callback.searchParams.get('error') === 'access_denied', 'Cancel => error=access_denied', res.callback?.href);
}

// infra-e2e (client_secret_basic): groups in the ID token
const aliceJar = new Jar();
const a1 = await login('infra-e2e', aliceJar, 'alice@example.com', 'alice-password');
r = await tokenRequest('infra-e2e', 'infra-e2e-secret', {
  grant_type: 'authorization_code', code: a1.code, redirect_uri: REDIRECT_URI, code_verifier: a1.verifier,
});
ok(r.status === 200 && r.json.id_token && r.json.access_token && r.json.refresh_token, 'infra-e2e: code exchange returns id/access/refresh tokens', r.text);
ok(r.json.token_type === 'Bearer' && r.json.scope === 'openid profile email groups offline_access', 'infra-e2e: token type and scope', { token_type: r.json.token_type, scope: r.json.scope });
let idt = decodeJwt(r.json.id_token);
ok(idt.valid, 'infra-e2e: ID token signature verifies against /v1/keys');
ok(idt.payload.iss === ISSUER && idt.payload.aud === 'infra-e2e' && idt.payload.nonce === a1.nonce, 'infra-e2e: iss/aud/nonce');
ok(idt.payload.sub === '00u-alice' && idt.payload.email === 'alice@example.com' && idt.payload.email_verified === true
  && idt.payload.name === 'Alice Example' && idt.payload.preferred_username === 'alice@example.com', 'infra-e2e: profile/email claims in ID token');
ok(JSON.stringify(idt.payload.groups) === '["engineering","admins"]', 'infra-e2e: groups claim in ID token', idt.payload.groups);
const aliceRefresh = r.json.refresh_token;
r = await request('GET', `${ISSUER}/v1/userinfo`, { headers: { authorization: `Bearer ${r.json.access_token}` } });
ok(r.status === 200 && JSON.stringify(r.json.groups) === '["engineering","admins"]', 'infra-e2e: userinfo has groups', r.text);

// refresh
r = await tokenRequest('infra-e2e', 'infra-e2e-secret', { grant_type: 'refresh_token', refresh_token: aliceRefresh });
ok(r.status === 200 && r.json.id_token && r.json.access_token, 'infra-e2e: refresh works', r.text);
ok(JSON.stringify(decodeJwt(r.json.id_token).payload.groups) === '["engineering","admins"]', 'infra-e2e: refreshed ID token has groups');

// group change is visible at the next refresh
r = await admin('/users/alice@example.com/groups', ['engineering']);
ok(r.status === 200, 'admin: set groups', r.text);
r = await tokenRequest('infra-e2e', 'infra-e2e-secret', { grant_type: 'refresh_token', refresh_token: aliceRefresh });
ok(r.status === 200 && JSON.stringify(decodeJwt(r.json.id_token).payload.groups) === '["engineering"]', 'refresh after group change reflects new groups');
await admin('/users/alice@example.com/groups', ['engineering', 'admins']);

// SSO session + client_secret_post client (consent auto-approved, no form)
const p1 = await login('infra-e2e-post', aliceJar, 'unused', 'unused');
r = await tokenRequest('infra-e2e-post', 'infra-e2e-post-secret', {
  grant_type: 'authorization_code', code: p1.code, redirect_uri: REDIRECT_URI, code_verifier: p1.verifier,
}, 'post');
ok(r.status === 200 && decodeJwt(r.json.id_token).payload.sub === '00u-alice', 'infra-e2e-post: SSO login + client_secret_post exchange', r.text);

// infra-e2e-thin: no groups in the ID token, groups in userinfo
const bobJar = new Jar();
const t1 = await login('infra-e2e-thin', bobJar, 'bob@example.com', 'bob-password');
r = await tokenRequest('infra-e2e-thin', 'infra-e2e-thin-secret', {
  grant_type: 'authorization_code', code: t1.code, redirect_uri: REDIRECT_URI, code_verifier: t1.verifier,
});
ok(r.status === 200 && r.json.refresh_token, 'infra-e2e-thin: code exchange', r.text);
idt = decodeJwt(r.json.id_token);
ok(idt.valid && idt.payload.sub === '00u-bob' && idt.payload.email === 'bob@example.com', 'infra-e2e-thin: ID token valid with email');
ok(!('groups' in idt.payload), 'infra-e2e-thin: ID token has no groups claim', Object.keys(idt.payload));
const bobRefresh = r.json.refresh_token;
r = await request('GET', `${ISSUER}/v1/userinfo`, { headers: { authorization: `Bearer ${r.json.access_token}` } });
ok(r.status === 200 && JSON.stringify(r.json.groups) === '["engineering"]', 'infra-e2e-thin: userinfo has groups', r.text);
r = await tokenRequest('infra-e2e-thin', 'infra-e2e-thin-secret', { grant_type: 'refresh_token', refresh_token: bobRefresh });
ok(r.status === 200 && !('groups' in decodeJwt(r.json.id_token).payload), 'infra-e2e-thin: refresh works, still no groups in ID token', r.text);

// a reused code fails, and (RFC 6749 4.1.2) revokes what was issued for it
r = await tokenRequest('infra-e2e-thin', 'infra-e2e-thin-secret', {
  grant_type: 'authorization_code', code: t1.code, redirect_uri: REDIRECT_URI, code_verifier: t1.verifier,
});
ok(r.status === 400 && r.json.error === 'invalid_grant', 'reused code => invalid_grant', r.text);
r = await tokenRequest('infra-e2e-thin', 'infra-e2e-thin-secret', { grant_type: 'refresh_token', refresh_token: bobRefresh });
ok(r.status === 400 && r.json.error === 'invalid_grant', 'refresh token of a reused code is revoked', r.text);

// disable alice: refresh fails, login fails, the SSO session asks for a login again
r = await admin('/users/alice@example.com/disable');
ok(r.status === 200 && r.json.disabled === true, 'admin: disable alice', r.text);
r = await tokenRequest('infra-e2e', 'infra-e2e-secret', { grant_type: 'refresh_token', refresh_token: aliceRefresh });
ok(r.status === 400 && r.json.error === 'invalid_grant', 'refresh for a disabled user => invalid_grant', r.text);
{
  let res = await follow(await request('GET', authorizeUrl('infra-e2e').url, { jar: aliceJar }), aliceJar);
  ok(res.status === 200 && /name="password"/.test(res.text), 'disabled user: existing session must log in again');
  res = await request('POST', formAction(res.text), { jar: aliceJar, body: new URLSearchParams({ username: 'alice@example.com', password: 'alice-password' }) });
  ok(res.status === 200 && /class="error"/.test(res.text), 'disabled user cannot log in');
}
r = await admin('/users/alice@example.com/enable');
ok(r.status === 200 && r.json.disabled === false, 'admin: enable alice', r.text);
r = await tokenRequest('infra-e2e', 'infra-e2e-secret', { grant_type: 'refresh_token', refresh_token: aliceRefresh });
ok(r.status === 200, 'refresh works again after enable', r.text);

// admin auth
r = await request('POST', '/__admin/users/alice@example.com/disable', { headers: { 'x-admin-token': 'wrong' } });
ok(r.status === 401, 'admin endpoints need the admin token');

// signing key rotation: new kid signs, old kid stays published
r = await tokenRequest('infra-e2e', 'infra-e2e-secret', { grant_type: 'refresh_token', refresh_token: aliceRefresh });
const oldKid = decodeJwt(r.json.id_token).header.kid;
r = await admin('/keys/rotate');
ok(r.status === 200 && r.json.current !== oldKid && r.json.published.includes(oldKid), 'admin: rotate keys', r.text);
jwks = (await request('GET', discovery.json.jwks_uri)).json;
ok(jwks.keys.some((k) => k.kid === oldKid) && jwks.keys.some((k) => k.kid === r.json.current), '/v1/keys publishes old and new key');
const newKid = r.json.current;
r = await tokenRequest('infra-e2e', 'infra-e2e-secret', { grant_type: 'refresh_token', refresh_token: aliceRefresh });
idt = decodeJwt(r.json.id_token);
ok(idt.valid && idt.header.kid === newKid, 'ID tokens are signed with the new key after rotation', idt.header);

// runtime users: POST /__admin/users
const dave = `dave-${b64url(randomBytes(6)).replace(/[-_]/g, 'x').toLowerCase()}@example.com`;
r = await admin('/users', { email: dave, password: 'dave-password', groups: ['qa', 'engineering'] });
ok(r.status === 201 && r.json.email === dave && /^00u/.test(r.json.sub)
  && JSON.stringify(r.json.groups) === '["qa","engineering"]' && r.json.tamper === null, 'admin: create a user => 201', r.text);
const daveSub = r.json.sub;
r = await admin('/users', { email: dave.toUpperCase(), password: 'x', groups: [] });
ok(r.status === 409, 'admin: creating an existing user => 409', r.text);
for (const bad of ['not json', '[]', { password: 'x' }, { email: 'no-at-sign', password: 'x' }, { email: 'x@example.com' },
  { email: 'x@example.com', password: '' }, { email: 'x@example.com', password: 'x', groups: 'qa' },
  { email: 'x@example.com', password: 'x', groups: [1] }]) {
  r = await admin('/users', bad);
  ok(r.status === 400, `admin: create with a bad body ${JSON.stringify(bad)} => 400`, r.text);
}
r = await request('POST', '/__admin/users', { headers: { 'x-admin-token': 'wrong' }, body: { email: 'y@example.com', password: 'y' } });
ok(r.status === 401, 'admin: create a user needs the admin token');
r = await request('GET', '/__admin/users', { headers: { 'x-admin-token': ADMIN_TOKEN } });
ok(r.json.some((u) => u.email === dave), 'admin: the new user is listed');

const daveJar = new Jar();
let d = await login('infra-e2e', daveJar, dave, 'dave-password');
r = await tokenRequest('infra-e2e', 'infra-e2e-secret', {
  grant_type: 'authorization_code', code: d.code, redirect_uri: REDIRECT_URI, code_verifier: d.verifier,
});
ok(r.status === 200 && r.json.refresh_token, 'new user: can log in', r.text);
idt = decodeJwt(r.json.id_token);
ok(idt.valid && idt.payload.sub === daveSub && idt.payload.email === dave
  && JSON.stringify(idt.payload.groups) === '["qa","engineering"]', 'new user: ID token has the new user\'s claims', idt.payload);
const daveRefresh = r.json.refresh_token;
const daveNonce = d.nonce;

// ID-token tampering: POST /__admin/users/{email}/tamper
const atHash = (at) => b64url(createHash('sha256').update(at).digest().subarray(0, 16));
// What is wrong with a token response's ID token, as a sorted list.
function problems(tokens, nonce) {
  const t = decodeJwt(tokens.id_token);
  const p = t.payload;
  const now = Math.floor(Date.now() / 1000);
  const out = [];
  if (t.header.alg !== 'RS256') out.push('alg');
  if (!jwks.keys.some((k) => k.kid === t.header.kid)) out.push('unknown_kid');
  else if (t.header.kid !== newKid) out.push('not_current_kid');
  else if (!t.valid) out.push('signature');
  if (p.iss !== ISSUER) out.push('iss');
  if (p.aud !== 'infra-e2e') out.push('aud');
  if (!(p.exp > now && p.iat <= now + 5 && p.iat > now - 60)) out.push('times');
  if (!('nonce' in p)) out.push('nonce_missing');
  else if (p.nonce !== nonce) out.push('nonce');
  if (p.at_hash !== atHash(tokens.access_token)) out.push('at_hash');
  if (p.sub !== daveSub || p.email !== dave) out.push('identity');
  return out.sort();
}
// Besides "what is wrong": the specific values each mode promises.
const modeChecks = {
  expired: (p) => p.exp < Date.now() / 1000 - 9 * 60 && p.iat < Date.now() / 1000 - 19 * 60 && p.exp - p.iat === 600,
  wrong_audience: (p) => p.aud === 'someone-else',
  unknown_key: () => true,
  tampered: (p, jwt) => {
    // restoring the email gives back the signed payload: only the email changed
    const [h, , s] = jwt.split('.');
    return p.email === 'mallory@example.com' && decodeJwt(`${h}.${b64url(JSON.stringify({ ...p, email: dave }))}.${s}`).valid;
  },
  no_nonce: (p) => !('nonce' in p),
  wrong_nonce: (p) => typeof p.nonce === 'string' && p.nonce.length >= 16,
  bad_at_hash: (p) => typeof p.at_hash === 'string' && p.at_hash.length === 22,
};
const expectedProblems = {
  expired: ['times'],
  wrong_audience: ['aud'],
  unknown_key: ['unknown_kid'],
  tampered: ['identity', 'signature'],
  no_nonce: ['nonce_missing'],
  wrong_nonce: ['nonce'],
  bad_at_hash: ['at_hash'],
};
for (const [mode, expected] of Object.entries(expectedProblems)) {
  r = await admin(`/users/${encodeURIComponent(dave)}/tamper`, { mode });
  ok(r.status === 200 && r.json.tamper === mode, `admin: tamper ${mode}`, r.text);
  d = await login('infra-e2e', daveJar, 'unused', 'unused');
  r = await tokenRequest('infra-e2e', 'infra-e2e-secret', {
    grant_type: 'authorization_code', code: d.code, redirect_uri: REDIRECT_URI, code_verifier: d.verifier,
  });
  ok(r.status === 200 && r.json.access_token && r.json.refresh_token, `tamper ${mode}: code exchange still succeeds`, r.text);
  let got = problems(r.json, d.nonce);
  ok(JSON.stringify(got) === JSON.stringify(expected), `tamper ${mode}: code exchange ID token wrong in exactly ${expected}`, got);
  ok(modeChecks[mode](decodeJwt(r.json.id_token).payload, r.json.id_token), `tamper ${mode}: code exchange ID token has the promised value`, decodeJwt(r.json.id_token));
  r = await tokenRequest('infra-e2e', 'infra-e2e-secret', { grant_type: 'refresh_token', refresh_token: daveRefresh });
  ok(r.status === 200, `tamper ${mode}: refresh still succeeds`, r.text);
  // the refreshed ID token carries the nonce of the login that issued daveRefresh
  got = problems(r.json, daveNonce);
  ok(JSON.stringify(got) === JSON.stringify(expected), `tamper ${mode}: refreshed ID token wrong in exactly ${expected}`, got);
  ok(modeChecks[mode](decodeJwt(r.json.id_token).payload, r.json.id_token), `tamper ${mode}: refreshed ID token has the promised value`, decodeJwt(r.json.id_token));
}
// other users are not affected while a mode is set
r = await tokenRequest('infra-e2e', 'infra-e2e-secret', { grant_type: 'refresh_token', refresh_token: aliceRefresh });
idt = decodeJwt(r.json.id_token);
ok(r.status === 200 && idt.valid && idt.payload.email === 'alice@example.com' && idt.payload.at_hash === atHash(r.json.access_token),
  'tampering one user leaves the others alone');
for (const bad of [{ mode: 'bogus' }, {}, 'nope', { mode: 1 }]) {
  r = await admin(`/users/${encodeURIComponent(dave)}/tamper`, bad);
  ok(r.status === 400, `admin: tamper with ${JSON.stringify(bad)} => 400`, r.text);
}
r = await admin('/users/nobody@example.com/tamper', { mode: 'expired' });
ok(r.status === 404, 'admin: tamper an unknown user => 404', r.text);
r = await admin(`/users/${encodeURIComponent(dave)}/tamper`, { mode: null });
ok(r.status === 200 && r.json.tamper === null, 'admin: tamper null stops tampering', r.text);
r = await tokenRequest('infra-e2e', 'infra-e2e-secret', { grant_type: 'refresh_token', refresh_token: daveRefresh });
ok(r.status === 200 && problems(r.json, daveNonce).length === 0, 'after tamper null the ID token is good again', problems(r.json, daveNonce));

console.log(`${passed} passed, 0 failed`);
