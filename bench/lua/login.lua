-- POST /v1/auth/login as JSON, cycling through the users of $BENCH_USERS
-- (lines "email password").
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local reqs, n, i = {}, 0, 0

function init(args)
   for _, line in ipairs(my_lines("BENCH_USERS")) do
      local email, password = line:match("^(%S+) (%S+)$")
      local body = string.format('{"email":"%s","password":"%s"}', email, password)
      table.insert(reqs, wrk.format("POST", "/v1/auth/login", { ["Content-Type"] = "application/json" }, body))
   end
   n = #reqs
   assert(n > 0, "no users for this thread")
end

function request()
   i = i % n + 1
   return reqs[i]
end
