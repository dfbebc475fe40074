-- A two-step sign-in (SPEC §5.6): POST /v1/auth/login, then POST /v1/auth/mfa/verify with
-- the answer's mfa_token and a TOTP code. One connection per thread (the harness runs
-- as many threads as connections), so the thread's state is its connection's. Lines of
-- $BENCH_MFA_USERS: "email password code code code", a user's codes for three steps in a
-- row, each usable once.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local users, i, pending = {}, 0, nil
local headers = { ["Content-Type"] = "application/json" }

function init(args)
   for _, line in ipairs(my_lines("BENCH_MFA_USERS")) do
      local email, password, a, b, c = line:match("^(%S+) (%S+) (%S+) (%S+) (%S+)$")
      table.insert(users, { email = email, password = password, codes = { a, b, c }, used = 0 })
   end
   assert(#users > 0, "no users for this thread")
end

function request()
   if pending then
      local body = string.format('{"mfa_token":"%s","code":"%s"}', pending.token, pending.code)
      pending = nil
      return wrk.format("POST", "/v1/auth/mfa/verify", headers, body)
   end
   -- The next user with a code left.
   for _ = 1, #users do
      i = i % #users + 1
      local u = users[i]
      if u.used < 3 then
         u.used = u.used + 1
         pending = { user = u, code = u.codes[u.used] }
         local body = string.format('{"email":"%s","password":"%s"}', u.email, u.password)
         return wrk.format("POST", "/v1/auth/login", headers, body)
      end
   end
   return wrk.format("GET", "/health")
end

function response(status, headers, body)
   if pending and pending.token == nil then
      local token = body:match('"mfa_token":"([^"]+)"')
      if token then
         pending.token = token
      else
         pending = nil
      end
   end
end
