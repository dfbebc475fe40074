-- POST {refresh_token} to the URL's path: /v1/auth/refresh, or the Supabase surface's
-- /auth/v1/token?grant_type=refresh_token (the `supabase` scenario); with
-- $BENCH_OAUTH_BASIC, grant_type=refresh_token as a form to /oauth/token, as that
-- confidential client (HTTP Basic) of tessera's provider (the `oauth_refresh` scenario).
-- Each thread owns a share of the sessions in $BENCH_REFRESH (one refresh token per line)
-- and keeps a pool of their current tokens: a request takes one out, its response puts
-- the rotated one back. A connection has one request in flight, so each chain is used by
-- one request at a time and no retired token is ever presented again. A failed rotation
-- loses its chain.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local pool = {}
local basic = os.getenv("BENCH_OAUTH_BASIC")
local headers = { ["Content-Type"] = "application/json" }
if basic then
   headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = "Basic " .. basic }
end

function init(args)
   pool = my_lines("BENCH_REFRESH")
   assert(#pool > 0, "no refresh tokens for this thread")
end

function request()
   local token = table.remove(pool) or "exhausted"
   if basic then
      return wrk.format("POST", wrk.path, headers, "grant_type=refresh_token&refresh_token=" .. token)
   end
   return wrk.format("POST", wrk.path, headers, '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
   if status == 200 then
      local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
      if token then
         table.insert(pool, token)
      end
   end
end
