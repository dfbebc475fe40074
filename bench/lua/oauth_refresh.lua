-- POST /oauth/token, grant_type=refresh_token, as a confidential client (HTTP Basic,
-- $BENCH_OAUTH_BASIC) of tessera's provider: refresh.lua's rotation for OAuth clients.
-- Each thread owns a share of the client sessions in $BENCH_REFRESH (one refresh token
-- per line) and keeps a pool of their current tokens: a request takes one out, its
-- response puts the rotated one back. A connection has one request in flight, so each
-- chain is used by one request at a time and no retired token is ever presented again.
-- A failed rotation loses its chain.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local pool = {}
local headers = {
   ["Content-Type"] = "application/x-www-form-urlencoded",
   ["Authorization"] = "Basic " .. (os.getenv("BENCH_OAUTH_BASIC") or ""),
}

function init(args)
   pool = my_lines("BENCH_REFRESH")
   assert(#pool > 0, "no refresh tokens for this thread")
end

function request()
   local token = table.remove(pool) or "exhausted"
   return wrk.format("POST", wrk.path, headers, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
   if status == 200 then
      local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
      if token then
         table.insert(pool, token)
      end
   end
end
