-- POST /auth/v1/token?grant_type=refresh_token with JSON {refresh_token}: the refresh of
-- the Supabase Auth (GoTrue) surface, as auth-js sends it. As refresh.lua: each thread
-- owns a share of the sessions in $BENCH_SUPABASE_REFRESH (one refresh token per line)
-- and keeps a pool of their current tokens; a request takes one out, its answer
-- ({access_token, token_type, expires_in, expires_at, refresh_token, user}) puts the
-- rotated one back. A connection has one request in flight, so each chain is used by one
-- request at a time and no retired token is ever presented again. A failed rotation
-- loses its chain.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local pool = {}
local path = "/auth/v1/token?grant_type=refresh_token"
local headers = { ["Content-Type"] = "application/json" }

function init(args)
   pool = my_lines("BENCH_SUPABASE_REFRESH")
   assert(#pool > 0, "no refresh tokens for this thread")
end

function request()
   local token = table.remove(pool) or "exhausted"
   return wrk.format("POST", path, headers, '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
   if status == 200 then
      local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
      if token then
         table.insert(pool, token)
      end
   end
end
