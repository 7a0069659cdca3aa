// Headless-browser driver for the Infra dashboard login (end-to-end tests).
//
//   node e2e/browser/dashboard.mjs login --user EMAIL --password PW [--provider okta]
//   node e2e/browser/dashboard.mjs cancel [--provider okta]
//   node e2e/browser/dashboard.mjs bad-state --user EMAIL --password PW [--provider okta]
//   node e2e/browser/dashboard.mjs device --url DEVICE_URL --user EMAIL --password PW
//                                  [--decision approve|deny] [--screenshot FILE.png]
//
// Drives Debian's Chromium (headless) through playwright-core: opens
// $INFRA_SERVER_URL/login?provider=P, goes through the stand-in IdP's HTML form
// (e2e/idp) and back to the dashboard, and prints ONE JSON line of what it saw
// on stdout. It asserts nothing: the caller (the Rust e2e suite) does.
//
// Exit status: 0 when the scenario ran to its end (whatever the server did);
// 1 when the script itself broke (a timeout, a page without the element it
// needs, ...), with the reason, the current URL and the page's HTML on stderr;
// 2 on a usage error.
//
// Scenarios and their output (cookies never include values):
//   login      {scenario, finalURL, status, user, provider, groups, cookies:
//              [{name, httpOnly, secure, sameSite, path, expires}], heading,
//              reason, idpError, afterLogoutURL, afterLogoutStatus, signedOut,
//              cookiesAfterLogout: [names], navigations}
//              user/provider/groups are the texts of #user, #provider and the
//              <li> of #groups on the page the login ended on (null if absent);
//              heading/reason are filled when it ended on a "Login failed" page;
//              idpError is the IdP's error text when it refused the password.
//              The sign-out button (form[action="/logout"]) is clicked only when
//              present; otherwise afterLogoutURL/signedOut are null.
//   cancel     {scenario, finalURL, status, heading, reason, retryHref, navigations}
//              (clicks Cancel on the IdP form)
//   bad-state  same as cancel plus stateChanged: logs in at the IdP, and the
//              redirect to /login/callback is answered in the browser with a 303
//              to the same URL whose state parameter has its last character
//              changed, so the server receives a state it did not issue.
//   device     {scenario, confirmURL, confirmHeading, code, address, hostname,
//              finalURL, status, heading, result, navigations}: opens the
//              approval link `infra login --device` printed without a session,
//              signs in through the IdP form (the server sends the browser there
//              and back to the link), reads the confirmation page (#code,
//              #address, #hostname), saves a screenshot of it to --screenshot,
//              presses #approve or #deny and reads the result (#result).
//   add-provider  (an admin) {providerStatus, phase, redirectURIs, scimURL, copyButtons,
//              keyPage: {status, key, scimURL}, cspViolations}: adds provider --name
//              through the form on /providers (--url, --client-id, --client-secret,
//              kind okta), reloads its page until #phase reads Ready, then presses
//              Generate SCIM Access Key and reads the key page. copyButtons counts the
//              visible copy buttons (the script un-hides them).
//   lists      {users: [userName], groups: [name], grantsStatus, cspViolations}: types
//              --search into the search box of /users and of /groups and reads the rows.
//   no-rights  {nav: [ids of #nav-* links], statuses: {path: status}, forms}: the pages
//              a person without rights sees.
// Every page a scenario visits is saved as a screenshot in $INFRA_ARTIFACTS_DIR
// (target/e2e-artifacts), named after the page.
// navigations lists the main-frame document responses in order as
// {method, url (without query string), status}, redirects included.
//
// Env:
//   INFRA_SERVER_URL        dashboard base URL (required), e.g. http://127.0.0.1:18080
//   INFRA_IDP_CA_FILE       test CA of the IdP: with INFRA_IDP_URL, the IdP's
//   INFRA_IDP_URL           certificate is verified against the CA here, and
//                           Chromium accepts exactly that certificate's key
//                           (--ignore-certificate-errors-spki-list). Without
//                           them, every certificate error is ignored.
//   INFRA_CHROMIUM          browser executable (/usr/bin/chromium)
//   INFRA_BROWSER_TIMEOUT   seconds per scenario, browser start excluded (30)

import { X509Certificate, createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import tls from 'node:tls';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const SCENARIOS = ['login', 'cancel', 'bad-state', 'device', 'add-provider', 'lists', 'no-rights'];
const USAGE = `usage: dashboard.mjs {${SCENARIOS.join('|')}} [--provider NAME] [--user EMAIL --password PW]`;

function usage(msg) {
  process.stderr.write(`dashboard.mjs: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      provider: { type: 'string', default: 'okta' },
      user: { type: 'string' },
      password: { type: 'string' },
      url: { type: 'string' },
      decision: { type: 'string', default: 'approve' },
      screenshot: { type: 'string' },
      name: { type: 'string' },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      search: { type: 'string' },
    },
  });
} catch (err) {
  usage(err.message);
}
const [scenario, ...extra] = args.positionals;
if (!SCENARIOS.includes(scenario) || extra.length) usage(`expected one scenario, got ${JSON.stringify(args.positionals)}`);
const { provider, user, password, url: deviceUrl, decision, screenshot } = args.values;
if (scenario === 'device' && (!deviceUrl || !['approve', 'deny'].includes(decision))) usage('device needs --url and --decision approve|deny');
const ARTIFACTS = process.env.INFRA_ARTIFACTS_DIR || new URL('../../target/e2e-artifacts/', import.meta.url).pathname;
if (scenario !== 'cancel' && (!user || password === undefined)) usage(`${scenario} needs --user and --password`);
if (!process.env.INFRA_SERVER_URL) usage('INFRA_SERVER_URL is not set');

let SERVER;
try {
  SERVER = new URL(process.env.INFRA_SERVER_URL);
} catch {
  usage(`INFRA_SERVER_URL is not a URL: ${process.env.INFRA_SERVER_URL}`);
}
const serverUrl = (p) => new URL(p, SERVER).href;
const onServer = (u) => new URL(u).origin === SERVER.origin;
const TIMEOUT_MS = 1000 * (Number(process.env.INFRA_BROWSER_TIMEOUT) || 30);
const CHROMIUM = process.env.INFRA_CHROMIUM || '/usr/bin/chromium';

const log = (msg) => process.stderr.write(`dashboard.mjs: ${msg}\n`);

// --- TLS trust for the IdP -------------------------------------------------------
// Chromium cannot be given a CA file, but it can be told to accept certificate
// errors for given public keys. The IdP's certificate is fetched here and
// verified against the CA (and the host name), then only its key is accepted.

function idpCertSpki(idpUrl, caFile) {
  const u = new URL(idpUrl);
  return new Promise((resolve, reject) => {
    const sock = tls.connect({
      host: u.hostname,
      port: Number(u.port) || 443,
      servername: u.hostname === '127.0.0.1' || u.hostname.includes(':') ? undefined : u.hostname,
      ca: readFileSync(caFile),
      rejectUnauthorized: true,
    }, () => {
      const der = sock.getPeerCertificate().raw;
      sock.end();
      const spki = new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' });
      resolve(createHash('sha256').update(spki).digest('base64'));
    });
    sock.setTimeout(5000, () => sock.destroy(new Error('timeout')));
    sock.on('error', (err) => reject(new Error(`IdP certificate at ${u.host} does not verify against ${caFile}: ${err.message}`)));
  });
}

async function launch() {
  const launchArgs = ['--disable-dev-shm-usage'];
  let ignoreHTTPSErrors = true;
  const { INFRA_IDP_CA_FILE: caFile, INFRA_IDP_URL: idpUrl } = process.env;
  if (caFile && idpUrl) {
    launchArgs.push(`--ignore-certificate-errors-spki-list=${await idpCertSpki(idpUrl, caFile)}`);
    ignoreHTTPSErrors = false;
  } else {
    log('INFRA_IDP_CA_FILE/INFRA_IDP_URL not set: ignoring all certificate errors');
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true, args: launchArgs, timeout: 30000,
  });
  const context = await browser.newContext({ ignoreHTTPSErrors });
  context.setDefaultTimeout(TIMEOUT_MS);
  context.setDefaultNavigationTimeout(TIMEOUT_MS);
  const page = await context.newPage();
  return { browser, context, page };
}

// --- page helpers -----------------------------------------------------------------

// Main-frame document responses, redirects included, in order.
function trackNavigations(page) {
  const list = [];
  page.on('response', (res) => {
    const req = res.request();
    if (!req.isNavigationRequest() || req.frame() !== page.mainFrame()) return;
    const u = new URL(res.url());
    list.push({ method: req.method(), url: `${u.origin}${u.pathname}`, status: res.status() });
  });
  return list;
}

// Status of the document the page shows now.
async function currentStatus(page) {
  const res = await page.mainFrame().evaluate(() => performance.getEntriesByType('navigation')[0]?.responseStatus);
  return Number.isInteger(res) && res > 0 ? res : null;
}

async function text(page, selector) {
  const loc = page.locator(selector).first();
  if ((await loc.count()) === 0) return null;
  return (await loc.innerText()).trim();
}

async function attr(page, selector, name) {
  const loc = page.locator(selector).first();
  if ((await loc.count()) === 0) return null;
  return loc.getAttribute(name);
}

async function serverCookies(context) {
  const host = SERVER.hostname;
  return (await context.cookies())
    .filter((c) => c.domain === host || (c.domain.startsWith('.') && `.${host}`.endsWith(c.domain)))
    .map(({ name, httpOnly, secure, sameSite, path, expires }) => ({ name, httpOnly, secure, sameSite, path, expires }));
}

// Resolves once the next main-frame navigation has committed and loaded.
function nextNavigation(page) {
  return new Promise((resolve) => {
    const onNav = (frame) => {
      if (frame !== page.mainFrame()) return;
      page.off('framenavigated', onNav);
      resolve(page.waitForLoadState('load'));
    };
    page.on('framenavigated', onNav);
  });
}

// Waits until the page shows a document of the dashboard's origin (every
// redirect followed). `also` optionally races another condition; returns
// 'server' or the value of `also`.
async function backOnServer(page, also) {
  const waits = [page.waitForURL((u) => onServer(u.href), { waitUntil: 'load' }).then(() => 'server')];
  if (also) waits.push(also);
  const winner = await Promise.race(waits);
  for (const w of waits) w.catch(() => {});
  return winner;
}

// Opens /login?provider=P and waits for the IdP's login form.
async function openIdpForm(page) {
  await page.goto(serverUrl(`/login?provider=${encodeURIComponent(provider)}`));
  if (onServer(page.url())) {
    throw new Error(`GET /login?provider=${provider} stayed on the server (${page.url()}) instead of redirecting to the IdP`);
  }
  await page.locator('#username').waitFor({ state: 'visible' });
}

// Fills and submits the IdP form; returns 'server' once back on the
// dashboard, or 'idp-error' if the IdP showed its error message instead.
async function submitIdpForm(page) {
  await page.locator('#username').fill(user);
  await page.locator('#password').fill(password);
  const idpError = page.locator('#error').waitFor({ state: 'visible' }).then(() => 'idp-error');
  const done = backOnServer(page, idpError);
  await page.locator('#submit').click({ noWaitAfter: true });
  return done;
}

async function failurePage(page) {
  return {
    heading: await text(page, 'h1'),
    reason: await text(page, '#reason'),
    retryHref: await attr(page, '#retry', 'href'),
  };
}

// --- scenarios ----------------------------------------------------------------------

async function login({ page, context }) {
  await openIdpForm(page);
  const outcome = await submitIdpForm(page);
  const groups = page.locator('#groups');
  const out = {
    finalURL: page.url(),
    status: await currentStatus(page),
    user: await text(page, '#user'),
    provider: await text(page, '#provider'),
    groups: (await groups.count()) ? (await groups.first().locator('li').allInnerTexts()).map((s) => s.trim()) : null,
    cookies: await serverCookies(context),
    heading: await text(page, 'h1'),
    reason: await text(page, '#reason'),
    idpError: outcome === 'idp-error' ? await text(page, '#error') : null,
    afterLogoutURL: null,
    afterLogoutStatus: null,
    signedOut: null,
    cookiesAfterLogout: null,
  };
  const signOut = page.locator('form[action="/logout"]').locator('button, input[type="submit"]').first();
  if (outcome === 'server' && (await signOut.count()) > 0) {
    const navigated = nextNavigation(page);
    await signOut.click({ noWaitAfter: true });
    await navigated;
    out.afterLogoutURL = page.url();
    out.afterLogoutStatus = await currentStatus(page);
    out.signedOut = (await page.locator('a.login').count()) > 0;
    out.cookiesAfterLogout = (await serverCookies(context)).map((c) => c.name);
  }
  return out;
}

async function cancel({ page }) {
  await openIdpForm(page);
  const done = backOnServer(page);
  await page.locator('#cancel').click({ noWaitAfter: true });
  await done;
  return { finalURL: page.url(), status: await currentStatus(page), ...await failurePage(page) };
}

async function badState({ page, context }) {
  await openIdpForm(page);
  // The request to /login/callback is the last hop of a redirect chain that
  // starts at the IdP form's POST, and Playwright's page.route() does not see
  // redirect hops; the DevTools Fetch domain does.
  const cdp = await context.newCDPSession(page);
  const callback = serverUrl('/login/callback');
  let stateChanged = false;
  let interceptError;
  cdp.on('Fetch.requestPaused', async ({ requestId, request }) => {
    try {
      const u = new URL(request.url);
      if (stateChanged || u.origin !== SERVER.origin || u.pathname !== '/login/callback') {
        await cdp.send('Fetch.continueRequest', { requestId });
        return;
      }
      const state = u.searchParams.get('state') || '';
      u.searchParams.set('state', `${state.slice(0, -1)}${state.endsWith('A') ? 'B' : 'A'}`);
      stateChanged = true;
      await cdp.send('Fetch.fulfillRequest', {
        requestId,
        responseCode: 303,
        responseHeaders: [{ name: 'Location', value: u.href }, { name: 'Cache-Control', value: 'no-store' }],
        body: '',
      });
    } catch (err) {
      interceptError = err;
    }
  });
  await cdp.send('Fetch.enable', { patterns: [{ urlPattern: `${callback}*`, requestStage: 'Request' }] });
  const outcome = await submitIdpForm(page);
  await cdp.send('Fetch.disable').catch(() => {});
  if (interceptError) throw interceptError;
  if (outcome === 'idp-error') throw new Error(`the IdP refused the login: ${await text(page, '#error')}`);
  return {
    finalURL: page.url(), status: await currentStatus(page), ...await failurePage(page), stateChanged,
  };
}

async function device({ page }) {
  await page.goto(deviceUrl);
  // With one Ready provider the server goes straight to it; with several (other tests add
  // theirs) it shows the chooser, on which the person picks --provider.
  const chooser = page.locator(`a.login[href*="provider=${encodeURIComponent(provider)}&"]`);
  await page.locator('#username').or(chooser).first().waitFor({ state: 'visible' });
  if (await chooser.count()) await chooser.first().click();
  await page.locator('#username').waitFor({ state: 'visible' });
  const outcome = await submitIdpForm(page);
  if (outcome === 'idp-error') throw new Error(`the IdP refused the login: ${await text(page, '#error')}`);
  const confirm = {
    confirmURL: page.url(),
    confirmHeading: await text(page, 'h1'),
    code: await text(page, '#code'),
    address: await text(page, '#address'),
    hostname: await text(page, '#hostname'),
  };
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  const button = page.locator(decision === 'deny' ? '#deny' : '#approve');
  if ((await button.count()) === 0) return { ...confirm, finalURL: page.url(), status: await currentStatus(page), heading: null, result: null };
  const navigated = nextNavigation(page);
  await button.click({ noWaitAfter: true });
  await navigated;
  return {
    ...confirm, finalURL: page.url(), status: await currentStatus(page), heading: await text(page, 'h1'), result: await text(page, '#result'),
  };
}

// --- the dashboard's pages ------------------------------------------------------------

async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });
}

// Content-Security-Policy violations the browser reports on the console.
function cspViolations(page) {
  const list = [];
  page.on('console', (msg) => { if (/Content Security Policy/i.test(msg.text())) list.push(msg.text()); });
  return list;
}

async function signIn(page) {
  await openIdpForm(page);
  const outcome = await submitIdpForm(page);
  if (outcome !== 'server') throw new Error(`the IdP refused the login: ${await text(page, '#error')}`);
}

async function addProvider({ page }) {
  const csp = cspViolations(page);
  await signIn(page);
  await shot(page, 'home');
  await page.goto(serverUrl('/providers'));
  await page.locator('#provider-name').fill(args.values.name);
  await page.locator('#provider-kind').selectOption('okta');
  await page.locator('#provider-url').fill(args.values.url);
  await page.locator('#provider-client-id').fill(args.values['client-id']);
  await page.locator('#provider-client-secret').fill(args.values['client-secret']);
  const added = nextNavigation(page);
  await page.locator('#provider-add').click({ noWaitAfter: true });
  await added;
  const providerStatus = await currentStatus(page);
  for (let i = 0; i < 60 && (await text(page, '#phase')) !== 'Ready'; i += 1) {
    await page.waitForTimeout(1000);
    await page.reload();
  }
  await shot(page, 'provider');
  const out = {
    providerStatus,
    phase: await text(page, '#phase'),
    redirectURIs: (await page.locator('#redirect-uris code').allInnerTexts()).map((s) => s.trim()),
    scimURL: await text(page, '#scim-url'),
    copyButtons: await page.locator('button[data-copy]:visible').count(),
  };
  const generated = nextNavigation(page);
  await page.locator('#generate').click({ noWaitAfter: true });
  await generated;
  await shot(page, 'scim-key');
  out.keyPage = { status: await currentStatus(page), key: await text(page, '#scim-key'), scimURL: await text(page, '#scim-url') };
  await page.goto(serverUrl('/providers'));
  await shot(page, 'providers');
  out.cspViolations = csp;
  return out;
}

async function lists({ page }) {
  const csp = cspViolations(page);
  await signIn(page);
  const out = {};
  for (const list of ['users', 'groups']) {
    await page.goto(serverUrl(`/${list}`));
    await page.locator('#q').fill(args.values.search);
    const searched = nextNavigation(page);
    await page.locator('#search').click({ noWaitAfter: true });
    await searched;
    await shot(page, list);
    out[list] = (await page.locator(`#${list === 'users' ? 'users' : 'groups-list'} tbody tr td:first-child`).allInnerTexts()).map((s) => s.trim());
  }
  await page.goto(serverUrl('/grants'));
  out.grantsStatus = await currentStatus(page);
  await shot(page, 'grants');
  out.cspViolations = csp;
  return out;
}

async function noRights({ page }) {
  await signIn(page);
  await shot(page, 'home-no-rights');
  const nav = await page.locator('a[id^="nav-"]').evaluateAll((links) => links.map((a) => a.id));
  const statuses = {};
  for (const path of ['/providers', '/users', '/groups', '/grants']) {
    const res = await page.goto(serverUrl(path));
    statuses[path] = res.status();
  }
  await shot(page, 'forbidden');
  return { nav, statuses, forms: await page.locator('form:not([action$="/logout"])').count() };
}

// --- main ---------------------------------------------------------------------------------

const RUN = { login, cancel, 'bad-state': badState, device, 'add-provider': addProvider, lists, 'no-rights': noRights };

async function dump(page, err) {
  log(`${scenario} failed: ${err?.stack || err}`);
  if (!page) return;
  try {
    log(`page URL: ${page.url()}`);
    const html = await Promise.race([page.content(), new Promise((r) => { setTimeout(() => r('(page content unavailable)'), 3000); })]);
    log(`page content:\n${String(html).slice(0, 20000)}`);
  } catch (e) {
    log(`page content unavailable: ${e.message}`);
  }
}

let session;
let exitCode = 0;
try {
  session = await launch();
  const navigations = trackNavigations(session.page);
  let timer;
  const watchdog = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`scenario ${scenario} timed out after ${TIMEOUT_MS / 1000}s`)), TIMEOUT_MS);
  });
  const result = await Promise.race([RUN[scenario](session), watchdog]);
  clearTimeout(timer);
  process.stdout.write(`${JSON.stringify({ scenario, ...result, navigations })}\n`);
} catch (err) {
  await dump(session?.page, err);
  exitCode = 1;
} finally {
  await Promise.race([session?.browser.close(), new Promise((r) => { setTimeout(r, 5000); })]).catch(() => {});
}
process.exit(exitCode);
