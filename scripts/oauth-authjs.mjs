// A social sign-in as a Supabase app runs it through the official client
// (@supabase/auth-js, PKCE flow), with the browser's part done by hand: the redirects
// (with a cookie jar) and the provider's sign-in form. The Rust tests run it
// (tests/it/provider.rs, authjs_oauth); it also runs alone:
//
//   node scripts/oauth-authjs.mjs AUTH_URL PROVIDER REDIRECT_TO SUB
//
//   AUTH_URL     tessera's /auth/v1 base, e.g. http://127.0.0.1:PORT/auth/v1
//   PROVIDER     the provider's name in tessera, e.g. mock or github
//   REDIRECT_TO  where the app wants the code (nobody needs to listen there)
//   SUB          who signs in at the provider's form (oidc-provider-mock's `sub`;
//                providers that sign in without a form ignore it)
//
// @supabase/auth-js is loaded from $TESSERA_TEST_AUTHJS_NODE_MODULES (scripts/test
// installs it, pinned by scripts/client-check/package-lock.json, into
// target/client-check/node_modules; that is also the default).
// Prints one JSON line: {ok, user: {id, email, is_anonymous, identities: [provider, ...]},
// access_token_present, error, authorize_url, final_url}; exits 0 when a session came
// out of it, 1 otherwise.
import { loadGoTrueClient } from './authjs-client.mjs'

const [authUrl, provider, redirectTo, sub] = process.argv.slice(2)
const result = { ok: false, user: null, access_token_present: false, error: null, authorize_url: null, final_url: null }

function finish(error) {
  if (error) result.error = String(error?.message ?? error)
  result.ok = !result.error && result.access_token_present
  console.log(JSON.stringify(result))
  process.exit(result.ok ? 0 : 1)
}

if (!sub) {
  console.error('usage: node scripts/oauth-authjs.mjs AUTH_URL PROVIDER REDIRECT_TO SUB')
  process.exit(2)
}

let GoTrueClient
try {
  GoTrueClient = loadGoTrueClient()
} catch (e) {
  finish(e)
}

// A browser's cookies, simply: host-only, Path-matched (RFC 6265 5.1.4), Max-Age=0 deletes.
const jar = []
function pathMatches(cookiePath, requestPath) {
  return (
    requestPath === cookiePath ||
    (requestPath.startsWith(cookiePath) && (cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/'))
  )
}
function cookieHeader(url) {
  const u = new URL(url)
  return jar
    .filter((c) => c.host === u.hostname && pathMatches(c.path, u.pathname))
    .map((c) => `${c.name}=${c.value}`)
    .join('; ')
}
function keepCookies(url, res) {
  const u = new URL(url)
  for (const line of res.headers.getSetCookie()) {
    const [nameValue, ...attrs] = line.split(';')
    const eq = nameValue.indexOf('=')
    if (eq < 0) continue
    const name = nameValue.slice(0, eq).trim()
    const value = nameValue.slice(eq + 1).trim()
    let cookiePath = null
    let maxAge = null
    for (const attr of attrs) {
      const [k, v = ''] = attr.split('=')
      const key = k.trim().toLowerCase()
      if (key === 'path' && v.trim().startsWith('/')) cookiePath = v.trim()
      if (key === 'max-age') maxAge = Number(v.trim())
    }
    if (cookiePath === null) {
      const i = u.pathname.lastIndexOf('/')
      cookiePath = i > 0 ? u.pathname.slice(0, i) : '/'
    }
    const at = jar.findIndex((c) => c.host === u.hostname && c.path === cookiePath && c.name === name)
    if (at >= 0) jar.splice(at, 1)
    if (maxAge === null || maxAge > 0) jar.push({ host: u.hostname, path: cookiePath, name, value })
  }
}
async function request(url, init = {}) {
  const headers = { ...(init.headers ?? {}) }
  const cookie = cookieHeader(url)
  if (cookie) headers.cookie = cookie
  const res = await fetch(url, { ...init, headers, redirect: 'manual' })
  keepCookies(url, res)
  return res
}

const storage = new Map()
const client = new GoTrueClient({
  url: authUrl,
  flowType: 'pkce',
  autoRefreshToken: false,
  persistSession: true,
  detectSessionInUrl: false,
  storage: {
    getItem: (key) => storage.get(key) ?? null,
    setItem: (key, value) => void storage.set(key, value),
    removeItem: (key) => void storage.delete(key),
  },
})

try {
  const { data, error } = await client.signInWithOAuth({ provider, options: { redirectTo, skipBrowserRedirect: true } })
  if (error) finish(error)
  result.authorize_url = data.url

  // The browser's part: from the authorize URL, hop by hop, until a redirect leaves the
  // servers (tessera, and the provider it sends the browser to first) or reaches
  // redirect_to.
  const redirectBase = new URL(redirectTo).origin + new URL(redirectTo).pathname
  const served = new Set([new URL(authUrl).origin])
  let at = data.url
  let postedForm = false
  for (let hop = 0; ; hop++) {
    if (hop > 20) finish(`more than 20 redirects from ${data.url}`)
    if (hop === 1) served.add(new URL(at).origin)
    if (!served.has(new URL(at).origin) || at.startsWith(redirectBase)) break
    let res = await request(at)
    // A sign-in form (oidc-provider-mock's): the user types SUB and submits it.
    if (res.status === 200 && !postedForm && (res.headers.get('content-type') ?? '').includes('text/html')) {
      const html = await res.text()
      if (/name="sub"/.test(html)) {
        postedForm = true
        res = await request(at, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ sub }).toString(),
        })
      } else {
        finish(`${at} answered a page with no sign-in form: ${html.slice(0, 300)}`)
      }
    } else if (res.status === 200 && (res.headers.get('content-type') ?? '').includes('json')) {
      // GoTrue answers {url} instead of a redirect when asked to skip it.
      const body = await res.json()
      if (typeof body.url !== 'string') finish(`${at} answered ${JSON.stringify(body)}`)
      at = body.url
      continue
    }
    const location = res.headers.get('location')
    if (res.status < 300 || res.status >= 400 || !location) {
      finish(`${at} answered ${res.status}, not a redirect: ${(await res.text()).slice(0, 300)}`)
    }
    at = new URL(location, at).toString()
  }
  result.final_url = at

  const back = new URL(at)
  const params = new URLSearchParams(back.hash.slice(1))
  for (const [k, v] of back.searchParams) params.set(k, v)
  if (params.get('error')) {
    finish(`${params.get('error')}: ${params.get('error_code') ?? ''} ${params.get('error_description') ?? ''}`.trim())
  }
  const code = params.get('code')
  if (!code) finish(`no code in ${at}`)

  const exchanged = await client.exchangeCodeForSession(code)
  if (exchanged.error) finish(exchanged.error)
  const { session, user } = exchanged.data
  result.access_token_present = typeof session?.access_token === 'string' && session.access_token.length > 0
  result.user = {
    id: user.id,
    email: user.email ?? null,
    is_anonymous: user.is_anonymous ?? false,
    identities: (user.identities ?? []).map((i) => i.provider),
  }
  finish(result.access_token_present ? null : 'exchangeCodeForSession gave no access token')
} catch (e) {
  finish(e)
}
