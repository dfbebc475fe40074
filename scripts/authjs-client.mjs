// The official @supabase/auth-js client for the scripts that drive it
// (scripts/oauth-authjs.mjs, scripts/claims-authjs.mjs): loaded from
// $TESSERA_TEST_AUTHJS_NODE_MODULES, default target/client-check/node_modules (where
// scripts/test installs the client scripts/client-check pins).
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

// GoTrueClient; throws an Error that says where it looked when it is not there.
export function loadGoTrueClient() {
  const here = path.dirname(fileURLToPath(import.meta.url))
  const nodeModules =
    process.env.TESSERA_TEST_AUTHJS_NODE_MODULES || path.join(here, '..', 'target', 'client-check', 'node_modules')
  try {
    return createRequire(path.join(nodeModules, 'noop.js'))('@supabase/auth-js').GoTrueClient
  } catch (e) {
    throw new Error(`cannot load @supabase/auth-js from ${nodeModules}: ${e.message}`)
  }
}
