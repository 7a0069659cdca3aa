// Stand-in Okta identity provider for Infra end-to-end tests.
//
// oidc-provider (OpenID Certified) mounted under the path of an Okta custom
// authorization server (/oauth2/default) with Okta's endpoint names, served
// over HTTPS with a certificate from the test CA (see e2e/scripts/idp-certs.sh).
// Everything is in memory: restarting the process forgets sessions, tokens and
// any change made through the /__admin/ endpoints.
//
// Environment (all optional):
//   IDP_PORT                 listening port (18443)
//   IDP_BIND                 comma-separated listen addresses ("127.0.0.1,::1")
//   IDP_ISSUER               issuer (https://localhost:$IDP_PORT/oauth2/default)
//   IDP_CONFIG               clients/users JSON (e2e/idp/config.json)
//   IDP_TLS_CERT/IDP_TLS_KEY server certificate/key ($STATE_DIR/idp/tls.{crt,key})
//   STATE_DIR                e2e state directory (<repo>/e2e/.state)
//   IDP_ADMIN_TOKEN          token for /__admin/ (header X-Admin-Token or
//                            Authorization: Bearer) ("e2e-admin")
//   IDP_REDIRECT_URIS        comma-separated: replaces every client's redirect URIs
//   IDP_EXTRA_REDIRECT_URIS  comma-separated: added to every client's redirect URIs
//   IDP_ACCESS_TOKEN_TTL, IDP_ID_TOKEN_TTL, IDP_REFRESH_TOKEN_TTL  seconds

import { generateKeyPairSync, randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { CompactSign, decodeJwt, decodeProtectedHeader, importJWK } from 'jose';
import Provider, { interactionPolicy } from 'oidc-provider';
// Not part of the public API, but oidc-provider has no "exports" map and this is
// the function the constructor uses to install the signing keys; calling it again
// is what makes runtime key rotation (POST /__admin/keys/rotate) possible.
import initializeKeystore from 'oidc-provider/lib/helpers/initialize_keystore.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '..', '..');
const STATE_DIR = process.env.STATE_DIR || path.join(REPO_ROOT, 'e2e', '.state');

const PORT = Number.parseInt(process.env.IDP_PORT || '18443', 10);
const BIND = (process.env.IDP_BIND || '127.0.0.1,::1').split(',').map((s) => s.trim()).filter(Boolean);
const ISSUER = process.env.IDP_ISSUER || `https://localhost:${PORT}/oauth2/default`;
const CONFIG_PATH = process.env.IDP_CONFIG || path.join(HERE, 'config.json');
const TLS_CERT = process.env.IDP_TLS_CERT || path.join(STATE_DIR, 'idp', 'tls.crt');
const TLS_KEY = process.env.IDP_TLS_KEY || path.join(STATE_DIR, 'idp', 'tls.key');
const ADMIN_TOKEN = process.env.IDP_ADMIN_TOKEN || 'e2e-admin';
const ttlEnv = (name, dflt) => {
  const v = Number.parseInt(process.env[name] || '', 10);
  return Number.isFinite(v) && v > 0 ? v : dflt;
};

// Path prefix the provider is mounted under, e.g. "/oauth2/default".
const MOUNT = new URL(ISSUER).pathname.replace(/\/+$/, '');

const ROUTES = {
  authorization: '/v1/authorize',
  token: '/v1/token',
  userinfo: '/v1/userinfo',
  jwks: '/v1/keys',
  revocation: '/v1/revoke',
  introspection: '/v1/introspect',
  end_session: '/v1/logout',
  // not enabled, but must not collide with the routes above
  registration: '/v1/clients',
  code_verification: '/v1/device/verify',
  device_authorization: '/v1/device/authorize',
  backchannel_authentication: '/v1/bc/authorize',
  pushed_authorization_request: '/v1/par',
};

// ---------------------------------------------------------------------------
// configuration: clients and users

const config = JSON.parse(readFileSync(CONFIG_PATH, 'utf8'));
const splitList = (s) => (s || '').split(',').map((x) => x.trim()).filter(Boolean);
const overrideRedirects = splitList(process.env.IDP_REDIRECT_URIS);
const extraRedirects = splitList(process.env.IDP_EXTRA_REDIRECT_URIS);

// client_id -> Set of claim names left out of ID tokens (present in userinfo)
const idTokenOmit = new Map();
const clients = (config.clients || []).map((c) => {
  const { id_token_omit_claims: omit, ...metadata } = c;
  idTokenOmit.set(metadata.client_id, new Set(omit || []));
  const base = overrideRedirects.length ? overrideRedirects : (metadata.redirect_uris || []);
  metadata.redirect_uris = [...new Set([...base, ...extraRedirects])];
  return metadata;
});

const usersBySub = new Map();
const usersByLogin = new Map();
function addUser(u) {
  const user = {
    sub: u.sub,
    email: u.email,
    password: u.password || '',
    name: u.name || u.email,
    email_verified: u.email_verified ?? true,
    groups: [...(u.groups || [])],
    disabled: Boolean(u.disabled),
    // ID-token tampering mode (POST /__admin/users/{email}/tamper), or null
    tamper: null,
  };
  usersBySub.set(user.sub, user);
  usersByLogin.set(user.email.toLowerCase(), user);
  return user;
}
for (const u of config.users || []) addUser(u);

const publicUser = (u) => ({
  sub: u.sub, email: u.email, email_verified: u.email_verified, name: u.name, groups: u.groups, disabled: u.disabled, tamper: u.tamper,
});

// Scope -> claims, as an Okta custom authorization server with a "groups"
// scope/claim configured.
const CLAIMS = {
  openid: ['sub'],
  profile: ['name', 'preferred_username'],
  email: ['email', 'email_verified'],
  groups: ['groups'],
};

async function findAccount(ctx, sub, token) {
  const user = usersBySub.get(sub);
  // A disabled (or unknown) account makes code exchange and refresh fail with
  // invalid_grant, userinfo fail with invalid_token, and forces a new login.
  if (!user || user.disabled) return undefined;
  return {
    accountId: user.sub,
    async claims(use) {
      const claims = {
        sub: user.sub,
        email: user.email,
        email_verified: user.email_verified,
        name: user.name,
        preferred_username: user.email,
        groups: [...user.groups],
      };
      // Okta leaves a claim out when its value is empty (e.g. a groups filter
      // matching nothing); "omit_empty_groups": true in the config mimics it.
      if (config.omit_empty_groups && claims.groups.length === 0) delete claims.groups;
      if (use === 'id_token') {
        const clientId = ctx?.oidc?.client?.clientId ?? token?.clientId;
        for (const name of idTokenOmit.get(clientId) || []) delete claims[name];
      }
      return claims;
    },
  };
}

// ---------------------------------------------------------------------------
// signing keys (RS256, like Okta); rotated at runtime via /__admin/keys/rotate

function newSigningKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  const kid = createHash('sha256').update(jwk.n).digest('base64url').slice(0, 43);
  return { ...jwk, kid, alg: 'RS256', use: 'sig' };
}
let signingKeys = [newSigningKey()];

// ---------------------------------------------------------------------------
// interaction policy: the default one plus "the session's account was
// disabled" => log in again.

const { Check, base: basePolicy } = interactionPolicy;
const policy = basePolicy();
policy.get('login').checks.add(new Check(
  'account_unavailable',
  'the account of the current session is disabled or unknown',
  (ctx) => (ctx.oidc.session.accountId && !ctx.oidc.account
    ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT),
));

// No consent screen: every requested OIDC scope/claim is granted as soon as the
// End-User is known (what Okta does for first-party apps with consent off).
async function loadExistingGrant(ctx) {
  const { oidc } = ctx;
  const accountId = oidc.account.accountId;
  const clientId = oidc.client.clientId;
  const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(clientId);
  let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
  if (!grant || grant.accountId !== accountId || grant.clientId !== clientId) {
    grant = new oidc.provider.Grant({ accountId, clientId });
  }
  const scopes = [...oidc.requestParamOIDCScopes];
  if (scopes.length) grant.addOIDCScope(scopes.join(' '));
  const claims = [...oidc.requestParamClaims];
  if (claims.length) grant.addOIDCClaims(claims);
  await grant.save();
  return grant;
}

const escapeHtml = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font-family:sans-serif;max-width:24em;margin:3em auto}label,input,button{display:block;margin:.4em 0}
input{width:100%}.error{color:#b00020}</style></head>
<body>
${body}
</body>
</html>
`;
}

const provider = new Provider(ISSUER, {
  clients,
  findAccount,
  claims: CLAIMS,
  scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
  // false => claims of the granted scopes (profile/email/groups) are put in ID
  // tokens from the token endpoint too, as Okta does; per-client removal of
  // e.g. "groups" is done in findAccount().claims('id_token').
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  routes: ROUTES,
  pkce: {
    methods: ['S256'],
    // optional for confidential clients (as in Okta), required for public ones
    required: (ctx, client) => client.clientAuthMethod === 'none',
  },
  // Refresh tokens when offline_access was requested and the client has the
  // refresh_token grant (Okta's rule). See also the offline_access middleware.
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token')
    && code.scopes.has('offline_access'),
  loadExistingGrant,
  interactions: {
    policy,
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = page('Sign out', `<h1>Sign out of ${escapeHtml(ctx.host)}?</h1>${form}
<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`);
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.body = page('Signed out', '<h1>Signed out</h1>');
      },
    },
  },
  cookies: {
    keys: [randomBytes(32).toString('base64url')],
    long: { httpOnly: true, sameSite: 'none', signed: true },
    short: { httpOnly: true, sameSite: 'lax', signed: true },
  },
  jwks: { keys: signingKeys },
  ttl: {
    AccessToken: ttlEnv('IDP_ACCESS_TOKEN_TTL', 3600),
    IdToken: ttlEnv('IDP_ID_TOKEN_TTL', 3600),
    RefreshToken: ttlEnv('IDP_REFRESH_TOKEN_TTL', 14 * 24 * 3600),
    AuthorizationCode: 60,
    Interaction: 3600,
    Session: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
  },
  clientBasedCORS: () => true,
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1>Error</h1>${Object.entries(out)
      .map(([k, v]) => `<p><strong>${escapeHtml(k)}</strong>: ${escapeHtml(v)}</p>`).join('')}`);
  },
});

// ---------------------------------------------------------------------------
// ID-token tampering (POST /__admin/users/{email}/tamper): while a user has a
// mode set, every ID token the token endpoint returns for that user
// (authorization_code and refresh_token grants) is altered in exactly one way.
// Re-signed tokens use the key (kid, RS256) the provider signed the original
// with, so only the intended property is wrong.

const TAMPER_MODES = ['expired', 'wrong_audience', 'unknown_key', 'tampered', 'no_nonce', 'wrong_nonce', 'bad_at_hash'];

async function resign(header, payload, jwk) {
  const key = await importJWK(jwk, header.alg);
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader(header)
    .sign(key);
}

async function tamperIdToken(idToken, mode) {
  const header = decodeProtectedHeader(idToken);
  const payload = decodeJwt(idToken);
  const realKey = signingKeys.find((k) => k.kid === header.kid);
  if (!realKey) throw new Error(`ID token signed with unknown kid ${header.kid}`);
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case 'expired':
      payload.iat = now - 20 * 60;
      payload.exp = now - 10 * 60;
      return resign(header, payload, realKey);
    case 'wrong_audience':
      payload.aud = 'someone-else';
      return resign(header, payload, realKey);
    case 'unknown_key': {
      // a fresh key whose kid is not (and never will be) in /v1/keys
      const stranger = newSigningKey();
      return resign({ ...header, kid: stranger.kid }, payload, stranger);
    }
    case 'tampered': {
      // payload changed after signing: the original signature no longer matches
      const [h, , sig] = idToken.split('.');
      payload.email = 'mallory@example.com';
      return `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${sig}`;
    }
    case 'no_nonce':
      delete payload.nonce;
      return resign(header, payload, realKey);
    case 'wrong_nonce':
      payload.nonce = randomBytes(16).toString('base64url');
      return resign(header, payload, realKey);
    case 'bad_at_hash':
      // the left half of SHA-256 of something that is not the access token
      payload.at_hash = createHash('sha256').update(randomBytes(32)).digest().subarray(0, 16).toString('base64url');
      return resign(header, payload, realKey);
    default:
      throw new Error(`unknown tamper mode ${mode}`);
  }
}

provider.use(async (ctx, next) => {
  await next();
  if (ctx.method !== 'POST' || ctx.path !== ROUTES.token || ctx.status !== 200) return;
  const body = ctx.body;
  if (!body || typeof body !== 'object' || typeof body.id_token !== 'string') return;
  const user = usersBySub.get(decodeJwt(body.id_token).sub);
  if (!user?.tamper) return;
  body.id_token = await tamperIdToken(body.id_token, user.tamper);
  ctx.req.idpTamper = user.tamper;
});

// Attach OAuth errors to the request log line (error code + description only).
for (const event of ['grant.error', 'authorization.error', 'userinfo.error', 'introspection.error',
  'revocation.error', 'end_session.error', 'discovery.error', 'jwks.error', 'server_error']) {
  provider.on(event, (ctx, err) => {
    if (ctx?.req) ctx.req.idpError = `${err.error || err.name}${err.error_description ? ` (${err.error_description})` : ''}`;
    if (event === 'server_error') console.error(`server_error: ${err.stack || err}`);
  });
}

const providerCallback = provider.callback();

// ---------------------------------------------------------------------------
// helpers for the hand-written endpoints

function send(res, status, body, type = 'application/json') {
  const payload = type === 'application/json' ? `${JSON.stringify(body)}\n` : body;
  res.statusCode = status;
  res.setHeader('Content-Type', `${type}; charset=utf-8`);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Length', Buffer.byteLength(payload));
  res.end(payload);
}

function readBody(req, limit = 64 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(Object.assign(new Error('request body too large'), { status: 413 }));
        req.destroy();
      } else {
        chunks.push(c);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function safeEqual(a, b) {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && timingSafeEqual(x, y);
}

// ---------------------------------------------------------------------------
// interactions: login form, auto-approved consent, cancel

function loginPage({ uid, clientName, login = '', error }) {
  const action = `/interaction/${encodeURIComponent(uid)}`;
  return page('Sign In', `<h1>Sign In</h1>
<p>to ${escapeHtml(clientName)}</p>
${error ? `<p class="error" id="error">${escapeHtml(error)}</p>` : ''}
<form method="post" action="${action}/login" id="login-form">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autofocus value="${escapeHtml(login)}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password">
<button type="submit" id="submit">Sign In</button>
</form>
<form method="post" action="${action}/abort" id="cancel-form">
<button type="submit" id="cancel">Cancel</button>
</form>`);
}

async function handleInteraction(req, res, uid, action) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    send(res, 400, page('Error', `<h1>Error</h1><p>${escapeHtml(err.error_description || err.message)}</p>`), 'text/html');
    return;
  }
  if (details.uid !== uid) {
    send(res, 400, page('Error', '<h1>Error</h1><p>interaction mismatch</p>'), 'text/html');
    return;
  }
  const { prompt, params } = details;
  const client = await provider.Client.find(params.client_id);
  const clientName = client?.clientName || params.client_id;

  if (action === 'abort' && req.method === 'POST') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User cancelled the sign-in',
    }, { mergeWithLastSubmission: false });
    return;
  }

  if (action === 'login' && req.method === 'POST') {
    const form = new URLSearchParams(await readBody(req));
    const login = (form.get('username') || '').trim();
    const password = form.get('password') || '';
    const user = usersByLogin.get(login.toLowerCase());
    let error;
    if (!user || !safeEqual(password, user.password)) {
      error = 'Unable to sign in: wrong username or password.';
    } else if (user.disabled) {
      error = 'Unable to sign in: this user is disabled.';
    }
    if (error) {
      send(res, 200, loginPage({ uid, clientName, login, error }), 'text/html');
      return;
    }
    // "consent: {}" resolves a prompt=consent (see the offline_access
    // middleware) in the same round trip; loadExistingGrant grants the scopes.
    await provider.interactionFinished(req, res, {
      login: { accountId: user.sub, amr: ['pwd'] },
      consent: {},
    }, { mergeWithLastSubmission: false });
    return;
  }

  if (action === undefined && req.method === 'GET') {
    if (prompt.name === 'login') {
      send(res, 200, loginPage({ uid, clientName, login: params.login_hint || '' }), 'text/html');
      return;
    }
    if (prompt.name === 'consent') {
      await provider.interactionFinished(req, res, { consent: {} }, { mergeWithLastSubmission: true });
      return;
    }
    send(res, 400, page('Error', `<h1>Error</h1><p>unsupported prompt ${escapeHtml(prompt.name)}</p>`), 'text/html');
    return;
  }

  send(res, 405, page('Error', '<h1>Method not allowed</h1>'), 'text/html');
}

// ---------------------------------------------------------------------------
// test-control endpoints (only on this stand-in)

async function handleAdmin(req, res, pathname) {
  const bearer = (req.headers.authorization || '').replace(/^Bearer\s+/i, '');
  const token = req.headers['x-admin-token'] || bearer;
  if (!token || !safeEqual(token, ADMIN_TOKEN)) {
    send(res, 401, { error: 'unauthorized' });
    return;
  }

  if (req.method === 'GET' && pathname === '/__admin/users') {
    send(res, 200, [...usersBySub.values()].map(publicUser));
    return;
  }

  if (req.method === 'POST' && pathname === '/__admin/users') {
    let body;
    try {
      body = JSON.parse(await readBody(req));
    } catch {
      body = undefined;
    }
    const isStr = (v) => typeof v === 'string' && v.length > 0;
    if (!body || typeof body !== 'object' || Array.isArray(body)
      || !isStr(body.email) || !/^[^\s@/]+@[^\s@/]+$/.test(body.email) || !isStr(body.password)
      || !(body.groups === undefined || (Array.isArray(body.groups) && body.groups.every((g) => typeof g === 'string')))
      || !(body.name === undefined || isStr(body.name))
      || !(body.email_verified === undefined || typeof body.email_verified === 'boolean')) {
      send(res, 400, { error: 'body must be {"email": "<address>", "password": "<non-empty>", "groups": ["<string>", ...], "name"?: "<string>", "email_verified"?: <boolean>}' });
      return;
    }
    if (usersByLogin.has(body.email.toLowerCase())) {
      send(res, 409, { error: 'user already exists' });
      return;
    }
    let sub;
    do sub = `00u${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}`; while (usersBySub.has(sub));
    const user = addUser({
      sub, email: body.email, password: body.password, name: body.name, groups: body.groups, email_verified: body.email_verified,
    });
    send(res, 201, publicUser(user));
    return;
  }

  const m = pathname.match(/^\/__admin\/users\/([^/]+)\/(disable|enable|groups|tamper)$/);
  if (m && req.method === 'POST') {
    const user = usersByLogin.get(decodeURIComponent(m[1]).toLowerCase())
      || usersBySub.get(decodeURIComponent(m[1]));
    if (!user) {
      send(res, 404, { error: 'user not found' });
      return;
    }
    if (m[2] === 'disable') user.disabled = true;
    if (m[2] === 'enable') user.disabled = false;
    if (m[2] === 'groups') {
      let groups;
      try {
        groups = JSON.parse(await readBody(req));
      } catch {
        groups = undefined;
      }
      if (!Array.isArray(groups) || !groups.every((g) => typeof g === 'string')) {
        send(res, 400, { error: 'body must be a JSON array of strings' });
        return;
      }
      user.groups = [...groups];
    }
    if (m[2] === 'tamper') {
      let body;
      try {
        body = JSON.parse(await readBody(req));
      } catch {
        body = undefined;
      }
      if (!body || typeof body !== 'object' || !(body.mode === null || TAMPER_MODES.includes(body.mode))) {
        send(res, 400, { error: `body must be {"mode": M} with M one of ${TAMPER_MODES.join(', ')} or null` });
        return;
      }
      user.tamper = body.mode;
    }
    send(res, 200, publicUser(user));
    return;
  }

  if (req.method === 'POST' && pathname === '/__admin/keys/rotate') {
    // New key first (used for signing from now on), old keys stay published
    // at /v1/keys so tokens signed earlier still verify.
    signingKeys = [newSigningKey(), ...signingKeys];
    initializeKeystore.call(provider, { keys: signingKeys });
    send(res, 200, { current: signingKeys[0].kid, published: signingKeys.map((k) => k.kid) });
    return;
  }

  send(res, 404, { error: 'not found' });
}

// oidc-provider follows OIDC Core: offline_access is dropped unless the request
// also has prompt=consent. Okta has no such rule, so "consent" is added to the
// prompt of authorization requests that ask for offline_access (the consent
// prompt is then auto-approved by the interaction handler, no screen is shown).
// Requests with prompt=none are left alone (offline_access is then dropped).
// Done on the raw URL, before oidc-provider sees it, so that its mount-path
// detection (originalUrl vs url) stays consistent.
function offlineAccessWithoutConsentPrompt(url) {
  const u = new URL(url, 'https://x');
  const scopes = (u.searchParams.get('scope') || '').split(' ');
  const prompts = (u.searchParams.get('prompt') || '').split(' ').filter(Boolean);
  if (!scopes.includes('offline_access') || prompts.includes('consent') || prompts.includes('none')) {
    return url;
  }
  u.searchParams.set('prompt', [...prompts, 'consent'].join(' '));
  return `${u.pathname}${u.search}`;
}

// ---------------------------------------------------------------------------
// HTTP(S) front: routing and one log line per request (method, path, status)

async function handle(req, res) {
  const started = process.hrtime.bigint();
  const pathname = (req.url || '/').split('?')[0];
  res.on('finish', () => {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const err = req.idpError ? ` error=${req.idpError}` : '';
    const tamper = req.idpTamper ? ` id_token_tampered=${req.idpTamper}` : '';
    console.log(`${new Date().toISOString()} ${req.method} ${pathname} ${res.statusCode} ${ms.toFixed(1)}ms${err}${tamper}`);
  });

  try {
    if (pathname === MOUNT || pathname.startsWith(`${MOUNT}/`)) {
      // mount like express/koa-mount do: oidc-provider derives its URLs from
      // originalUrl minus url
      if (req.method === 'GET' && pathname === `${MOUNT}${ROUTES.authorization}`) {
        req.url = offlineAccessWithoutConsentPrompt(req.url);
      }
      req.originalUrl = req.url;
      req.url = req.url.slice(MOUNT.length) || '/';
      if (!req.url.startsWith('/')) req.url = `/${req.url}`;
      await providerCallback(req, res);
      return;
    }
    const im = pathname.match(/^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|abort))?$/);
    if (im) {
      await handleInteraction(req, res, im[1], im[2]);
      return;
    }
    if (pathname.startsWith('/__admin/')) {
      await handleAdmin(req, res, pathname);
      return;
    }
    if (pathname === '/huge/.well-known/openid-configuration') {
      // A hostile "provider": a 150 MB discovery document, streamed without a length, for the
      // test that the operator reads provider responses with a size cap.
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      let left = 150;
      const more = () => {
        while (left > 0) {
          left -= 1;
          if (!res.write(chunk)) { res.once('drain', more); return; }
        }
        res.end('{}');
      };
      res.on('close', () => { left = 0; });
      more();
      return;
    }
    send(res, 404, { error: 'not found' });
  } catch (err) {
    console.error(`request error: ${err.stack || err}`);
    if (!res.headersSent) send(res, err.status || 500, { error: 'server_error' });
    else res.destroy();
  }
}

const tls = { cert: readFileSync(TLS_CERT), key: readFileSync(TLS_KEY) };
const servers = [];
let failed = 0;
for (const host of BIND) {
  const server = https.createServer(tls, handle);
  server.on('error', (err) => {
    console.error(`listen ${host}:${PORT} failed: ${err.code || err.message}`);
    failed += 1;
    // a missing IPv6 loopback is fine as long as another address works;
    // anything else (EADDRINUSE, ...) is fatal
    const tolerable = ['EADDRNOTAVAIL', 'EAFNOSUPPORT'].includes(err.code);
    if (!tolerable || failed === BIND.length) process.exit(1);
  });
  server.listen(PORT, host, () => {
    console.log(`listening on https://${host.includes(':') ? `[${host}]` : host}:${PORT}`);
  });
  servers.push(server);
}
console.log(`oidc-provider issuer ${ISSUER} (config ${CONFIG_PATH}, ${clients.length} clients, ${usersBySub.size} users)`);

function shutdown(signal) {
  console.log(`${signal}: shutting down`);
  for (const s of servers) s.close();
  for (const s of servers) s.closeAllConnections?.();
  setTimeout(() => process.exit(0), 200).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
