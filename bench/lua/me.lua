-- GET /v1/auth/me, each request with the next user's access token (one per line of
-- $BENCH_TOKENS). Requests are formatted once, so wrk spends no time building them.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local reqs, n, i = {}, 0, 0

function init(args)
   for _, token in ipairs(my_lines("BENCH_TOKENS")) do
      table.insert(reqs, wrk.format("GET", "/v1/auth/me", { ["Authorization"] = "Bearer " .. token }))
   end
   n = #reqs
   assert(n > 0, "no tokens for this thread")
end

function request()
   i = i % n + 1
   return reqs[i]
end
