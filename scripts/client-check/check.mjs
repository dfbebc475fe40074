// What an ordinary Supabase app sees, through the official client (@supabase/auth-js,
// the version the auth-js suite is pinned to), against tessera's /auth/v1: checks of
// what the suite's tests do not look at. Run by scripts/client-check.
//
//   node check.mjs URL      URL = the /auth/v1 base of a server with autoconfirm on
//
// Prints one line per check; exits 1 when one fails.
import { GoTrueClient } from '@supabase/auth-js'

const url = process.argv[2]
const client = new GoTrueClient({ url, autoRefreshToken: false, persistSession: false })
let failed = 0
function check(name, ok, detail) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${ok ? '' : `: ${detail}`}`)
  if (!ok) failed += 1
}

const email = `client-check-${Date.now()}@example.com`
const signUp = await client.signUp({ email, password: 'secret123' })
check('sign-up answers a session', !signUp.error && signUp.data.session, JSON.stringify(signUp.error))

// Issue 34, item 1: the client makes the QR code a data URI itself; the server must send
// the bare SVG, or the app gets `data:…,data:…,<svg`.
const enrolled = await client.mfa.enroll({ factorType: 'totp', friendlyName: 'client check' })
const qr = enrolled.data?.totp?.qr_code ?? ''
const prefix = 'data:image/svg+xml;utf-8,'
check(
  'mfa.enroll gives a QR code the browser can draw (one data-URI prefix, then the SVG)',
  !enrolled.error && qr.startsWith(prefix + '<svg') && !qr.slice(prefix.length).includes('data:'),
  JSON.stringify(enrolled.error) + ' ' + qr.slice(0, 80)
)

process.exit(failed ? 1 : 0)
