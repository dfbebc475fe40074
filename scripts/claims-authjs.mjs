// The claims of an access token as a Supabase app reads them through the official
// client (@supabase/auth-js): signInWithPassword, then getClaims(), which verifies an
// asymmetric token against the server's JWKS (under /auth/v1) without calling it. The
// Rust tests run it (tests/it/hooks.rs) to see a custom access token hook's claims
// where apps read them; it also runs alone:
//
//   node scripts/claims-authjs.mjs AUTH_URL EMAIL PASSWORD
//
// @supabase/auth-js is loaded from $TESSERA_TEST_AUTHJS_NODE_MODULES (default
// target/client-check/node_modules, where scripts/test installs the pinned client).
// Prints one JSON line: {ok, claims, header, error}; exits 0 when getClaims() answered.
import { loadGoTrueClient } from './authjs-client.mjs'

const [authUrl, email, password] = process.argv.slice(2)
const result = { ok: false, claims: null, header: null, error: null }
function finish(error) {
  if (error) result.error = String(error?.message ?? error)
  result.ok = !result.error && result.claims !== null
  console.log(JSON.stringify(result))
  process.exit(result.ok ? 0 : 1)
}
if (!password) {
  console.error('usage: node scripts/claims-authjs.mjs AUTH_URL EMAIL PASSWORD')
  process.exit(2)
}
let GoTrueClient
try {
  GoTrueClient = loadGoTrueClient()
} catch (e) {
  finish(e)
}
const store = new Map()
const storage = {
  getItem: async (k) => store.get(k) ?? null,
  setItem: async (k, v) => void store.set(k, v),
  removeItem: async (k) => void store.delete(k),
}
const auth = new GoTrueClient({ url: authUrl, autoRefreshToken: false, persistSession: true, storage })
try {
  const signedIn = await auth.signInWithPassword({ email, password })
  if (signedIn.error) finish(signedIn.error)
  // Count the requests getClaims makes: with an asymmetric key it reads the JWKS only.
  const { data, error } = await auth.getClaims()
  if (error) finish(error)
  result.claims = data?.claims ?? null
  result.header = data?.header ?? null
  finish(null)
} catch (e) {
  finish(e)
}
