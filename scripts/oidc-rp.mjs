// tessera's OpenID provider as an independent relying party sees it: openid-client v6
// (certified RP library) judges the discovery document, the ID tokens (signature via the
// JWKS, iss, aud, exp, nonce), userinfo, refresh, introspection, revocation and
// RP-initiated logout. The browser's part (sign-in and consent forms, redirects, cookies)
// is done by hand over plain HTTP. Run it through `scripts/oidc-rp openid-client`, which
// installs openid-client (pinned by scripts/oidc-rp.package-lock.json) first.
//
// Inputs (environment): OP_ISSUER, OP_CONFIDENTIAL_ID, OP_CONFIDENTIAL_SECRET,
// OP_PUBLIC_ID, OP_REDIRECT_URI, OP_POST_LOGOUT_URI, OP_EMAIL, OP_PASSWORD, OP_DYNAMIC
// (1: also dynamic client registration); OIDC_RP_NODE_MODULES (where openid-client is;
// default target/oidc-rp/node_modules).
// Output: one JSON line per step on stdout, {"step", "ok": true, ...}; on a failure a last
// {"step", "ok": false, "error"} line, the reason on stderr, and exit status 1 (2: bad
// inputs or openid-client missing).
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const env = process.env
const need = ['OP_ISSUER', 'OP_CONFIDENTIAL_ID', 'OP_CONFIDENTIAL_SECRET', 'OP_PUBLIC_ID', 'OP_REDIRECT_URI',
  'OP_POST_LOGOUT_URI', 'OP_EMAIL', 'OP_PASSWORD']
const missing = need.filter((k) => !env[k])
if (missing.length) {
  console.error(`oidc-rp (openid-client): missing environment variables: ${missing.join(' ')}`)
  process.exit(2)
}
const ISSUER = env.OP_ISSUER
const REDIRECT = env.OP_REDIRECT_URI
const SCOPE = 'openid profile email offline_access'

const here = path.dirname(fileURLToPath(import.meta.url))
const nodeModules = env.OIDC_RP_NODE_MODULES || path.join(here, '..', 'target', 'oidc-rp', 'node_modules')
let client
try {
  const resolved = createRequire(path.join(nodeModules, 'noop.js')).resolve('openid-client')
  client = await import(pathToFileURL(resolved).href)
} catch (e) {
  console.error(`oidc-rp (openid-client): cannot load openid-client from ${nodeModules} (run scripts/oidc-rp prepare): ${e.message}`)
  process.exit(2)
}

// --- steps, and what the server answered when one fails ---------------------------------
// Every HTTP request (the library's, through customFetch, and the browser's) goes through
// recordingFetch, so that a failed step can show the last exchange it made.
let last = null
async function recordingFetch(url, options = {}) {
  last = { request: `${options.method ?? 'GET'} ${url}` }
  const res = await fetch(url, options)
  const body = await res.clone().text().catch(() => '')
  last = { request: last.request, status: res.status, body: body.slice(0, 400) }
  return res
}

function describe(err) {
  const parts = []
  for (let e = err, depth = 0; e != null && depth < 4; e = e.cause, depth++) {
    // Plain objects (a response body, a Response) are in the last exchange already.
    if (!(e instanceof Error)) break
    let s = e.message ?? String(e)
    if (e.code && !s.includes(e.code)) s += ` [${e.code}]`
    if (e.error) s += ` (error=${e.error}${e.error_description ? `, error_description=${e.error_description}` : ''}${e.status ? `, HTTP ${e.status}` : ''})`
    parts.push(s)
  }
  return parts.join(': ') || String(err)
}

async function step(name, fn) {
  last = null
  let details
  try {
    details = (await fn()) ?? {}
  } catch (err) {
    const answer = last?.status ? `\n  last HTTP exchange: ${last.request} -> ${last.status} ${last.body}`
      : last ? `\n  last HTTP request: ${last.request} (no answer)` : ''
    console.log(JSON.stringify({ step: name, ok: false, error: describe(err), last_exchange: last }))
    console.error(`oidc-rp (openid-client): step ${name} failed: ${describe(err)}${answer}`)
    process.exit(1)
  }
  console.log(JSON.stringify({ step: name, ok: true, ...details }))
}
function check(cond, message) {
  if (!cond) throw new Error(message)
}
// The promise must fail with the OAuth error `code` (RFC 6749 5.2).
async function expectOAuthError(promise, code) {
  try {
    await promise
  } catch (e) {
    if (e.error === code) return { error: e.error, status: e.status }
    throw new Error(`expected the server to answer ${code}, got: ${describe(e)}`)
  }
  throw new Error(`expected the server to answer ${code}, but the request succeeded`)
}

// --- the browser: cookie jar, redirects, forms ------------------------------------------
// Cookies simply: host-only, Path-matched (RFC 6265 5.1.4), Max-Age<=0 / past Expires delete;
// Secure ones are sent over plain HTTP too (browsers do on loopback).
class Browser {
  jar = []
  pathMatches(cookiePath, p) {
    return p === cookiePath || (p.startsWith(cookiePath) && (cookiePath.endsWith('/') || p[cookiePath.length] === '/'))
  }
  async request(url, { method = 'GET', fields } = {}) {
    const u = new URL(url)
    const headers = {}
    const cookie = this.jar.filter((c) => c.host === u.hostname && this.pathMatches(c.path, u.pathname))
      .map((c) => `${c.name}=${c.value}`).join('; ')
    if (cookie) headers.cookie = cookie
    let body
    if (fields) {
      // What a browser sends with a form it submits on the provider's own page (the
      // server refuses cross-site form posts).
      if (method === 'GET') {
        u.search = new URLSearchParams(fields).toString()
      } else {
        body = new URLSearchParams(fields).toString()
        headers['content-type'] = 'application/x-www-form-urlencoded'
      }
      headers['sec-fetch-site'] = 'same-origin'
      headers.origin = u.origin
    }
    const res = await recordingFetch(u.href, { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(15000) })
    for (const line of res.headers.getSetCookie()) {
      const [nameValue, ...attrs] = line.split(';')
      const eq = nameValue.indexOf('=')
      if (eq < 0) continue
      const c = { host: u.hostname, name: nameValue.slice(0, eq).trim(), value: nameValue.slice(eq + 1).trim(), path: null }
      let gone = false
      for (const attr of attrs) {
        const [k, ...v] = attr.split('=')
        const key = k.trim().toLowerCase()
        const value = v.join('=').trim()
        if (key === 'path' && value.startsWith('/')) c.path = value
        if (key === 'max-age' && Number(value) <= 0) gone = true
        if (key === 'expires' && Date.parse(value) < Date.now()) gone = true
      }
      c.path ??= u.pathname.lastIndexOf('/') > 0 ? u.pathname.slice(0, u.pathname.lastIndexOf('/')) : '/'
      this.jar = this.jar.filter((o) => !(o.host === c.host && o.path === c.path && o.name === c.name))
      if (!gone) this.jar.push(c)
    }
    return res
  }

  // From `url`, follows redirects (only within the provider's origin) and fills the forms
  // it shows (sign-in, consent) until a redirect to a URL starting with `stop`, which is
  // returned, never fetched. `pages` lists the forms filled, e.g. ['sign-in', 'consent'].
  async navigate(url, stop) {
    const origin = new URL(ISSUER).origin
    const pages = []
    let res = await this.request(url)
    for (let hop = 0; hop < 20; hop++) {
      if ([301, 302, 303, 307, 308].includes(res.status)) {
        const location = res.headers.get('location')
        check(location, `${last.request} answered ${res.status} without a Location`)
        const next = new URL(location, url).href
        if (next.startsWith(stop)) return { url: new URL(next), pages }
        check(new URL(next).origin === origin, `redirected to ${next}, neither the provider nor ${stop}`)
        url = next
        res = await this.request(url)
        continue
      }
      const html = await res.text()
      check(res.status === 200, `${last.request} answered ${res.status}: ${pageText(html)}`)
      const form = parseForm(html)
      check(form, `${url} shows a page without a form: ${pageText(html)}`)
      const { kind, fields } = fillForm(form, html)
      check(pages.at(-1) !== kind, `the ${kind} form came back after submitting it: ${pageText(html)}`)
      pages.push(kind)
      url = new URL(form.action || url, url).href
      res = await this.request(url, { method: form.method, fields })
    }
    throw new Error(`more than 20 redirects and forms from ${url}`)
  }
}

// The first <form> of a page: its action, method, inputs and buttons (attribute values
// entity-decoded). A regex reading is enough for server-rendered forms; quoted attribute
// values may contain '>'.
function parseForm(html) {
  const tag = (name) => new RegExp(`<${name}\\b((?:[^>"']|"[^"]*"|'[^']*')*)>`, 'gi')
  const attrs = (s) => {
    const out = {}
    for (const m of s.matchAll(/([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?/g)) {
      out[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '')
    }
    return out
  }
  const open = tag('form').exec(html)
  if (!open) return null
  const start = open.index + open[0].length
  const end = html.toLowerCase().indexOf('</form>', start)
  const inner = html.slice(start, end < 0 ? html.length : end)
  const form = attrs(open[1])
  return {
    action: form.action ?? '',
    method: (form.method ?? 'get').toUpperCase(),
    inputs: [...inner.matchAll(tag('input'))].map((m) => attrs(m[1])),
    buttons: [...inner.matchAll(tag('button'))].map((m) => attrs(m[1])),
  }
}
function decodeEntities(s) {
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' }
  return s.replace(/&(?:#x([0-9a-f]+)|#([0-9]+)|([a-z]+));/gi, (m, hex, dec, name) =>
    hex ? String.fromCodePoint(parseInt(hex, 16)) : dec ? String.fromCodePoint(parseInt(dec, 10)) : named[name.toLowerCase()] ?? m)
}
function pageText(html) {
  return decodeEntities(html.replace(/<(script|style)\b[\s\S]*?<\/\1>/gi, ' ').replace(/<[^>]*>/g, ' '))
    .replace(/\s+/g, ' ').trim().slice(0, 400)
}

// What the user does with a form: signs in (a password input), or approves (a button
// decision=approve). Sends what a browser would: every named input (checkboxes and
// radios only when checked), plus the button pressed.
function fillForm(form, html) {
  const fields = {}
  let kind = null
  for (const input of form.inputs) {
    const type = (input.type ?? 'text').toLowerCase()
    if (!input.name || 'disabled' in input || ['submit', 'button', 'image', 'reset', 'file'].includes(type)) continue
    if ((type === 'checkbox' || type === 'radio') && !('checked' in input)) continue
    fields[input.name] = input.value ?? (type === 'checkbox' || type === 'radio' ? 'on' : '')
    if (type === 'password') {
      fields[input.name] = env.OP_PASSWORD
      kind = 'sign-in'
    } else if (type === 'email' || input.name === 'email') {
      fields[input.name] = env.OP_EMAIL
    }
  }
  const submits = [...form.buttons.filter((b) => (b.type ?? 'submit').toLowerCase() === 'submit'),
    ...form.inputs.filter((i) => (i.type ?? '').toLowerCase() === 'submit')]
  const approve = submits.find((b) => b.name === 'decision' && b.value === 'approve')
  if (approve) kind = 'consent'
  check(kind, `a form that is neither sign-in nor consent: ${pageText(html)}`)
  const pressed = approve ?? submits[0]
  if (pressed?.name) fields[pressed.name] = pressed.value ?? ''
  return { kind, fields }
}

// --- the flows ----------------------------------------------------------------------------
// allowInsecureRequests: the provider is plain HTTP on loopback. enableNonRepudiationChecks:
// without it openid-client takes ID tokens from the token endpoint without checking their
// signature (TLS stands in for it); with it, it checks them against the JWKS.
const options = {
  execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
  timeout: 15,
  [client.customFetch]: recordingFetch,
}

// One authorization: the browser goes from the authorization URL to the redirect URI;
// openid-client checks the response (state, iss) and exchanges the code (PKCE).
async function authorize(config, browser, { exchangeVerifier } = {}) {
  const verifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const nonce = client.randomNonce()
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT, scope: SCOPE, state, nonce,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  })
  const { url: back, pages } = await browser.navigate(url.href, REDIRECT)
  const error = back.searchParams.get('error')
  check(!error, `the provider redirected back with error=${error}: ${back.searchParams.get('error_description') ?? ''}`)
  check(back.searchParams.get('iss') === ISSUER, `the redirect back carries iss=${back.searchParams.get('iss')}, not ${ISSUER} (RFC 9207)`)
  const exchange = () => client.authorizationCodeGrant(config, back, {
    pkceCodeVerifier: exchangeVerifier ?? verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  })
  return { back, pages, exchange }
}

function discover(id, metadata, auth) {
  return client.discovery(new URL(ISSUER), id, metadata, auth, options)
}

// Code flow + userinfo with a client in a new browser: the steps every client goes
// through. The consent page shows unless this user approved the client and scopes
// before (in an earlier run against the same server).
async function codeFlow(prefix, config) {
  const browser = new Browser()
  let flow, tokens, claims
  await step(`${prefix}.authorize`, async () => {
    flow = await authorize(config, browser)
    check(flow.pages[0] === 'sign-in', `a new browser was not asked to sign in: went through ${flow.pages.join(', ') || '(no page)'}`)
    return { pages: flow.pages }
  })
  await step(`${prefix}.token`, async () => {
    tokens = await flow.exchange()
    claims = tokens.claims()
    check(tokens.access_token, 'no access_token')
    for (const claim of ['sub', 'email', 'auth_time']) check(claims[claim] !== undefined, `the ID token has no ${claim}: ${JSON.stringify(claims)}`)
    check(typeof claims.auth_time === 'number', `auth_time is not a number: ${claims.auth_time}`)
    return { sub: claims.sub, email: claims.email, token_type: tokens.token_type, expires_in: tokens.expires_in,
      refresh_token: Boolean(tokens.refresh_token), scope: tokens.scope }
  })
  await step(`${prefix}.userinfo`, async () => {
    const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub)
    check(info.email && info.email.toLowerCase() === env.OP_EMAIL.toLowerCase(), `userinfo's email is ${info.email}, not ${env.OP_EMAIL}`)
    return { sub: info.sub, email: info.email }
  })
  return { browser, tokens, claims }
}

let config
await step(`confidential.discovery`, async () => {
  config = await discover(env.OP_CONFIDENTIAL_ID, { client_secret: env.OP_CONFIDENTIAL_SECRET, token_endpoint_auth_method: 'client_secret_basic' },
    client.ClientSecretBasic(env.OP_CONFIDENTIAL_SECRET))
  const m = config.serverMetadata()
  check(m.issuer === ISSUER, `issuer is ${m.issuer}, not ${ISSUER}`)
  for (const k of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri', 'revocation_endpoint',
    'introspection_endpoint', 'end_session_endpoint']) check(m[k], `the discovery document has no ${k}`)
  check(m.code_challenge_methods_supported?.includes('S256'), 'code_challenge_methods_supported lacks S256')
  // Without it openid-client accepts a redirect without iss (RFC 9207 section 3).
  check(m.authorization_response_iss_parameter_supported === true, 'authorization_response_iss_parameter_supported is not true')
  return { issuer: m.issuer, id_token_signing_alg_values_supported: m.id_token_signing_alg_values_supported }
})

const { browser, tokens, claims } = await codeFlow('confidential', config)
let refreshed
await step(`confidential.refresh`, async () => {
  check(tokens.refresh_token, 'no refresh_token with offline_access')
  refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
  check(refreshed.refresh_token, 'the refresh gave no new refresh_token')
  check(refreshed.refresh_token !== tokens.refresh_token, 'the refresh gave the same refresh_token back (no rotation)')
  // The retired token is not tried again: within 10 s the server answers it with the
  // current one (retries converge), so reuse detection is not observable here.
  const idClaims = refreshed.claims()
  if (idClaims) check(idClaims.sub === claims.sub, `the refreshed ID token's sub is ${idClaims.sub}, not ${claims.sub}`)
  return { rotated: true, id_token: Boolean(idClaims) }
})
await step(`confidential.introspect-access`, async () => {
  const r = await client.tokenIntrospection(config, refreshed.access_token)
  check(r.active === true, `active is ${r.active}: ${JSON.stringify(r)}`)
  check(r.sub === claims.sub, `sub is ${r.sub}, not ${claims.sub}`)
  check(r.client_id === env.OP_CONFIDENTIAL_ID, `client_id is ${r.client_id}, not ${env.OP_CONFIDENTIAL_ID}`)
  return { active: r.active, sub: r.sub, client_id: r.client_id, scope: r.scope }
})
await step(`confidential.revoke-refresh`, async () => {
  await client.tokenRevocation(config, refreshed.refresh_token, { token_type_hint: 'refresh_token' })
})
await step(`confidential.introspect-revoked-refresh`, async () => {
  const r = await client.tokenIntrospection(config, refreshed.refresh_token, { token_type_hint: 'refresh_token' })
  check(r.active === false, `active is ${r.active}: ${JSON.stringify(r)}`)
  return { active: r.active }
})

// Same browser, same client and scopes: no sign-in, no consent.
await step(`confidential.code-reuse`, async () => {
  const flow = await authorize(config, browser)
  check(flow.pages.length === 0, `a second authorization showed ${flow.pages.join(', ')}`)
  await flow.exchange()
  return await expectOAuthError(flow.exchange(), 'invalid_grant')
})
await step(`confidential.wrong-code-verifier`, async () => {
  const flow = await authorize(config, browser, { exchangeVerifier: client.randomPKCECodeVerifier() })
  return await expectOAuthError(flow.exchange(), 'invalid_grant')
})

// RP-initiated logout ends the session, and the session's tokens with it: an access
// token issued in it (unexpired) introspects inactive afterwards.
let session
await step(`confidential.session-token`, async () => {
  session = await (await authorize(config, browser)).exchange()
  const r = await client.tokenIntrospection(config, session.access_token)
  check(r.active === true, `active is ${r.active} right after issue`)
  return { active: r.active }
})
await step(`confidential.logout`, async () => {
  const state = client.randomState()
  const url = client.buildEndSessionUrl(config, { id_token_hint: session.id_token, post_logout_redirect_uri: env.OP_POST_LOGOUT_URI, state })
  const { url: back, pages } = await browser.navigate(url.href, env.OP_POST_LOGOUT_URI)
  check(back.searchParams.get('state') === state, `the redirect after logout carries state=${back.searchParams.get('state')}, not ${state}`)
  return { redirect: back.origin + back.pathname, pages }
})
await step(`confidential.introspect-after-logout`, async () => {
  const r = await client.tokenIntrospection(config, session.access_token)
  check(r.active === false, `the session's access token is still active after logout: ${JSON.stringify(r)}`)
  return { active: r.active }
})
await step(`confidential.sign-in-after-logout`, async () => {
  const flow = await authorize(config, browser)
  check(flow.pages[0] === 'sign-in', `after logout the authorization showed ${flow.pages.join(', ') || 'no sign-in page'}`)
  return { pages: flow.pages }
})

// The public client: PKCE without a secret, a new browser.
let publicConfig
await step('public.discovery', async () => {
  publicConfig = await discover(env.OP_PUBLIC_ID, { token_endpoint_auth_method: 'none' }, client.None())
})
await codeFlow('public', publicConfig)

// Dynamic client registration (RFC 7591), then a code flow with the registered client,
// authenticating as the server registered it.
if (env.OP_DYNAMIC === '1') {
  let dynamic
  await step('dynamic.register', async () => {
    const byRegistration = (as, c, body, headers) => {
      const auth = { none: client.None, client_secret_post: client.ClientSecretPost }[c.token_endpoint_auth_method] ?? client.ClientSecretBasic
      return auth()(as, c, body, headers)
    }
    dynamic = await client.dynamicClientRegistration(new URL(ISSUER), {
      client_name: 'tessera oidc-rp (openid-client)', redirect_uris: [REDIRECT], response_types: ['code'],
      grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'client_secret_basic', scope: SCOPE,
    }, byRegistration, options)
    const m = dynamic.clientMetadata()
    check(m.client_id, 'no client_id registered')
    return { client_id: m.client_id, token_endpoint_auth_method: m.token_endpoint_auth_method, client_secret: Boolean(m.client_secret) }
  })
  await codeFlow('dynamic', dynamic)
}
await step('done', async () => ({}))
